"""X.509-SVID leaves: anchors.md SPIFFE MUST 2 (one test per property), MUST 4 (path
validation against the trust domain's own bundle), checked with the `spiffe` package,
cryptography's RFC 5280 verifier and `openssl verify`."""

from __future__ import annotations

import datetime as dt

import pytest
import spiffe
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from meshward.ca.authority import Authority, create_root
from meshward.ca.errors import AuthorityError, InvalidSpiffeId, KeyRejected
from meshward.ca.keys import KeyAlgorithm, generate_private_key
from meshward.ca.spiffe_id import SpiffeId
from meshward.ca.x509_svid import (
    X509Svid,
    issue_x509_svid,
    issue_x509_svid_with_key,
    spiffe_id_of,
)

WEB = SpiffeId.parse("spiffe://example.org/ns/default/sa/web")


@pytest.fixture(scope="module")
def svid(intermediate: Authority) -> X509Svid:
    return issue_x509_svid_with_key(intermediate, WEB)


def _ext(
    cert: x509.Certificate, kind: type[x509.ExtensionType]
) -> x509.Extension[x509.ExtensionType]:
    return cert.extensions.get_extension_for_class(kind)


# --- MUST 2, property by property --------------------------------------------------------


def test_leaf_has_exactly_one_uri_san_with_a_non_root_spiffe_id(svid: X509Svid) -> None:
    san = _ext(svid.leaf, x509.SubjectAlternativeName).value
    assert isinstance(san, x509.SubjectAlternativeName)
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    assert uris == [str(WEB)]
    assert not SpiffeId.parse(uris[0]).is_trust_domain


def test_leaf_basic_constraints_ca_false(svid: X509Svid) -> None:
    basic = _ext(svid.leaf, x509.BasicConstraints)
    assert isinstance(basic.value, x509.BasicConstraints)
    assert basic.value.ca is False


def test_leaf_key_usage_critical_digital_signature_without_cert_or_crl_sign(
    svid: X509Svid,
) -> None:
    usage = _ext(svid.leaf, x509.KeyUsage)
    assert usage.critical
    assert isinstance(usage.value, x509.KeyUsage)
    assert usage.value.digital_signature
    assert not usage.value.key_cert_sign
    assert not usage.value.crl_sign


def test_leaf_eku_has_both_server_and_client_auth(svid: X509Svid) -> None:
    eku = _ext(svid.leaf, x509.ExtendedKeyUsage).value
    assert isinstance(eku, x509.ExtendedKeyUsage)
    assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(eku)


def test_leaf_san_is_critical_when_subject_is_empty(svid: X509Svid) -> None:
    assert len(svid.leaf.subject) == 0
    assert _ext(svid.leaf, x509.SubjectAlternativeName).critical


def test_leaf_never_outlives_its_issuer(root: Authority) -> None:
    short = root.issue_intermediate(ttl=dt.timedelta(minutes=30))
    leaf = issue_x509_svid_with_key(short, WEB, ttl=dt.timedelta(hours=5)).leaf
    assert leaf.not_valid_after_utc <= short.certificate.not_valid_after_utc
    for ca in (short.certificate, root.certificate):
        assert leaf.not_valid_after_utc <= ca.not_valid_after_utc


def test_not_before_is_backdated_for_clock_skew(intermediate: Authority) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    leaf = issue_x509_svid_with_key(intermediate, WEB, now=now).leaf
    assert leaf.not_valid_before_utc < now
    assert now - leaf.not_valid_before_utc <= dt.timedelta(minutes=5)


def test_leaf_carries_aki_matching_issuer_ski(svid: X509Svid, intermediate: Authority) -> None:
    aki = _ext(svid.leaf, x509.AuthorityKeyIdentifier).value
    ski = _ext(intermediate.certificate, x509.SubjectKeyIdentifier).value
    assert isinstance(aki, x509.AuthorityKeyIdentifier)
    assert isinstance(ski, x509.SubjectKeyIdentifier)
    assert aki.key_identifier == ski.digest


def test_issuing_from_an_expired_issuer_is_refused(intermediate: Authority) -> None:
    later = intermediate.not_after + dt.timedelta(seconds=1)
    with pytest.raises(AuthorityError) as caught:
        issue_x509_svid_with_key(intermediate, WEB, now=later)
    assert caught.value.code == "issuer-expired"


def test_a_lifetime_that_is_not_positive_is_refused(intermediate: Authority) -> None:
    for ttl in (dt.timedelta(0), dt.timedelta(minutes=-5)):
        with pytest.raises(AuthorityError) as caught:
            issue_x509_svid_with_key(intermediate, WEB, ttl=ttl)
        assert caught.value.code == "bad-ttl"


def test_trust_domain_id_and_foreign_ids_are_refused(intermediate: Authority) -> None:
    key = generate_private_key().public_key()
    with pytest.raises(InvalidSpiffeId):
        issue_x509_svid(intermediate, SpiffeId.parse("spiffe://example.org"), key)
    with pytest.raises(InvalidSpiffeId):
        issue_x509_svid(intermediate, SpiffeId.parse("spiffe://other.org/a"), key)


def test_weak_key_is_refused(intermediate: Authority) -> None:
    weird = ec.generate_private_key(ec.SECP256K1()).public_key()
    with pytest.raises(KeyRejected):
        issue_x509_svid(intermediate, WEB, weird)


# --- independent validators ----------------------------------------------------------------


def test_spiffe_package_accepts_the_svid(svid: X509Svid, root: Authority) -> None:
    parsed = spiffe.X509Svid.parse(svid.chain_pem(), svid.private_key_pem())
    assert str(parsed.spiffe_id) == str(WEB)
    bundle = spiffe.X509Bundle.parse(spiffe.TrustDomain("example.org"), root.public_pem())
    assert root.certificate in bundle.x509_authorities


def test_rfc5280_path_validation_as_client(svid, root, rfc5280_client) -> None:  # type: ignore[no-untyped-def]
    chain = rfc5280_client(svid.chain, [root.certificate])
    assert chain[-1] == root.certificate
    assert spiffe_id_of(chain[0]) == WEB


def test_rfc5280_path_validation_as_server(intermediate, root, rfc5280_server) -> None:  # type: ignore[no-untyped-def]
    key = generate_private_key()
    svid = issue_x509_svid(intermediate, WEB, key.public_key(), dns_names=["web.example.org"])
    chain = rfc5280_server(svid.chain, [root.certificate], "web.example.org")
    assert chain[-1] == root.certificate


@pytest.mark.parametrize("purpose", ["sslclient", "sslserver"])
def test_openssl_verify(svid, root, openssl, purpose) -> None:  # type: ignore[no-untyped-def]
    assert "OK" in openssl(svid.chain, [root.certificate], purpose)


@pytest.mark.parametrize(
    "algorithm", [KeyAlgorithm.EC_P384, KeyAlgorithm.RSA_2048, KeyAlgorithm.ED25519]
)
def test_other_key_algorithms_validate(algorithm, openssl, rfc5280_client) -> None:  # type: ignore[no-untyped-def]
    root = create_root("example.org", ttl=dt.timedelta(days=1), algorithm=algorithm)
    inter = root.issue_intermediate(ttl=dt.timedelta(hours=12), algorithm=algorithm)
    svid = issue_x509_svid_with_key(inter, WEB, algorithm=algorithm)
    openssl(svid.chain, [root.certificate], "sslclient")
    openssl(svid.chain, [root.certificate], "sslserver")
    if algorithm is not KeyAlgorithm.ED25519:  # cryptography's Web PKI profile forbids Ed25519
        rfc5280_client(svid.chain, [root.certificate])
    spiffe.X509Svid.parse(svid.chain_pem(), svid.private_key_pem())


# --- MUST 4: validation against the trust domain's own bundle only ----------------------


def test_svid_of_another_ca_fails_against_our_bundle(svid, root, openssl, rfc5280_client) -> None:  # type: ignore[no-untyped-def]
    stranger = create_root("example.org", ttl=dt.timedelta(days=1))
    with pytest.raises(verification.VerificationError):
        rfc5280_client(svid.chain, [stranger.certificate])
    with pytest.raises(AssertionError):
        openssl(svid.chain, [stranger.certificate], "sslclient")


def test_name_constraints_confine_a_ca_to_its_trust_domain(openssl) -> None:  # type: ignore[no-untyped-def]
    root = create_root("example.org", ttl=dt.timedelta(days=1), name_constraints=True)
    inter = root.issue_intermediate(ttl=dt.timedelta(hours=12), name_constraints=True)
    good = issue_x509_svid_with_key(inter, WEB)
    assert "OK" in openssl(good.chain, [root.certificate], "sslclient")
    # The same intermediate key, told it serves another trust domain, mints a foreign ID:
    # the name constraint in its certificate makes validators reject it.
    rogue = Authority(inter.certificate, inter.private_key, inter.chain, "evil.org")
    bad = issue_x509_svid_with_key(rogue, SpiffeId.parse("spiffe://evil.org/a"))
    with pytest.raises(AssertionError, match="permitted subtree violation"):
        openssl(bad.chain, [root.certificate], "sslclient")
