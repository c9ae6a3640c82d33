"""Trust bundles: anchors.md SPIFFE MUST 6, and the `spiffe` package reading ours."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import spiffe

from meshward.ca.bundle import BundleError, TrustBundle
from meshward.ca.manager import TrustDomainCa
from meshward.ca.store import FileStore


@pytest.fixture
def ca(tmp_path: Path) -> TrustDomainCa:
    return TrustDomainCa.init(FileStore(tmp_path / "ca"), "example.org")


def test_every_key_has_kty_and_use(ca: TrustDomainCa) -> None:
    keys = ca.bundle().to_jwks()["keys"]
    assert {k["use"] for k in keys} == {"x509-svid", "jwt-svid"}
    for key in keys:
        assert key["kty"] in {"EC", "RSA", "OKP"}


def test_x509_keys_have_exactly_one_x5c_and_no_kid(ca: TrustDomainCa) -> None:
    for key in ca.bundle().to_jwks()["keys"]:
        if key["use"] == "x509-svid":
            assert len(key["x5c"]) == 1
            assert "kid" not in key


def test_jwt_keys_have_a_kid(ca: TrustDomainCa) -> None:
    jwt_keys = [k for k in ca.bundle().to_jwks()["keys"] if k["use"] == "jwt-svid"]
    assert jwt_keys and all(k["kid"] for k in jwt_keys)


def test_refresh_hint_is_published_in_seconds(ca: TrustDomainCa) -> None:
    doc = ca.bundle().to_jwks()
    assert isinstance(doc["spiffe_refresh_hint"], int) and doc["spiffe_refresh_hint"] > 0


def test_sequence_increases_on_every_change(ca: TrustDomainCa) -> None:
    seen = [ca.bundle()]

    def step() -> None:
        bundle = ca.bundle()
        if bundle.to_jwks()["keys"] != seen[-1].to_jwks()["keys"]:
            assert bundle.sequence > seen[-1].sequence
        else:
            assert bundle.sequence >= seen[-1].sequence
        seen.append(bundle)

    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    for action in (
        ca.prepare,
        ca.activate,
        lambda: ca.retire(now=later),
        lambda: ca.prepare(root=True),
        ca.activate,
        lambda: ca.retire(now=later),
    ):
        action()
        step()
    assert len({b.sequence for b in seen}) >= 5


def test_new_keys_are_published_before_they_sign(ca: TrustDomainCa) -> None:
    signer_before = ca.signer.certificate
    ca.prepare(root=True)
    bundle = ca.bundle()
    assert ca.signer.certificate == signer_before  # the prepared CA signs nothing yet
    assert len(bundle.x509_authorities) == 2  # but its root is already trusted
    assert len(bundle.jwt_authorities) == 2  # and its JWT key published
    ca.activate()
    assert ca.signer.certificate != signer_before
    # activation changes who signs, not what is trusted
    assert ca.bundle().to_jwks()["keys"] == bundle.to_jwks()["keys"]


def test_jwks_round_trips_and_the_spiffe_package_reads_it(ca: TrustDomainCa) -> None:
    bundle = ca.bundle()
    document = json.loads(bundle.to_json())
    again = TrustBundle.from_jwks("example.org", document)
    assert again.x509_authorities == bundle.x509_authorities
    assert set(again.jwt_authorities) == set(bundle.jwt_authorities)
    assert again.sequence == bundle.sequence
    td = spiffe.TrustDomain("example.org")
    x509_bundle = spiffe.X509Bundle.parse(td, bundle.to_pem())
    assert x509_bundle.x509_authorities == set(bundle.x509_authorities)
    # py-spiffe's JWT bundle parser wants only the jwt-svid entries
    jwt_only = {**document, "keys": [k for k in document["keys"] if k["use"] == "jwt-svid"]}
    jwt_bundle = spiffe.JwtBundle.parse(td, json.dumps(jwt_only).encode())
    assert set(jwt_bundle.jwt_authorities) == set(bundle.jwt_authorities)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda k: k.update(x5c=k["x5c"] * 2), "exactly one x5c"),
        (lambda k: k.update(kid="x"), "must not carry a kid"),
        (lambda k: k.pop("kty"), "kty"),
        (lambda k: k.update(use="sig"), "unknown key use"),
    ],
)
def test_malformed_x509_entries_are_refused(ca: TrustDomainCa, mutate, message) -> None:  # type: ignore[no-untyped-def]
    doc = ca.bundle().to_jwks()
    entry = next(k for k in doc["keys"] if k["use"] == "x509-svid")
    mutate(entry)
    with pytest.raises(BundleError, match=message):
        TrustBundle.from_jwks("example.org", doc)


def test_jwt_entry_without_kid_is_refused(ca: TrustDomainCa) -> None:
    doc = ca.bundle().to_jwks()
    next(k for k in doc["keys"] if k["use"] == "jwt-svid").pop("kid")
    with pytest.raises(BundleError, match="kid"):
        TrustBundle.from_jwks("example.org", doc)
