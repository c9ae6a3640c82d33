"""Decision counts on the hot path: series per (result, rule), latency buckets with
Prometheus' `le` boundaries, and no lost update when threads count at once."""

from __future__ import annotations

import threading

from meshward.authz.decision_stats import LATENCY_BUCKETS, TRANSPORTS, DecisionCounts


def test_counts_buckets_and_sums() -> None:
    counts = DecisionCounts()
    counts.record(True, "r1", "http", LATENCY_BUCKETS[0])  # on a boundary: that bucket
    counts.record(True, "r1", "http", LATENCY_BUCKETS[0] * 1.01)  # just above: the next
    counts.record(False, "meshward:default", "grpc", 60.0)  # beyond every bound: +Inf
    snap = counts.snapshot()
    assert snap.counts == {(True, "r1"): 2, (False, "meshward:default"): 1}
    assert set(snap.created) == set(snap.counts)
    assert snap.buckets["http"][:3] == [1, 1, 0] and sum(snap.buckets["http"]) == 2
    assert snap.buckets["grpc"][-1] == 1 and sum(snap.buckets["grpc"]) == 1
    assert snap.sums["grpc"] == 60.0
    assert set(snap.buckets) == set(snap.sums) == set(TRANSPORTS)


def test_a_snapshot_is_a_copy() -> None:
    counts = DecisionCounts()
    counts.record(True, "r", "http", 0.0)
    snap = counts.snapshot()
    counts.record(True, "r", "http", 0.0)
    assert snap.counts[(True, "r")] == 1 and sum(snap.buckets["http"]) == 1


def test_threads_lose_no_update() -> None:
    counts = DecisionCounts()
    per_thread, threads = 20_000, 4

    def work() -> None:
        for _ in range(per_thread):
            counts.record(False, "r", "grpc", 0.00002)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    snap = counts.snapshot()
    assert snap.counts[(False, "r")] == per_thread * threads
    assert sum(snap.buckets["grpc"]) == per_thread * threads
