"""The admin surface, reached through the HTTP app as Envoy and operators reach it:
health, readiness before and after the first policy, metrics, reload with its result."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from meshward.authz import core
from meshward.authz.http_app import build_http_app

MakeAuthorizer = Callable[..., core.Authorizer]
AsgiCall = Callable[..., Any]
DEST = {"x-meshward-destination": "reviews.default"}


def test_admin_endpoints(
    asgi_call: AsgiCall, make_authorizer: MakeAuthorizer, policy_dir: Path
) -> None:
    authorizer = make_authorizer()
    app = build_http_app(authorizer)
    assert asgi_call(app, "GET", "/healthz").json() == {"status": "ok"}
    ready = asgi_call(app, "GET", "/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    asgi_call(app, "GET", "/check/public/a", DEST)
    metrics = asgi_call(app, "GET", "/metrics").text
    assert 'meshward_authz_decisions_total{result="allow",rule="public"} 1.0' in metrics
    assert "meshward_authz_decision_seconds_bucket" in metrics

    (policy_dir / "main.policy").write_text("service reviews.default {\n  allow GIT\n")
    refused = asgi_call(app, "POST", "/admin/reload")
    assert refused.status_code == 422 and "main.policy" in refused.json()["error"]
    details = asgi_call(app, "GET", "/readyz").json()
    assert details["ready"] is True and "main.policy" in details["last_error"]
    assert (
        'meshward_authz_policy_reloads_total{result="failure"} 1.0'
        in asgi_call(app, "GET", "/metrics").text
    )
    assert asgi_call(app, "GET", "/check/public/a", DEST).status_code == 200  # last good policy

    (policy_dir / "main.policy").write_text("service reviews.default {\n  allow GET /{**}\n}\n")
    accepted = asgi_call(app, "POST", "/admin/reload")
    assert accepted.status_code == 200 and accepted.json()["rules"] == 1
    assert asgi_call(app, "GET", "/readyz").json()["last_error"] is None


def test_not_ready_before_the_first_policy(
    asgi_call: AsgiCall, make_authorizer: MakeAuthorizer
) -> None:
    app = build_http_app(make_authorizer(load=False))
    response = asgi_call(app, "GET", "/readyz")
    assert response.status_code == 503 and response.json()["ready"] is False
    check = asgi_call(app, "GET", "/check/public/a", DEST)
    assert check.status_code == 403 and check.json()["rule"] == core.RULE_NOT_READY
