"""Decisions by result and rule, and decision latency by transport, counted on the hot
path as plain numbers under one lock. ``metrics`` exports them to Prometheus when scraped:
prometheus-client's own Counter and Histogram cost about 3.5 µs per check (a lock per
increment, the buckets scanned in Python); :meth:`DecisionCounts.record` costs a fraction,
and is part of the compiled hot path (setup.py)."""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from typing import NamedTuple

# Decision latency inside meshward, from request parsed to response built.
LATENCY_BUCKETS = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05,
)  # fmt: skip
TRANSPORTS = ("http", "grpc")


class Snapshot(NamedTuple):
    """A consistent copy of the counts, taken under the lock."""

    counts: dict[tuple[bool, str], int]  # (allowed, rule) -> decisions
    created: dict[tuple[bool, str], float]  # when each series began (Unix time)
    buckets: dict[str, list[int]]  # per transport: a count per bucket, +Inf last, not cumulative
    sums: dict[str, float]  # per transport: seconds
    started: float  # when the latency series began


class DecisionCounts:
    """The counts; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[bool, str], int] = {}
        self._created: dict[tuple[bool, str], float] = {}
        self._started = time.time()
        self._buckets = {t: [0] * (len(LATENCY_BUCKETS) + 1) for t in TRANSPORTS}
        self._sums = dict.fromkeys(TRANSPORTS, 0.0)

    def record(self, allowed: bool, rule: str, transport: str, seconds: float) -> None:
        """Count one decision (``transport`` is one of :data:`TRANSPORTS`)."""
        key = (allowed, rule)
        slot = bisect_left(LATENCY_BUCKETS, seconds)  # the first bucket with le >= seconds
        with self._lock:
            buckets = self._buckets[transport]  # first: an unknown transport changes nothing
            count = self._counts.get(key)
            if count is None:
                count = 0
                self._created[key] = time.time()
            self._counts[key] = count + 1
            buckets[slot] += 1
            self._sums[transport] += seconds

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(
                dict(self._counts),
                dict(self._created),
                {t: list(b) for t, b in self._buckets.items()},
                dict(self._sums),
                self._started,
            )
