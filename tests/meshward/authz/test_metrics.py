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


def test_latency_histogram_matches_prometheus_clients_own() -> None:
    """The hand-kept histogram exports exactly what prometheus-client's Histogram would
    for the same observations: every bucket (boundaries included), count and sum."""
    from prometheus_client import CollectorRegistry, Histogram

    from meshward.authz.metrics import LATENCY_BUCKETS

    values = [0.0, 0.00001, 0.000011, 0.000025, 0.0004, 0.001, 0.003, 0.05, 0.06, 7.0]
    metrics = AuthzMetrics()
    reference_registry = CollectorRegistry()
    reference = Histogram(
        "meshward_authz_decision_seconds",
        "reference",
        ["transport"],
        buckets=LATENCY_BUCKETS,
        registry=reference_registry,
    )
    for v in values:
        metrics.decision(True, "r", "grpc", v)
        reference.labels("grpc").observe(v)

    def samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
        out = {}
        for family in registry.collect():
            for s in family.samples:
                wanted = s.name.startswith("meshward_authz_decision_seconds")
                if wanted and s.labels["transport"] == "grpc":
                    out[(s.name, s.labels.get("le", ""))] = s.value
        return out

    ours, theirs = samples(metrics.registry), samples(reference_registry)
    assert ours.keys() == theirs.keys()  # the same series, `_created` included
    for key, value in theirs.items():
        if not key[0].endswith("_created"):  # a time: not the same in both
            assert abs(ours[key] - value) < 1e-12, key


def test_exposition_has_the_series_prometheus_clients_own_would() -> None:
    """Scraped as text, the decision counter and latency histogram show the series a
    prometheus-client Counter and Histogram would: totals, buckets, counts, sums, created."""
    from prometheus_client import generate_latest

    metrics = AuthzMetrics()
    metrics.decision(False, "r9", "http", 0.0002)
    text = generate_latest(metrics.registry).decode()
    for line in (
        'meshward_authz_decisions_total{result="deny",rule="r9"} 1.0',
        'meshward_authz_decision_seconds_bucket{le="0.00025",transport="http"} 1.0',
        'meshward_authz_decision_seconds_bucket{le="0.0001",transport="http"} 0.0',
        'meshward_authz_decision_seconds_bucket{le="+Inf",transport="http"} 1.0',
        'meshward_authz_decision_seconds_count{transport="http"} 1.0',
        'meshward_authz_decision_seconds_count{transport="grpc"} 0.0',
    ):
        assert line in text, line
    assert 'meshward_authz_decisions_created{result="deny",rule="r9"}' in text
    assert 'meshward_authz_decision_seconds_created{transport="http"}' in text


def test_decision_counts_are_exact_under_threads() -> None:
    import threading

    metrics = AuthzMetrics()
    n, threads = 2000, 8

    def work(i: int) -> None:
        for k in range(n):
            metrics.decision(k % 2 == 0, f"r{i % 2}", "grpc", 0.00001 * k)

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    get = metrics.registry.get_sample_value
    total = sum(
        get("meshward_authz_decisions_total", {"result": r, "rule": rule}) or 0
        for r in ("allow", "deny")
        for rule in ("r0", "r1")
    )
    assert total == n * threads
    assert get("meshward_authz_decision_seconds_count", {"transport": "grpc"}) == n * threads
