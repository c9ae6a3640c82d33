"""Prometheus metrics of the ext_authz service, in a registry of their own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .holder import ReloadResult

# Decision latency inside meshward, from request parsed to response built.
LATENCY_BUCKETS = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05,
)  # fmt: skip


class AuthzMetrics:
    """Counters and histograms; ``decision`` is called once per check."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.decisions = Counter(
            "meshward_authz_decisions",
            "ext_authz decisions by result (allow, deny) and deciding rule",
            ["result", "rule"],
            registry=r,
        )
        self.latency = Histogram(
            "meshward_authz_decision_seconds",
            "Time to decide one ext_authz check, in the service",
            ["transport"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
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
        # labels() takes a lock and builds a key per call; the hot path reuses children.
        self._decision_children: dict[tuple[bool, str], Counter] = {}
        self._latency_children = {t: self.latency.labels(t) for t in ("http", "grpc")}

    def decision(self, allowed: bool, rule: str, transport: str, seconds: float) -> None:
        child = self._decision_children.get((allowed, rule))
        if child is None:
            child = self.decisions.labels("allow" if allowed else "deny", rule)
            self._decision_children[(allowed, rule)] = child
        child.inc()
        self._latency_children[transport].observe(seconds)

    def reload(self, result: ReloadResult) -> None:
        self.reloads.labels("success" if result.ok else "failure").inc()
        self.last_reload_ok.set(1 if result.ok else 0)
        self.policy_rules.set(result.rule_count)
