"""Prometheus metrics of the CA service, on a registry of its own."""

from __future__ import annotations

import datetime as dt
import math
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class CaMetrics:
    """SVIDs issued, rotation failures, and seconds until the earliest managed expiry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.svids_issued = Counter(
            "meshward_ca_svids_issued",
            "SVIDs issued, by kind (x509 or jwt)",
            ["kind"],
            registry=self.registry,
        )
        self.rotation_failures = Counter(
            "meshward_ca_rotation_failures",
            "Workload SVID renewals that failed",
            registry=self.registry,
        )
        self._earliest_expiry = math.inf
        gauge = Gauge(
            "meshward_ca_seconds_to_earliest_expiry",
            "Seconds until the earliest expiry among the workload SVIDs this service manages",
            registry=self.registry,
        )
        gauge.set_function(lambda: self._earliest_expiry - time.time())

    def set_earliest_expiry(self, when: dt.datetime | None) -> None:
        """Record the earliest expiry seen by the last rotation pass."""
        self._earliest_expiry = math.inf if when is None else when.timestamp()

    def render(self) -> bytes:
        """The metrics in the Prometheus text exposition format."""
        return generate_latest(self.registry)
