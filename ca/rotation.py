"""Workload certificate rotation: keep a set of workloads holding valid, fresh SVIDs."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from .authority import load_pem_certificates, utcnow
from .errors import CaError
from .manager import TrustDomainCa
from .sds_files import (
    BUNDLE_FILE,
    CERT_FILE,
    current_version,
    repair,
    write_svid_files_batch,
)
from .spiffe_id import SpiffeId
from .x509_svid import DEFAULT_SVID_TTL, check_leaf_id, spiffe_id_of


@dataclass(frozen=True)
class Workload:
    """A SPIFFE ID and the directory its SVID files are published in."""

    spiffe_id: SpiffeId
    directory: Path


@dataclass(frozen=True)
class RenewalPolicy:
    """When to renew: at ``fraction`` of the lifetime, moved by up to ±``jitter`` of it."""

    ttl: dt.timedelta = DEFAULT_SVID_TTL
    fraction: float = 0.5
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if not 0 < self.fraction < 1 or not 0 <= self.jitter < min(
            self.fraction, 1 - self.fraction
        ):
            raise ValueError("need 0 < fraction < 1 and 0 <= jitter < min(fraction, 1-fraction)")

    def renew_at(self, cert: x509.Certificate) -> dt.datetime:
        """When ``cert`` is due for renewal.

        The jitter is drawn from the serial number, so it is stable across restarts yet
        spreads renewals of certificates issued together.
        """
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        shift = random.Random(cert.serial_number).uniform(-self.jitter, self.jitter)
        return start + (end - start) * (self.fraction + shift)


@dataclass
class RotationReport:
    """What one rotation pass did."""

    renewed: list[SpiffeId] = field(default_factory=list)
    failed: list[tuple[SpiffeId, str]] = field(default_factory=list)
    next_due: dt.datetime | None = None
    earliest_expiry: dt.datetime | None = None


class Rotator:
    """Renews the SVIDs of a fixed set of workloads, each in its own SDS directory."""

    def __init__(
        self,
        ca: TrustDomainCa,
        workloads: Sequence[Workload],
        policy: RenewalPolicy | None = None,
    ) -> None:
        self.ca = ca
        self.workloads = list(workloads)
        self.policy = policy or RenewalPolicy()
        # Refused here, not at issuance: renewals are issued as one batch, so one bad ID
        # would stop every workload's renewal.
        for workload in self.workloads:
            check_leaf_id(workload.spiffe_id, ca.trust_domain)
        # Two workloads writing one directory would remove each other's versions.
        seen: dict[Path, SpiffeId] = {}
        for workload in self.workloads:
            where = workload.directory.resolve()
            if where in seen:
                raise CaError(
                    f"{workload.spiffe_id} and {seen[where]} would share the directory {where}",
                    code="shared-directory",
                )
            seen[where] = workload.spiffe_id
        for workload in self.workloads:
            repair(workload.directory)

    def _due_reason(
        self, workload: Workload, bundle_pem: bytes, now: dt.datetime
    ) -> tuple[str | None, x509.Certificate | None]:
        version = current_version(workload.directory)
        if version is None:
            return "no SVID yet", None
        try:
            leaf = load_pem_certificates((version / CERT_FILE).read_bytes())[0]
            published_bundle = (version / BUNDLE_FILE).read_bytes()
        except (OSError, CaError) as exc:
            return f"unreadable files: {exc}", None
        if published_bundle != bundle_pem:
            return "trust bundle changed", leaf
        try:
            if spiffe_id_of(leaf) != workload.spiffe_id:
                return "the SVID names another SPIFFE ID", leaf
        except CaError as exc:
            return f"unreadable files: {exc}", None
        signer = self.ca.signer.certificate
        if leaf.issuer != signer.subject:
            return "signed by a previous CA generation", leaf
        if now >= self.policy.renew_at(leaf):
            return "renewal time reached", leaf
        return None, leaf

    def run_once(self, *, now: dt.datetime | None = None, force: bool = False) -> RotationReport:
        """Renew every workload that is due (all of them with ``force``), each with a fresh key."""
        now = now or utcnow()
        report = RotationReport()
        due: list[Workload] = []
        expiries: list[dt.datetime] = []
        try:
            # The bundle written next to each SVID must be the one in force when it was
            # signed: read both under the CA's lock.
            with self.ca.locked():
                bundle = self.ca.bundle()
                bundle_pem = bundle.to_pem()
                for workload in self.workloads:
                    if force:
                        due.append(workload)
                        continue
                    reason, leaf = self._due_reason(workload, bundle_pem, now)
                    if reason is not None:
                        due.append(workload)
                    elif leaf is not None:
                        expiries.append(leaf.not_valid_after_utc)
                        report.next_due = _earliest(report.next_due, self.policy.renew_at(leaf))
                svids = self.ca.issue_x509_batch(
                    [(w.spiffe_id, None) for w in due], ttl=self.policy.ttl, now=now
                )
        except (CaError, OSError) as exc:
            reason = f"issuance failed: {exc}"
            report.failed = [(w.spiffe_id, reason) for w in due or self.workloads]
            return report
        failed = write_svid_files_batch(
            [(w.directory, svid) for w, svid in zip(due, svids, strict=True)], bundle
        )
        for workload, svid in zip(due, svids, strict=True):
            if workload.directory in failed:
                error = failed[workload.directory]
                report.failed.append((workload.spiffe_id, f"cannot write files: {error}"))
                continue
            report.renewed.append(workload.spiffe_id)
            expiries.append(svid.not_after)
            report.next_due = _earliest(report.next_due, self.policy.renew_at(svid.leaf))
        report.earliest_expiry = min(expiries, default=None)
        return report


def _earliest(a: dt.datetime | None, b: dt.datetime) -> dt.datetime:
    return b if a is None or b < a else a
