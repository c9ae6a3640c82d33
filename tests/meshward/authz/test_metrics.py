"""Prometheus metrics: decisions by result and rule, latency by transport, reloads."""

from __future__ import annotations

from meshward.authz.holder import ReloadResult
from meshward.authz.metrics import AuthzMetrics


def test_decisions_latency_and_reloads() -> None:
    metrics = AuthzMetrics()
    metrics.decision(True, "r1", "http", 0.00002)
    metrics.decision(True, "r1", "http", 0.00003)
    metrics.decision(False, "meshward:default", "grpc", 0.001)
    get = metrics.registry.get_sample_value
    assert get("meshward_authz_decisions_total", {"result": "allow", "rule": "r1"}) == 2
    labels = {"result": "deny", "rule": "meshward:default"}
    assert get("meshward_authz_decisions_total", labels) == 1
    assert get("meshward_authz_decision_seconds_count", {"transport": "http"}) == 2
    assert get("meshward_authz_decision_seconds_count", {"transport": "grpc"}) == 1
    metrics.reload(ReloadResult(True, "f", 12, None, 0.1))
    metrics.reload(ReloadResult(False, "f", 12, "bad", 0.1))
    assert get("meshward_authz_policy_reloads_total", {"result": "success"}) == 1
    assert get("meshward_authz_policy_reloads_total", {"result": "failure"}) == 1
    assert get("meshward_authz_policy_last_reload_success", {}) == 0
    assert get("meshward_authz_policy_rules", {}) == 12


def test_registries_are_independent() -> None:
    a, b = AuthzMetrics(), AuthzMetrics()
    a.decision(True, "r", "http", 0.0)
    labels = {"result": "allow", "rule": "r"}
    assert b.registry.get_sample_value("meshward_authz_decisions_total", labels) is None
