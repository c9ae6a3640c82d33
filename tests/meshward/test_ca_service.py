"""The rotation service's passes: a failure is counted and logged, and never ends the loop."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest

from meshward.ca.authority import utcnow
from meshward.ca.manager import TrustDomainCa
from meshward.ca.rotation import RotationReport, Rotator, Workload
from meshward.ca.spiffe_id import SpiffeId
from meshward.ca.store import FileStore
from meshward.ca_service.metrics import CaMetrics
from meshward.ca_service.service import RotationService, retry_after

A = SpiffeId.parse("spiffe://example.org/a")


def test_an_unexpected_failure_is_counted_and_the_pass_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = TrustDomainCa.init(FileStore(tmp_path / "ca"), "example.org")
    metrics = CaMetrics()
    service = RotationService(ca, Rotator(ca, [Workload(A, tmp_path / "a")]), metrics)

    def broken(**_: object) -> list[str]:
        raise KeyError("intermediate-3")

    monkeypatch.setattr(ca, "maintain", broken)
    assert service.run_once().renewed == [A]  # renewals still ran after the CA step failed
    monkeypatch.setattr(service.rotator, "run_once", broken)
    assert service.run_once(force=True).failed == [(A, "renewal pass failed: KeyError")]
    failures = metrics.registry.get_sample_value("meshward_ca_rotation_failures_total")
    assert failures == 3  # the CA step twice, the renewal once


def test_failed_passes_are_retried_ever_more_slowly_up_to_the_interval() -> None:
    ceiling = dt.timedelta(seconds=30)
    waits = [retry_after(n, ceiling).total_seconds() for n in range(1, 8)]
    assert waits == [1, 2, 4, 8, 16, 30, 30]


def test_a_failing_workload_does_not_delay_the_renewals_of_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = TrustDomainCa.init(FileStore(tmp_path / "ca"), "example.org")
    service = RotationService(
        ca, Rotator(ca, [Workload(A, tmp_path / "a")]), CaMetrics(), interval=dt.timedelta(hours=1)
    )
    soon = utcnow() + dt.timedelta(seconds=20)
    failing = [RotationReport(failed=[(A, "broken")]) for _ in range(6)]
    reports = iter([*failing, RotationReport(failed=[(A, "broken")], next_due=soon)])
    monkeypatch.setattr(service, "run_once", lambda: next(reports))
    waits: list[float] = []

    class Stop(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            waits.append(float(timeout or 0))
            if len(waits) == 7:
                self.set()
            return self.is_set()

    service.run(Stop())
    assert waits[:6] == [1, 2, 4, 8, 16, 32]  # backing off...
    assert 15 < waits[6] <= 20  # ...but never past another workload's renewal time
