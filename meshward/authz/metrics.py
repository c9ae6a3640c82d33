"""Prometheus metrics of the ext_authz service, in a registry of their own."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import accumulate

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from .decision_stats import LATENCY_BUCKETS, TRANSPORTS, DecisionCounts
from .holder import ReloadResult


class AuthzMetrics:
    """Counters and histograms; ``decision`` is called once per check."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        counts = DecisionCounts()
        r.register(DecisionStats(counts))
        self.reloads = Counter(
            "meshward_authz_policy_reloads",
            "Policy load attempts by result (success, failure)",
            ["result"],
            registry=r,
        )
        self.policy_rules = Gauge(
            "meshward_authz_policy_rules", "Rules in the policy being served", registry=r
        )
        self.last_reload_ok = Gauge(
            "meshward_authz_policy_last_reload_success",
            "1 when the last policy load succeeded, 0 when it was refused",
            registry=r,
        )
        self.jwt_failures = Counter(
            "meshward_authz_jwt_failures",
            "Presented JWTs that failed verification, by reason",
            ["reason"],
            registry=r,
        )
        self.internal_errors = Counter(
            "meshward_authz_internal_errors",
            "Checks denied because of an internal error (fail closed)",
            registry=r,
        )
        self.decision = counts.record  # once per check: no extra call layer

    def reload(self, result: ReloadResult) -> None:
        self.reloads.labels("success" if result.ok else "failure").inc()
        self.last_reload_ok.set(1 if result.ok else 0)
        self.policy_rules.set(result.rule_count)


class DecisionStats(Collector):
    """Exports :class:`DecisionCounts` as a Prometheus counter and histogram."""

    def __init__(self, counts: DecisionCounts) -> None:
        self._source = counts

    def collect(self) -> Iterator[Metric]:
        counts, created, buckets, sums, started = self._source.snapshot()
        decisions = _decisions_family()
        for (allowed, rule), n in sorted(counts.items()):
            labels = ["allow" if allowed else "deny", rule]
            decisions.add_metric(labels, n, created=created[(allowed, rule)])
        yield decisions
        latency = _latency_family()
        # prometheus-client's own bucket spelling (its helper is not annotated).
        bounds = [floatToGoString(b) for b in (*LATENCY_BUCKETS, float("inf"))]  # type: ignore[no-untyped-call]
        for transport in TRANSPORTS:
            cumulative = accumulate(buckets[transport])
            pairs = list(zip(bounds, cumulative, strict=True))
            latency.add_metric([transport], pairs, sums[transport])
            # HistogramMetricFamily takes no creation time: add the sample itself.
            created_labels = {"transport": transport}
            latency.samples.append(Sample(f"{latency.name}_created", created_labels, started))
        yield latency

    def describe(self) -> Iterator[Metric]:
        yield _decisions_family()
        yield _latency_family()


def _decisions_family() -> CounterMetricFamily:
    return CounterMetricFamily(
        "meshward_authz_decisions",
        "ext_authz decisions by result (allow, deny) and deciding rule",
        labels=["result", "rule"],
    )


def _latency_family() -> HistogramMetricFamily:
    return HistogramMetricFamily(
        "meshward_authz_decision_seconds",
        "Time to decide one ext_authz check, in the service",
        labels=["transport"],
    )
