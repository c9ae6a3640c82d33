"""HTTP mode through the ASGI interface: any method, any path under the prefix, only 200
allows, deny bodies and headers, identity headers, fail closed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from meshward.authz import core
from meshward.authz.http_app import build_http_app

MakeAuthorizer = Callable[..., core.Authorizer]
AsgiCall = Callable[..., Any]
PRODUCTPAGE = "spiffe://cluster.local/ns/default/sa/productpage"
DEST = {"x-meshward-destination": "reviews.default"}


def test_any_method_any_path_under_the_prefix(
    asgi_call: AsgiCall, make_authorizer: MakeAuthorizer
) -> None:
    app = build_http_app(make_authorizer())
    for method in ("GET", "HEAD", "OPTIONS", "PATCH", "DELETE", "PROPFIND"):
        response = asgi_call(app, method, "/check/public/a/b?x=1", DEST)
        assert response.status_code == (200 if method == "GET" else 403), method


def test_allow_response_carries_upstream_headers(
    asgi_call: AsgiCall, make_authorizer: MakeAuthorizer
) -> None:
    app = build_http_app(make_authorizer(identity={"mode": "header"}))
    headers = {**DEST, "x-meshward-peer-uri-san": PRODUCTPAGE}
    response = asgi_call(app, "GET", "/check/reviews/7", headers)
    assert response.status_code == 200
    assert response.headers["x-meshward-principal"] == PRODUCTPAGE
    assert response.headers["x-meshward-decision-id"]
    assert "x-envoy-auth-headers-to-remove" not in response.headers
    anonymous = asgi_call(app, "GET", "/check/public/x", DEST)
    assert anonymous.headers["x-envoy-auth-headers-to-remove"] == "x-meshward-principal"


def test_deny_response(asgi_call: AsgiCall, make_authorizer: MakeAuthorizer) -> None:
    app = build_http_app(make_authorizer())
    response = asgi_call(app, "POST", "/check/admin/users", DEST)
    assert response.status_code == 403
    body = response.json()
    assert body["rule"] == response.headers["x-meshward-rule"] == "admin-only-ops"
    assert body["decision_id"] == response.headers["x-meshward-decision-id"]
    assert response.headers["content-type"] == "application/json"


def test_identity_headers_are_ignored_unless_configured(
    asgi_call: AsgiCall, make_authorizer: MakeAuthorizer
) -> None:
    app = build_http_app(make_authorizer())
    headers = {**DEST, "x-meshward-peer-uri-san": PRODUCTPAGE}
    assert asgi_call(app, "GET", "/check/reviews/7", headers).status_code == 403


def test_xfcc_identity(asgi_call: AsgiCall, make_authorizer: MakeAuthorizer) -> None:
    app = build_http_app(make_authorizer(identity={"mode": "xfcc"}))
    good = {**DEST, "x-forwarded-client-cert": f"By=spiffe://cluster.local/x;URI={PRODUCTPAGE}"}
    assert asgi_call(app, "GET", "/check/reviews/7", good).status_code == 200
    tampered = {**DEST, "x-forwarded-client-cert": f'URI="{PRODUCTPAGE}'}
    assert asgi_call(app, "GET", "/check/reviews/7", tampered).status_code == 403


def test_encoded_path_is_decided_raw(asgi_call: AsgiCall, make_authorizer: MakeAuthorizer) -> None:
    app = build_http_app(make_authorizer())
    response = asgi_call(app, "GET", "/check/public/..%2Fadmin", DEST)
    assert response.status_code == 403
    assert "ambiguous path" in response.json()["reason"]


def test_the_prefix_itself_and_other_paths(
    asgi_call: AsgiCall, make_authorizer: MakeAuthorizer
) -> None:
    app = build_http_app(make_authorizer())
    assert asgi_call(app, "GET", "/check", DEST).status_code == 403
    assert asgi_call(app, "GET", "/checkout", DEST).status_code == 404  # admin app: no route


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


def test_the_port_is_read_from_envoys_port_header_not_the_host(
    asgi_call: AsgiCall, make_authorizer: MakeAuthorizer, policy_dir: Any
) -> None:
    (policy_dir / "ports.policy").write_text(
        'service ports.default:8443 { @id("no-admin") deny * /admin/{**} }\n'
        'service ports.default { @id("open") allow * /{**} from any }\n'
    )
    app = build_http_app(make_authorizer())
    dest = {"x-meshward-destination": "ports.default", "host": "ports:1"}
    on_8443 = asgi_call(
        app, "GET", "/check/admin/x", {**dest, "x-meshward-destination-port": "8443"}
    )
    assert on_8443.headers["x-meshward-rule"] == "no-admin"
    on_9000 = asgi_call(
        app, "GET", "/check/admin/x", {**dest, "x-meshward-destination-port": "9000"}
    )
    assert on_9000.status_code == 200
    # No port header: port 8443's deny cannot be ruled out, whatever the Host says.
    assert (
        asgi_call(app, "GET", "/check/admin/x", {**dest, "host": "ports:9000"}).status_code == 403
    )


def test_the_method_is_read_in_upper_case(make_authorizer: MakeAuthorizer) -> None:
    # As in gRPC mode: a rule's DELETE is the request's `delete`, however the server
    # in front spells it.
    app = build_http_app(make_authorizer())
    scope = {"type": "http", "method": "delete", "path": "/check/x", "headers": []}
    assert app._input(scope, b"/check/x").method == "DELETE"
