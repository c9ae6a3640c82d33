"""HTTP mode through the ASGI interface: any method, any path under the prefix, only 200
allows, deny bodies and headers, identity headers, admin endpoints, fail closed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2

from meshward.authz import core
from meshward.authz.http_app import build_http_app

MakeAuthorizer = Callable[..., core.Authorizer]
PRODUCTPAGE = "spiffe://cluster.local/ns/default/sa/productpage"
DEST = {"x-meshward-destination": "reviews.default"}


def _call(
    app: Any, method: str, url: str, headers: dict[str, str] | None = None
) -> httpx2.Response:
    async def go() -> httpx2.Response:
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://reviews:9080") as c:
            return await c.request(method, url, headers=headers)

    return asyncio.run(go())


def test_any_method_any_path_under_the_prefix(make_authorizer: MakeAuthorizer) -> None:
    app = build_http_app(make_authorizer())
    for method in ("GET", "HEAD", "OPTIONS", "PATCH", "DELETE", "PROPFIND"):
        response = _call(app, method, "/check/public/a/b?x=1", DEST)
        assert response.status_code == (200 if method == "GET" else 403), method


def test_allow_response_carries_upstream_headers(make_authorizer: MakeAuthorizer) -> None:
    app = build_http_app(make_authorizer(identity={"mode": "header"}))
    headers = {**DEST, "x-meshward-peer-uri-san": PRODUCTPAGE}
    response = _call(app, "GET", "/check/reviews/7", headers)
    assert response.status_code == 200
    assert response.headers["x-meshward-principal"] == PRODUCTPAGE
    assert response.headers["x-meshward-decision-id"]
    assert "x-envoy-auth-headers-to-remove" not in response.headers
    anonymous = _call(app, "GET", "/check/public/x", DEST)
    assert anonymous.headers["x-envoy-auth-headers-to-remove"] == "x-meshward-principal"


def test_deny_response(make_authorizer: MakeAuthorizer) -> None:
    app = build_http_app(make_authorizer())
    response = _call(app, "POST", "/check/admin/users", DEST)
    assert response.status_code == 403
    body = response.json()
    assert body["rule"] == response.headers["x-meshward-rule"] == "admin-only-ops"
    assert body["decision_id"] == response.headers["x-meshward-decision-id"]
    assert response.headers["content-type"] == "application/json"


def test_identity_headers_are_ignored_unless_configured(make_authorizer: MakeAuthorizer) -> None:
    app = build_http_app(make_authorizer())
    headers = {**DEST, "x-meshward-peer-uri-san": PRODUCTPAGE}
    assert _call(app, "GET", "/check/reviews/7", headers).status_code == 403


def test_xfcc_identity(make_authorizer: MakeAuthorizer) -> None:
    app = build_http_app(make_authorizer(identity={"mode": "xfcc"}))
    good = {**DEST, "x-forwarded-client-cert": f"By=spiffe://cluster.local/x;URI={PRODUCTPAGE}"}
    assert _call(app, "GET", "/check/reviews/7", good).status_code == 200
    tampered = {**DEST, "x-forwarded-client-cert": f'URI="{PRODUCTPAGE}'}
    assert _call(app, "GET", "/check/reviews/7", tampered).status_code == 403


def test_encoded_path_is_decided_raw(make_authorizer: MakeAuthorizer) -> None:
    app = build_http_app(make_authorizer())
    response = _call(app, "GET", "/check/public/..%2Fadmin", DEST)
    assert response.status_code == 403
    assert "ambiguous path" in response.json()["reason"]


def test_the_prefix_itself_and_other_paths(make_authorizer: MakeAuthorizer) -> None:
    app = build_http_app(make_authorizer())
    assert _call(app, "GET", "/check", DEST).status_code == 403
    assert _call(app, "GET", "/checkout", DEST).status_code == 404  # admin app: no route


def test_admin_endpoints(make_authorizer: MakeAuthorizer, policy_dir: Path) -> None:
    authorizer = make_authorizer()
    app = build_http_app(authorizer)
    assert _call(app, "GET", "/healthz").json() == {"status": "ok"}
    ready = _call(app, "GET", "/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    _call(app, "GET", "/check/public/a", DEST)
    metrics = _call(app, "GET", "/metrics").text
    assert 'meshward_authz_decisions_total{result="allow",rule="public"} 1.0' in metrics
    assert "meshward_authz_decision_seconds_bucket" in metrics

    (policy_dir / "main.policy").write_text("service reviews.default {\n  allow GIT\n")
    refused = _call(app, "POST", "/admin/reload")
    assert refused.status_code == 422 and "main.policy" in refused.json()["error"]
    details = _call(app, "GET", "/readyz").json()
    assert details["ready"] is True and "main.policy" in details["last_error"]
    assert (
        'meshward_authz_policy_reloads_total{result="failure"} 1.0'
        in _call(app, "GET", "/metrics").text
    )
    assert _call(app, "GET", "/check/public/a", DEST).status_code == 200  # last good policy

    (policy_dir / "main.policy").write_text("service reviews.default {\n  allow GET /{**}\n}\n")
    accepted = _call(app, "POST", "/admin/reload")
    assert accepted.status_code == 200 and accepted.json()["rules"] == 1
    assert _call(app, "GET", "/readyz").json()["last_error"] is None


def test_not_ready_before_the_first_policy(make_authorizer: MakeAuthorizer) -> None:
    app = build_http_app(make_authorizer(load=False))
    response = _call(app, "GET", "/readyz")
    assert response.status_code == 503 and response.json()["ready"] is False
    check = _call(app, "GET", "/check/public/a", DEST)
    assert check.status_code == 403 and check.json()["rule"] == core.RULE_NOT_READY


def test_failure_in_the_transport_is_a_deny(make_authorizer: MakeAuthorizer) -> None:
    app = build_http_app(make_authorizer())
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/check/x",
        "raw_path": b"/check/x",
        "headers": None,  # not iterable: reading the request fails
        "query_string": b"",
    }
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 403
    assert json.loads(sent[1]["body"])["decision"] == "deny"
