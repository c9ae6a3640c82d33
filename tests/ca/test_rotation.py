"""Workload rotation: when renewals happen, fresh keys, reacting to CA changes, failures."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)

from meshward.ca.errors import CaError
from meshward.ca.manager import TrustDomainCa
from meshward.ca.rotation import RenewalPolicy, Rotator, Workload
from meshward.ca.spiffe_id import SpiffeId
from meshward.ca.store import FileStore

A = SpiffeId.parse("spiffe://example.org/a")
B = SpiffeId.parse("spiffe://example.org/b")


@pytest.fixture
def ca(tmp_path: Path) -> TrustDomainCa:
    return TrustDomainCa.init(FileStore(tmp_path / "ca"), "example.org")


@pytest.fixture
def rotator(ca: TrustDomainCa, tmp_path: Path) -> Rotator:
    return Rotator(ca, [Workload(A, tmp_path / "a"), Workload(B, tmp_path / "b")])


def _leaf(directory: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate((directory / "cert.pem").read_bytes())


def _key_der(directory: Path) -> bytes:
    key = load_pem_private_key((directory / "key.pem").read_bytes(), None)
    return key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def test_first_pass_issues_everything_then_nothing_is_due(rotator: Rotator) -> None:
    first = rotator.run_once()
    assert first.renewed == [A, B] and first.failed == []
    second = rotator.run_once()
    assert second.renewed == []
    assert second.next_due is not None and second.earliest_expiry is not None
    assert second.next_due < second.earliest_expiry


def test_renewal_happens_at_the_configured_fraction_with_bounded_jitter(
    rotator: Rotator, tmp_path: Path
) -> None:
    rotator.run_once()
    leaf = _leaf(tmp_path / "a")
    life = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    due = rotator.policy.renew_at(leaf)
    middle = leaf.not_valid_before_utc + life / 2
    assert abs(due - middle) <= life * rotator.policy.jitter
    assert A not in rotator.run_once(now=due - dt.timedelta(seconds=1)).renewed
    assert A in rotator.run_once(now=due).renewed


def test_jitter_is_stable_per_certificate_and_spreads_renewals(rotator: Rotator) -> None:
    policy = RenewalPolicy(fraction=0.5, jitter=0.1)
    rotator.run_once()
    leaves = [_leaf(w.directory) for w in rotator.workloads]
    assert policy.renew_at(leaves[0]) == policy.renew_at(leaves[0])
    assert len({policy.renew_at(leaf) - leaf.not_valid_before_utc for leaf in leaves}) == 2


def test_every_renewal_uses_a_fresh_key(rotator: Rotator, tmp_path: Path) -> None:
    keys = set()
    for _ in range(3):
        rotator.run_once(force=True)
        keys.add(_key_der(tmp_path / "a"))
        leaf_key = _leaf(tmp_path / "a").public_key()
        assert leaf_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) == _key_der(
            tmp_path / "a"
        )
    assert len(keys) == 3


def test_ca_activation_and_bundle_changes_trigger_renewal(
    ca: TrustDomainCa, rotator: Rotator, tmp_path: Path
) -> None:
    rotator.run_once()
    ca.prepare(root=True)  # bundle gains a root
    assert rotator.run_once().renewed == [A, B]
    assert (tmp_path / "a" / "bundle.pem").read_bytes() == ca.bundle().to_pem()
    ca.activate()  # a new signer
    assert rotator.run_once().renewed == [A, B]
    assert _leaf(tmp_path / "a").issuer == ca.signer.certificate.subject


def test_a_failed_write_is_reported_and_the_others_still_renew(
    ca: TrustDomainCa, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    rotator = Rotator(ca, [Workload(A, blocker), Workload(B, tmp_path / "b")])
    report = rotator.run_once()
    assert report.renewed == [B]
    assert [s for s, _ in report.failed] == [A]


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RenewalPolicy(fraction=1.2)
    with pytest.raises(ValueError):
        RenewalPolicy(fraction=0.5, jitter=0.6)


@pytest.mark.parametrize(
    "spiffe_id", ["spiffe://other.org/a", "spiffe://example.org"], ids=["foreign", "no path"]
)
def test_a_workload_the_ca_cannot_serve_is_refused_up_front(
    ca: TrustDomainCa, tmp_path: Path, spiffe_id: str
) -> None:
    # Renewals are one batch: accepted, this workload would stop everyone's renewals.
    bad = Workload(SpiffeId.parse(spiffe_id), tmp_path / "bad")
    with pytest.raises(CaError, match="trust domain"):
        Rotator(ca, [Workload(A, tmp_path / "a"), bad])


def test_a_directory_given_to_another_workload_is_renewed_at_once(
    ca: TrustDomainCa, tmp_path: Path
) -> None:
    Rotator(ca, [Workload(A, tmp_path / "shared")]).run_once()
    moved = Rotator(ca, [Workload(B, tmp_path / "shared")])
    assert moved.run_once().renewed == [B]
    uri = _leaf(tmp_path / "shared").extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert uri.value.get_values_for_type(x509.UniformResourceIdentifier) == [str(B)]


def test_two_workloads_sharing_a_directory_are_refused_up_front(
    ca: TrustDomainCa, tmp_path: Path
) -> None:
    # Each write would remove the other's versions, leaving `..data` dangling.
    (tmp_path / "w").mkdir()
    shared = [Workload(A, tmp_path / "w"), Workload(B, tmp_path / "w" / ".." / "w")]
    with pytest.raises(CaError, match="would share the directory") as info:
        Rotator(ca, shared)
    assert info.value.code == "shared-directory"
