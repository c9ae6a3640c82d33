"""The CA's HTTP API, for workloads that cannot share a filesystem with the rotation service.

Callers authenticate with a bootstrap token: a JWT-SVID the CA signed for their SPIFFE ID
with the audience :data:`BOOTSTRAP_AUDIENCE` (``meshward ca issue --bootstrap-token``).
"""

# No ``from __future__ import annotations`` here: FastAPI reads the endpoint annotations at
# runtime, and they refer to a dependency defined inside create_app.

import datetime as dt
import logging
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meshward.ca.csr import approve_csr
from meshward.ca.errors import CaError, CsrRefused, JwtSvidInvalid
from meshward.ca.jwt_svid import DEFAULT_JWT_TTL, validate_jwt_svid
from meshward.ca.manager import MAX_JWT_TTL, TrustDomainCa
from meshward.ca.spiffe_id import SpiffeId

from . import BOOTSTRAP_AUDIENCE
from .metrics import CaMetrics

PEM_MEDIA_TYPE = "application/x-pem-file"
log = logging.getLogger("meshward.ca.api")


class X509SvidRequest(BaseModel):
    """A CSR to sign; the identity comes from the caller's bootstrap token."""

    csr: str = Field(description="PEM-encoded PKCS#10 certificate signing request")
    # Capped by the service's own maximum anyway; bounded here so a huge number is a 422.
    ttl_seconds: int | None = Field(default=None, gt=0, le=10 * 366 * 86400)


class X509SvidResponse(BaseModel):
    """The signed chain (leaf first) and the trust bundle to verify peers with."""

    spiffe_id: str
    chain: str
    bundle: str
    expires_at: dt.datetime


class JwtSvidRequest(BaseModel):
    """Audiences the JWT-SVID is for (at least one)."""

    audience: list[str] = Field(min_length=1)
    ttl_seconds: int | None = Field(default=None, gt=0, le=int(MAX_JWT_TTL.total_seconds()))


class JwtSvidResponse(BaseModel):
    """A signed JWT-SVID."""

    spiffe_id: str
    token: str


# A request body larger than this is refused before it is read: a CSR or a JWT request is
# a few KiB, and the API answers callers it has not yet authenticated.
MAX_BODY_BYTES = 64 * 1024


def create_app(ca: TrustDomainCa, metrics: CaMetrics, *, max_ttl: dt.timedelta) -> FastAPI:
    """Build the API for ``ca``; X.509-SVIDs it signs live at most ``max_ttl``."""
    app = FastAPI(title="meshward CA", docs_url=None, redoc_url=None)
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)

    def caller(authorization: Annotated[str | None, Header()] = None) -> SpiffeId:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(
                401, "a bootstrap token is required", {"WWW-Authenticate": "Bearer"}
            )
        ca.refresh()
        bundle = ca.bundle()
        try:
            svid = validate_jwt_svid(
                token,
                bundle.jwt_authorities,
                BOOTSTRAP_AUDIENCE,
                trust_domain=ca.trust_domain,
            )
        except JwtSvidInvalid as exc:
            # The reason code is safe to log; the token never is.
            log.info("bootstrap token refused: %s", exc.code)
            raise HTTPException(
                401, f"bootstrap token refused: {exc}", {"WWW-Authenticate": "Bearer"}
            ) from None
        return svid.spiffe_id

    Caller = Annotated[SpiffeId, Depends(caller)]

    @app.exception_handler(CaError)
    def refused(_request: object, exc: CaError) -> JSONResponse:
        return JSONResponse({"error": exc.code, "detail": str(exc)}, status_code=400)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/bundle")
    def bundle_pem() -> Response:
        ca.refresh()
        return Response(ca.bundle().to_pem(), media_type=PEM_MEDIA_TYPE)

    @app.get("/v1/bundle.jwks")
    def bundle_jwks() -> Response:
        ca.refresh()
        return Response(ca.bundle().to_json(), media_type="application/json")

    @app.post("/v1/x509-svid")
    def sign_csr(body: X509SvidRequest, spiffe_id: Caller) -> X509SvidResponse:
        try:
            pem = body.csr.encode()
        except UnicodeEncodeError:  # a lone surrogate from a JSON escape
            raise CsrRefused("the CSR is not PEM text", code="malformed") from None
        approved = approve_csr(pem, spiffe_id)
        requested = dt.timedelta(seconds=body.ttl_seconds) if body.ttl_seconds else max_ttl
        ttl = min(requested, max_ttl)
        svid = ca.issue_x509(approved.spiffe_id, approved.public_key, ttl=ttl)
        metrics.svids_issued.labels("x509").inc()
        log.info("issued X.509-SVID %x for %s", svid.leaf.serial_number, spiffe_id)
        return X509SvidResponse(
            spiffe_id=str(svid.spiffe_id),
            chain=svid.chain_pem().decode(),
            bundle=ca.bundle().to_pem().decode(),
            expires_at=svid.not_after,
        )

    @app.post("/v1/jwt-svid")
    def jwt_svid(body: JwtSvidRequest, spiffe_id: Caller) -> JwtSvidResponse:
        if BOOTSTRAP_AUDIENCE in body.audience:
            # A bootstrap token must not mint its successor: a leaked one would then live
            # for ever instead of until its expiry.
            raise HTTPException(403, f"the audience {BOOTSTRAP_AUDIENCE!r} is not issued here")
        ttl = dt.timedelta(seconds=body.ttl_seconds) if body.ttl_seconds else DEFAULT_JWT_TTL
        token = ca.issue_jwt(spiffe_id, body.audience, ttl=ttl)
        metrics.svids_issued.labels("jwt").inc()
        log.info("issued JWT-SVID for %s", spiffe_id)
        return JwtSvidResponse(spiffe_id=str(spiffe_id), token=token)

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    return app


class BodyLimit:
    """ASGI middleware: a body over ``limit`` bytes is answered 413 as soon as its
    declared length or the bytes received so far show it, never buffered whole."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self._app = app
        self._limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self._limit:
            await _too_large(send)
            return
        seen = 0
        refused = False

        async def counted() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self._limit:  # a body of no declared length that goes on too long
                refused = True
                await _too_large(send)
                return {"type": "http.disconnect"}  # the app stops reading
            return message

        async def unless_refused(message: Message) -> None:
            if not refused:  # (whatever the app answers a disconnect with goes nowhere)
                await send(message)

        await self._app(scope, counted, unless_refused)


async def _too_large(send: Send) -> None:
    body = b'{"error":"too-large","detail":"the request body is too large"}'
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})
