"""X.509-SVID issuance throughput against the raw ECDSA P-256 signing rate, and the time to
rotate many workloads' SDS files.

Run ``python -m bench.ca_issuance`` (or ``python -m bench ca``); prints a markdown section
and writes it to ``bench/RESULTS.md`` under "## CA issuance" (other sections are kept).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cryptography
from cryptography import x509
from cryptography.hazmat.backends.openssl import backend
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from meshward.ca.authority import create_root
from meshward.ca.csr import approve_csr
from meshward.ca.manager import CaSettings, TrustDomainCa
from meshward.ca.rotation import Rotator, Workload
from meshward.ca.spiffe_id import SpiffeId
from meshward.ca.store import FileStore
from meshward.ca.x509_svid import issue_x509_svid, issue_x509_svid_with_key

from .__main__ import machine, write_section

HEADING = "## CA issuance"
TD = "bench.example"


def rates(
    operations: list[tuple[str, Callable[[int], None]]], count: int, rounds: int
) -> list[tuple[str, float]]:
    """Median operations per second of each operation over ``rounds`` runs of ``count``.

    Rounds are interleaved across operations, so a change in machine load during the run
    affects every row alike and the ratios stay fair.
    """
    samples: dict[str, list[float]] = {name: [] for name, _ in operations}
    for _ in range(rounds):
        for name, operation in operations:
            start = time.perf_counter()
            for i in range(count):
                operation(i)
            samples[name].append(count / (time.perf_counter() - start))
    return [(name, statistics.median(samples[name])) for name, _ in operations]


def measure_issuance(count: int, rounds: int) -> list[tuple[str, float]]:
    root = create_root(TD, ttl=dt.timedelta(days=30))
    signer = root.issue_intermediate(ttl=dt.timedelta(days=10))
    ids = [SpiffeId(TD, f"/ns/bench/sa/w{i}") for i in range(count)]
    raw_key = ec.generate_private_key(ec.SECP256R1())
    digest_input = b"x" * 256

    # CSRs are made by workloads, ahead of time: only the CA's work is timed.
    csrs = []
    for spiffe_id in ids:
        key = ec.generate_private_key(ec.SECP256R1())
        san = x509.SubjectAlternativeName([x509.UniformResourceIdentifier(str(spiffe_id))])
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([]))
            .add_extension(san, critical=False)
            .sign(key, hashes.SHA256())
        )
        csrs.append(csr.public_bytes(Encoding.PEM))

    def raw_sign(_: int) -> None:
        raw_key.sign(digest_input, ec.ECDSA(hashes.SHA256()))

    now = dt.datetime.now(dt.UTC)
    bare_name = x509.Name([])

    def bare_certificate(i: int) -> None:
        # The cheapest certificate cryptography can build: what any issuer on it pays.
        x509.CertificateBuilder().subject_name(bare_name).issuer_name(bare_name).public_key(
            raw_key.public_key()
        ).serial_number(i + 1).not_valid_before(now).not_valid_after(
            now + dt.timedelta(hours=1)
        ).sign(raw_key, hashes.SHA256())

    def from_csr(i: int) -> None:
        approved = approve_csr(csrs[i], ids[i])
        issue_x509_svid(signer, approved.spiffe_id, approved.public_key).chain_pem()

    def with_key(i: int) -> None:
        svid = issue_x509_svid_with_key(signer, ids[i])
        svid.chain_pem()
        svid.private_key_pem()

    return rates(
        [
            ("raw ECDSA P-256 sign (the physical limit)", raw_sign),
            ("bare certificate, no extensions (cryptography's floor)", bare_certificate),
            ("X.509-SVID from a CSR (parse, verify CSR, sign, PEM)", from_csr),
            ("X.509-SVID with a generated key (keygen, sign, PEM)", with_key),
        ],
        count,
        rounds,
    )


def measure_rotation(workloads: int, root: Path) -> tuple[float, float]:
    """Seconds for a first issuance and for a forced renewal of every workload's files."""
    ca = TrustDomainCa.init(FileStore(root / "ca"), TD, CaSettings())
    rotator = Rotator(
        ca, [Workload(SpiffeId(TD, f"/w{i}"), root / f"w{i}") for i in range(workloads)]
    )
    start = time.perf_counter()
    first = rotator.run_once()
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    again = rotator.run_once(force=True)
    renew_s = time.perf_counter() - start
    if len(first.renewed) != workloads or len(again.renewed) != workloads:
        raise RuntimeError(f"rotation failed: {first.failed[:3]} {again.failed[:3]}")
    return first_s, renew_s


def filesystems() -> list[tuple[str, Path]]:
    """Where to time rotation: the default temporary directory's disk, and tmpfs (what
    Kubernetes atomic-writer volumes use) when the machine has one."""
    places = [
        (
            f"{tempfile.gettempdir()} ({_fs_type(Path(tempfile.gettempdir()))})",
            Path(tempfile.gettempdir()),
        )
    ]
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        places.append((f"/dev/shm ({_fs_type(shm)})", shm))
    return places


def _fs_type(path: Path) -> str:
    """The filesystem type and mount options of ``path`` (from /proc/mounts), if known."""
    best = ("", "unknown", "")
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            _, mount, kind, options, *_ = line.split()
            if str(path.resolve()).startswith(mount) and len(mount) >= len(best[0]):
                best = (mount, kind, options)
    except OSError:
        pass
    discard = ", discard" if "discard" in best[2].split(",") else ""
    return f"{best[1]}{discard}"


def report(
    issuance: list[tuple[str, float]],
    workloads: int,
    rotation: list[tuple[str, float, float]],
    load: tuple[float, float, float],
) -> str:
    raw = issuance[0][1]
    lines = [
        HEADING,
        "",
        f"Machine: {machine()}; cryptography {cryptography.__version__} on "
        f"{backend.openssl_version_text()}. Load average when the run started: "
        f"{load[0]:.1f} (other jobs share the machine; ratios come from interleaved rounds).",
        "",
        "| operation | per second (median) | vs raw signing |",
        "| --- | ---: | ---: |",
    ]
    for name, value in issuance:
        lines.append(f"| {name} | {value:,.0f} | {value / raw:.0%} |")
    best = max(value for _, value in issuance[2:]) / raw
    worst = min(value for _, value in issuance[2:]) / raw
    lines += [
        "",
        "The CSR path verifies the CSR's signature, and one ECDSA verification costs several "
        "signatures; the bare certificate row is what `cryptography`'s certificate builder "
        "costs before any SPIFFE extension, so it bounds every issuer built on it.",
        "",
        f"Rotation of {workloads:,} workloads' SDS directories (fresh key, files flushed to "
        "disk, `..data` swap, previous version deleted), in seconds:",
        "",
        "| filesystem | first issuance | forced renewal |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {place} | {first:.1f} | {renew:.1f} |" for place, first, renew in rotation]
    fastest = min(renew for _, _, renew in rotation)
    slowest = max(renew for _, _, renew in rotation)
    if workloads < 10_000:
        verdict = "not measured"
    else:
        verdict = "met" if slowest < 30 else "partly met" if fastest < 30 else "not met"
    lines += [
        "",
        "| target | measured | |",
        "| --- | --- | --- |",
        f"| issuance ≥ 40 % of raw signing | {worst:.0%} – {best:.0%} | "
        f"{'met' if worst >= 0.4 else 'partly met' if best >= 0.4 else 'not met'} |",
        f"| rotate 10,000 workloads < 30 s | {fastest:.1f} – {slowest:.1f} s for "
        f"{workloads:,} | {verdict} |",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ca_issuance")
    parser.add_argument("--count", type=int, default=2_000, help="issuances per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workloads", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="small counts, not written")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.quick:
        args.count, args.rounds, args.workloads, args.no_write = 200, 3, 200, True
    load = os.getloadavg()
    issuance = measure_issuance(args.count, args.rounds)
    rotation = []
    for place, parent in filesystems():
        with tempfile.TemporaryDirectory(prefix="meshward-bench-", dir=parent) as tmp:
            rotation.append((place, *measure_rotation(args.workloads, Path(tmp))))
    section = report(issuance, args.workloads, rotation, load)
    print(section)
    if not args.no_write:
        write_section(section, heading=HEADING)
    return 0


if __name__ == "__main__":
    sys.exit(main())
