"""kill -9 at random points of issuance and rotation; every restart must be consistent."""

from __future__ import annotations

import datetime as dt
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509 import verification

from meshward.ca.manager import Status, TrustDomainCa
from meshward.ca.rotation import Rotator, Workload
from meshward.ca.sds_files import DATA_LINK, current_version
from meshward.ca.spiffe_id import SpiffeId
from meshward.ca.store import FileStore

WORKLOADS = [SpiffeId.parse(f"spiffe://example.org/w{i}") for i in range(3)]
KILLS = 12  # at least this many kills...
MAX_KILLS = 40  # ...and more, up to this bound, until a generation has really retired

# The victim: renews every workload and walks CA rotation stages in a loop, on a virtual
# clock (persisted before it is used, so it only moves forward across restarts) that
# advances 20 minutes a step, so certificates expire and generations really retire.
VICTIM = r"""
import datetime as dt, random, sys
from pathlib import Path
from meshward.ca.fsio import atomic_write
from meshward.ca.manager import TrustDomainCa
from meshward.ca.rotation import RenewalPolicy, Rotator, Workload
from meshward.ca.spiffe_id import SpiffeId
from meshward.ca.store import FileStore

root = Path(sys.argv[1])
rng = random.Random(int(sys.argv[2]))
ca = TrustDomainCa.open(FileStore(root / "ca"))
ids = [SpiffeId.parse(f"spiffe://example.org/w{i}") for i in range(3)]
workloads = [Workload(spiffe_id, root / spiffe_id.path[1:]) for spiffe_id in ids]
rotator = Rotator(ca, workloads, RenewalPolicy(ttl=dt.timedelta(hours=1)))
clock = root / "clock"
for _ in range(100_000):
    now = dt.datetime.fromisoformat(clock.read_text()) + dt.timedelta(minutes=20)
    atomic_write(clock, now.isoformat().encode())
    rotator.run_once(now=now, force=True)
    step = rng.choice(["prepare", "prepare-root", "activate", "retire", "none"])
    try:
        if step == "prepare":
            ca.prepare(now=now)
        elif step == "prepare-root":
            ca.prepare(root=True, now=now)
        elif step == "activate":
            ca.activate(now=now)
        elif step == "retire":
            ca.retire(now=now)
    except Exception as exc:  # a stage out of order is refused: that is fine here
        if type(exc).__name__ != "AuthorityError":
            raise
    print("step", flush=True)
"""


def _check_consistent(root: Path) -> None:
    store = FileStore(root / "ca")
    ca = TrustDomainCa.open(store)  # loads every live key and checks it matches its cert
    live = {a.name for a in ca.state.authorities if a.status is not Status.RETIRED}
    expected_keys = live | {
        f"{a.name}.jwt" for a in ca.state.authorities if a.name in live and a.jwt_kid
    }
    assert set(store.key_names()) == expected_keys  # no lost key, no orphan
    Rotator(ca, [Workload(s, root / s.path[1:]) for s in WORKLOADS])  # repairs directories
    subjects = {
        x509.load_pem_x509_certificate(store.read_cert(a.name)).subject: a
        for a in ca.state.authorities
    }
    for spiffe_id in WORKLOADS:
        directory = root / spiffe_id.path[1:]
        version = current_version(directory)
        if version is None:
            continue  # killed before the first publication
        entries = {p.name for p in directory.iterdir() if p.name.startswith("..")}
        assert entries == {DATA_LINK, version.name}  # no half-written version survives
        chain = x509.load_pem_x509_certificates((directory / "cert.pem").read_bytes())
        key = load_pem_private_key((directory / "key.pem").read_bytes(), None)
        assert chain[0].public_key() == key.public_key()
        anchors = x509.load_pem_x509_certificates((directory / "bundle.pem").read_bytes())
        at = chain[0].not_valid_before_utc + dt.timedelta(minutes=2)
        verifier = (
            verification.PolicyBuilder()
            .store(verification.Store(anchors))
            .time(at)
            .build_client_verifier()
        )
        verifier.verify(chain[0], chain[1:])
        issuer = subjects[chain[0].issuer]  # a generation the state knows
        assert issuer.signed_until is not None  # recorded before the certificate left
        assert chain[0].not_valid_after_utc <= dt.datetime.fromisoformat(issuer.signed_until)
        if issuer.status is Status.RETIRED:
            continue  # retired only after that expiry had passed
        # Still signed by a live generation: the current bundle must verify it.
        current = (
            verification.PolicyBuilder()
            .store(verification.Store(list(ca.bundle().x509_authorities)))
            .time(at)
            .build_client_verifier()
        )
        current.verify(chain[0], chain[1:])


def test_sigkill_at_random_points_leaves_a_consistent_state(tmp_path: Path) -> None:
    TrustDomainCa.init(FileStore(tmp_path / "ca"), "example.org")
    (tmp_path / "clock").write_text(dt.datetime.now(dt.UTC).isoformat())
    rng = random.Random(4)
    kills = 0
    while kills < KILLS or (not _retired_any(tmp_path) and kills < MAX_KILLS):
        victim = subprocess.Popen(
            [sys.executable, "-c", VICTIM, str(tmp_path), str(kills)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # Let it finish one step, then kill it somewhere inside a later one.
        assert victim.stdout is not None
        ready, _, _ = select.select([victim.stdout], [], [], 60)
        assert ready, "the victim never reached its loop"
        assert victim.stdout.readline() == "step\n"
        time.sleep(rng.uniform(0.0, 0.5))
        os.kill(victim.pid, signal.SIGKILL)
        _, err = victim.communicate(timeout=30)
        assert victim.returncode == -signal.SIGKILL, err
        kills += 1
        _check_consistent(tmp_path)
    assert _retired_any(tmp_path)  # CA rotation really ran through all its stages


def _retired_any(root: Path) -> bool:
    generations = TrustDomainCa.open(FileStore(root / "ca")).generations()
    return any(g.status == "retired" for g in generations)
