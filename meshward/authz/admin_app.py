"""The admin surface of ``meshward serve``: health, readiness, metrics and reload, as a
FastAPI app. The check path never reaches it (``http_app`` answers checks itself)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from .core import Authorizer
from .holder import PolicyHolder


def admin_app(authorizer: Authorizer) -> FastAPI:
    """Health, readiness, metrics, and a reload that answers with its result."""
    holder = authorizer.holder
    registry = authorizer.metrics.registry
    app = FastAPI(title="meshward ext_authz", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        body = readiness(holder)
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/admin/reload")
    async def reload() -> JSONResponse:
        result = await run_in_threadpool(holder.reload)
        body = {
            "ok": result.ok,
            "fingerprint": result.fingerprint,
            "rules": result.rule_count,
            "error": result.error,
            "seconds": round(result.seconds, 4),
        }
        return JSONResponse(body, status_code=200 if result.ok else 422)

    return app


def readiness(holder: PolicyHolder) -> dict[str, Any]:
    """The ``/readyz`` document: ready once a policy is loaded; the last load error shows
    even while an older good policy keeps serving."""
    policy = holder.policy
    return {
        "ready": policy is not None,
        "policy": None
        if policy is None
        else {
            "fingerprint": policy.fingerprint,
            "rules": policy.rule_count,
            "loaded_at": holder.loaded_at,
        },
        "last_error": holder.last_error,
    }
