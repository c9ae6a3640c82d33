"""The rotation service: keeps workload SVIDs fresh and runs CA rotation on schedule."""

from __future__ import annotations

import datetime as dt
import logging
import threading

from meshward.ca.authority import utcnow
from meshward.ca.errors import CaError
from meshward.ca.manager import TrustDomainCa
from meshward.ca.rotation import RotationReport, Rotator

from .metrics import CaMetrics

log = logging.getLogger("meshward.ca.rotation")


class RotationService:
    """One pass = CA maintenance (prepare/activate/retire when due) + workload renewals."""

    def __init__(
        self,
        ca: TrustDomainCa,
        rotator: Rotator,
        metrics: CaMetrics,
        *,
        interval: dt.timedelta = dt.timedelta(seconds=30),
    ) -> None:
        self.ca = ca
        self.rotator = rotator
        self.metrics = metrics
        self.interval = interval

    def run_once(self, *, force: bool = False) -> RotationReport:
        """Do one pass now; failures are counted and logged, never raised."""
        try:
            for step in self.ca.maintain():
                log.info("CA rotation: %s", step)
        except (CaError, OSError) as exc:
            log.error("CA rotation failed: %s", exc)
            self.metrics.rotation_failures.inc()
        except Exception:  # a bug must not end the loop that keeps certificates fresh
            log.exception("CA rotation failed unexpectedly")
            self.metrics.rotation_failures.inc()
        try:
            report = self.rotator.run_once(force=force)
        except Exception as exc:
            log.exception("renewal pass failed unexpectedly")
            reason = f"renewal pass failed: {type(exc).__name__}"
            report = RotationReport(failed=[(w.spiffe_id, reason) for w in self.rotator.workloads])
        for spiffe_id in report.renewed:
            log.info("renewed X.509-SVID for %s", spiffe_id)
        for spiffe_id, reason in report.failed:
            log.error("renewal of %s failed: %s", spiffe_id, reason)
        self.metrics.svids_issued.labels("x509").inc(len(report.renewed))
        self.metrics.rotation_failures.inc(len(report.failed))
        self.metrics.set_earliest_expiry(report.earliest_expiry)
        return report

    def run(self, stop: threading.Event) -> None:
        """Run passes until ``stop`` is set, sleeping until the next renewal is due (at most
        ``interval``, at least one second). Failed renewals retry after one second, then
        two, four and so on up to ``interval``: a lasting fault is not retried (and
        logged) every second."""
        failures = 0
        while not stop.is_set():
            report = self.run_once()
            wait = self.interval
            failures = failures + 1 if report.failed else 0
            if failures:
                wait = retry_after(failures, self.interval)
            if report.next_due is not None:  # healthy workloads are not kept waiting
                wait = min(wait, max(report.next_due - utcnow(), dt.timedelta(seconds=1)))
            stop.wait(wait.total_seconds())


def retry_after(failures: int, ceiling: dt.timedelta) -> dt.timedelta:
    """How long to wait after ``failures`` failed passes in a row: 1 s, doubling."""
    return min(dt.timedelta(seconds=2 ** min(failures - 1, 16)), ceiling)
