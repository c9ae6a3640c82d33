"""The transport-independent check: destination, identity, JWT, status, headers, fail-closed."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from meshward.authz import core
from meshward.authz.core import CheckInput
from meshward.authz.metrics import AuthzMetrics
from meshward.testing.jwt_issuer import TestIssuer

MakeAuthorizer = Callable[..., core.Authorizer]

PRODUCTPAGE = "spiffe://cluster.local/ns/default/sa/productpage"


def _input(method: str = "GET", path: str = "/reviews/1", **kw: Any) -> CheckInput:
    kw.setdefault("destination", "reviews.default")
    headers = kw.pop("headers", {})
    return CheckInput(method=method, path=path, host="reviews:9080", headers=headers, **kw)


def _metric(authorizer: core.Authorizer, name: str, labels: dict[str, str]) -> float:
    value = authorizer.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


def test_allow_sets_identity_and_decision_headers(make_authorizer: MakeAuthorizer) -> None:
    authorizer = make_authorizer()
    out = authorizer.check(_input(principal=PRODUCTPAGE), "http")
    assert out.allowed and out.status == 200 and out.rule == "reviews-read"
    headers = dict(out.upstream_headers)
    assert headers["x-meshward-principal"] == PRODUCTPAGE
    assert headers[core.DECISION_ID_HEADER] == out.decision_id
    labels = {"result": "allow", "rule": "reviews-read"}
    assert _metric(authorizer, "meshward_authz_decisions_total", labels) == 1


def test_allow_without_identity_strips_the_identity_header(
    make_authorizer: MakeAuthorizer,
) -> None:
    out = make_authorizer().check(_input(path="/public/a"), "http")
    assert out.allowed
    assert "x-meshward-principal" in out.remove_headers
    assert "x-meshward-principal" not in dict(out.upstream_headers)


def test_deny_has_status_body_and_rule(make_authorizer: MakeAuthorizer) -> None:
    authorizer = make_authorizer()
    out = authorizer.check(_input(path="/admin/x", principal=PRODUCTPAGE), "http")
    assert not out.allowed and out.status == 403
    assert json.loads(out.body) == {
        "decision_id": out.decision_id,
        "decision": "deny",
        "reason": "denied by rule admin-only-ops",
        "rule": "admin-only-ops",
    }
    assert dict(out.deny_headers)[core.RULE_HEADER] == "admin-only-ops"
    default = authorizer.check(_input(path="/other"), "http")
    assert default.rule == core.RULE_DEFAULT and default.status == 403


def test_decision_ids_are_unique(make_authorizer: MakeAuthorizer) -> None:
    authorizer = make_authorizer()
    ids = {authorizer.check(_input(), "http").decision_id for _ in range(100)}
    assert len(ids) == 100
    # A random per-process prefix, then a counter in hex.
    assert all(re.fullmatch(r"[0-9a-f]{12}-[0-9a-f]+", i) for i in ids), ids
    assert len({i.split("-")[0] for i in ids}) == 1


def test_unknown_destination_and_not_ready_deny(make_authorizer: MakeAuthorizer) -> None:
    out = make_authorizer().check(CheckInput("GET", "/public/a", "nowhere.example", {}), "http")
    assert not out.allowed and out.rule == core.RULE_UNKNOWN_DESTINATION
    named = make_authorizer().check(_input(destination="ghost"), "http")
    assert not named.allowed and "no policy for destination ghost" in named.reason
    not_ready = make_authorizer(load=False).check(_input(path="/public/a"), "http")
    assert not not_ready.allowed and not_ready.rule == core.RULE_NOT_READY


def test_host_map_names_the_destination(make_authorizer: MakeAuthorizer) -> None:
    authorizer = make_authorizer(destination={"hosts": {"reviews": "reviews.default"}})
    out = authorizer.check(CheckInput("GET", "/public/a", "reviews:9080", {}), "http")
    assert out.allowed
    # The destination the transport was told wins over the Host.
    named = CheckInput("GET", "/public/a", "reviews:9080", {}, destination="ghost")
    assert "destination ghost" in authorizer.check(named, "http").reason


def test_the_port_is_the_one_the_transport_reported_not_the_hosts(
    make_authorizer: MakeAuthorizer, policy_dir: Path
) -> None:
    (policy_dir / "ports.policy").write_text(
        'service ports.default:8443 { @id("no-admin") deny * /admin/{**} }\n'
        'service ports.default { @id("open") allow * /{**} from any }\n'
    )
    authorizer = make_authorizer()

    def check(host: str, port: int | None) -> core.Outcome:
        inp = CheckInput("GET", "/admin/x", host, {}, destination="ports.default", port=port)
        return authorizer.check(inp, "http")

    assert check("ports", 8443).rule == "no-admin"
    assert check("ports:8443", 8443).rule == "no-admin"
    # A Host naming another port (or none) does not move the request off port 8443's rules.
    assert check("ports:1", 8443).rule == "no-admin"
    # A request Envoy saw arrive on another port gets the any-port rules only.
    assert check("ports:8443", 9000).rule == "open"
    # Without a reported port (an Envoy that does not send it), port 8443's deny cannot be
    # ruled out: denied, whatever the Host says.
    unknown = check("ports:8443", None)
    assert not unknown.allowed and "port is unknown" in unknown.reason


def test_ambiguous_path_is_denied(make_authorizer: MakeAuthorizer) -> None:
    out = make_authorizer().check(_input(path="/public/a%2F..%2Fadmin"), "http")
    assert not out.allowed and "ambiguous path" in out.reason


def test_configured_deny_status(make_authorizer: MakeAuthorizer) -> None:
    authorizer = make_authorizer(services={"reviews.default": {"deny_status": 404}})
    assert authorizer.check(_input(path="/other"), "http").status == 404


def test_verified_jwt_feeds_claims_and_upstream_headers(
    make_authorizer: MakeAuthorizer, issuer: TestIssuer
) -> None:
    authorizer = make_authorizer(
        jwt=True,
        upstream_headers={"claims": {"sub": "x-meshward-jwt-sub", "scope": "x-meshward-jwt-scope"}},
    )
    token = issuer.token({"sub": "alice\r\nx-evil: 1", "scope": ["reviews:write"]})
    out = authorizer.check(
        _input("POST", "/reviews/1", headers={"authorization": f"Bearer {token}"}), "http"
    )
    assert out.allowed and out.rule == "reviews-write"
    headers = dict(out.upstream_headers)
    assert headers["x-meshward-jwt-sub"] == "alice\\r\\nx-evil: 1"
    assert headers["x-meshward-jwt-scope"] == '["reviews:write"]'


def test_claim_headers_are_removed_when_the_claim_is_absent(
    make_authorizer: MakeAuthorizer, issuer: TestIssuer
) -> None:
    # A client's own copy of a claim header must not reach the application when the token
    # does not carry that claim, or when there is no token at all.
    authorizer = make_authorizer(jwt=True, upstream_headers={"claims": {"sub": "x-jwt-sub"}})
    token = issuer.token({"scope": ["reviews:write"]})  # no `sub`
    for headers in ({"authorization": f"Bearer {token}", "x-jwt-sub": "alice"}, {}):
        out = authorizer.check(_input("GET", "/public/a", headers=headers), "http")
        assert out.allowed
        assert "x-jwt-sub" in out.remove_headers
        assert "x-jwt-sub" not in dict(out.upstream_headers)


def test_a_failure_to_record_does_not_change_the_decision(
    make_authorizer: MakeAuthorizer,
) -> None:
    # Metrics that fail to record: the decision stands, and nothing escapes the check.
    made = make_authorizer()

    def broken(*args: object) -> None:
        raise RuntimeError("the registry is broken")

    class Broken(AuthzMetrics):
        def __init__(self) -> None:
            super().__init__()
            self.decision = broken

    authorizer = core.Authorizer(made.settings, made.holder, Broken(), made.decision_log)
    allowed = authorizer.check(_input(principal=PRODUCTPAGE), "http")
    assert allowed.allowed and allowed.rule == "reviews-read"
    denied = authorizer.check(_input(path="/admin/x", principal=PRODUCTPAGE), "http")
    assert not denied.allowed and denied.rule == "admin-only-ops"


def test_failed_jwt_never_feeds_claims_and_says_why(
    make_authorizer: MakeAuthorizer, issuer: TestIssuer
) -> None:
    authorizer = make_authorizer(jwt=True)
    token = issuer.token({"scope": ["reviews:write"]}, ttl=-600)
    out = authorizer.check(
        _input("POST", "/reviews/1", headers={"authorization": f"Bearer {token}"}), "http"
    )
    assert not out.allowed and out.status == 403
    assert "JWT not accepted: expired" in out.reason
    assert _metric(authorizer, "meshward_authz_jwt_failures_total", {"reason": "expired"}) == 1


def test_required_jwt_answers_401(make_authorizer: MakeAuthorizer, issuer: TestIssuer) -> None:
    authorizer = make_authorizer(jwt=True, services={"reviews.default": {"require_jwt": True}})
    missing = authorizer.check(_input(path="/public/a"), "http")
    assert (missing.status, missing.rule) == (401, core.RULE_JWT_REQUIRED)
    assert dict(missing.deny_headers)["www-authenticate"] == "Bearer"
    assert "(missing)" in missing.reason
    wrong = authorizer.check(
        _input(path="/public/a", headers={"authorization": f"Bearer {issuer.token({'aud': 'x'})}"}),
        "http",
    )
    assert wrong.status == 401 and "wrong_audience" in wrong.reason
    ok = authorizer.check(
        _input(path="/public/a", headers={"authorization": f"Bearer {issuer.token()}"}), "http"
    )
    assert ok.allowed


def test_internal_error_is_a_deny(make_authorizer: MakeAuthorizer) -> None:
    authorizer = make_authorizer()
    broken = CheckInput("GET", "/public/a", None, None, destination="reviews.default")  # type: ignore[arg-type]
    out = authorizer.check(broken, "http")
    assert not out.allowed and out.status == 403
    assert out.rule == core.RULE_INTERNAL_ERROR and "internal error" in out.reason
    assert _metric(authorizer, "meshward_authz_internal_errors_total", {}) == 1


def test_decision_log_holds_no_secrets(
    make_authorizer: MakeAuthorizer, issuer: TestIssuer, tmp_path: Path
) -> None:
    log_path = tmp_path / "decisions.jsonl"
    authorizer = make_authorizer(jwt=True, decision_log={"path": str(log_path)})
    token = issuer.token({"scope": ["reviews:write"]})
    secret_headers = {
        "authorization": f"Bearer {token}",
        "cookie": "session=s3cr3t-cookie",
        "x-api-key": "k3y",
    }
    for method, path in (
        ("POST", "/reviews/1?access_token=q5ecret"),
        ("GET", "/public/probe"),
        ("GET", "/admin/x"),
    ):
        authorizer.check(_input(method, path, headers=secret_headers), "http")
    authorizer.decision_log.close()
    text = log_path.read_text()
    for secret in (token, "s3cr3t-cookie", "k3y", "q5ecret", "Bearer"):
        assert secret not in text
    records = [json.loads(line) for line in text.splitlines()]
    assert [r["result"] for r in records] == ["allow", "allow", "deny"]
    first, probe, admin = records
    assert first["path"] == "/reviews/1" and first["jwt"] == "verified"
    assert first["destination"] == "reviews.default" and first["method"] == "POST"
    assert probe["audit"] == [{"rule": "audit-probe", "would": "deny"}]
    assert admin["rule"] == "admin-only-ops"
    assert set(first) == set(
        [
            "time",
            "decision_id",
            "source",
            "destination",
            "method",
            "path",
            "result",
            "status",
            "rule",
            "reason",
            "audit",
            "jwt",
            "latency_us",
        ]
    )


def test_allowed_decisions_are_sampled(make_authorizer: MakeAuthorizer, tmp_path: Path) -> None:
    log_path = tmp_path / "decisions.jsonl"
    authorizer = make_authorizer(decision_log={"path": str(log_path), "allow_sample_rate": 0})
    for _ in range(5):
        authorizer.check(_input(path="/public/a"), "http")
        authorizer.check(_input(path="/admin/a"), "http")
    authorizer.decision_log.close()
    results = [json.loads(line)["result"] for line in log_path.read_text().splitlines()]
    assert results == ["deny"] * 5
