"""Signing certificates: anchors.md SPIFFE MUST 3, uniqueness, AKI, loading from PEM."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from meshward.ca.authority import Authority, create_root, load_authority
from meshward.ca.errors import AuthorityError
from meshward.ca.keys import KeyAlgorithm, private_key_pem
from meshward.ca.spiffe_id import SpiffeId


def _cas(root: Authority, intermediate: Authority) -> list[x509.Certificate]:
    return [root.certificate, intermediate.certificate]


def test_signing_certs_are_ca_true(root: Authority, intermediate: Authority) -> None:
    for cert in _cas(root, intermediate):
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert basic.critical and basic.value.ca


def test_signing_certs_have_key_cert_sign_and_no_digital_signature(
    root: Authority, intermediate: Authority
) -> None:
    for cert in _cas(root, intermediate):
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        assert usage.key_cert_sign
        assert not usage.digital_signature


def test_spiffe_id_on_a_ca_has_no_path(root: Authority, intermediate: Authority) -> None:
    for cert in _cas(root, intermediate):
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
            assert SpiffeId.parse(uri).is_trust_domain


def test_intermediate_never_outlives_its_root(root: Authority) -> None:
    inter = root.issue_intermediate(ttl=dt.timedelta(days=3650))
    assert inter.not_after <= root.not_after


def test_every_ca_certificate_has_a_unique_subject_and_ski(root: Authority) -> None:
    cas = [create_root("example.org", ttl=dt.timedelta(days=1)) for _ in range(3)]
    cas += [root.issue_intermediate(ttl=dt.timedelta(hours=1)) for _ in range(3)]
    subjects = {ca.certificate.subject for ca in cas}
    skis = {ca.key_id for ca in cas}
    assert len(subjects) == len(skis) == len(cas)


def test_intermediate_carries_aki_of_its_root(root: Authority, intermediate: Authority) -> None:
    aki = intermediate.certificate.extensions.get_extension_for_class(
        x509.AuthorityKeyIdentifier
    ).value
    assert aki.key_identifier == root.key_id
    assert intermediate.chain == (intermediate.certificate,)


def test_load_authority_round_trip(intermediate: Authority) -> None:
    loaded = load_authority(intermediate.public_pem(), private_key_pem(intermediate.private_key))
    assert loaded.trust_domain == "example.org"
    assert loaded.certificate == intermediate.certificate
    assert loaded.chain == (intermediate.certificate,)


def test_load_authority_refuses_a_mismatched_key(root: Authority, intermediate: Authority) -> None:
    with pytest.raises(AuthorityError) as caught:
        load_authority(root.public_pem(), private_key_pem(intermediate.private_key))
    assert caught.value.code == "key-mismatch"


def test_load_authority_refuses_a_leaf(intermediate: Authority) -> None:
    from meshward.ca.x509_svid import issue_x509_svid_with_key

    svid = issue_x509_svid_with_key(intermediate, SpiffeId.parse("spiffe://example.org/a"))
    with pytest.raises(AuthorityError) as caught:
        load_authority(svid.chain_pem(), svid.private_key_pem())
    assert caught.value.code == "not-a-ca"


def test_load_authority_refuses_another_trust_domain(root: Authority) -> None:
    with pytest.raises(AuthorityError) as caught:
        load_authority(
            root.public_pem(), private_key_pem(root.private_key), trust_domain="other.org"
        )
    assert caught.value.code == "td-mismatch"


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_every_key_algorithm_makes_a_root(algorithm: KeyAlgorithm) -> None:
    ca = create_root("example.org", ttl=dt.timedelta(hours=1), algorithm=algorithm)
    ca.certificate.verify_directly_issued_by(ca.certificate)


def test_load_authority_refuses_a_ca_whose_spiffe_id_has_a_path() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bad ca")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier("spiffe://example.org/not/a/ca")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(AuthorityError) as caught:
        load_authority(cert.public_bytes(Encoding.PEM), private_key_pem(key))
    assert caught.value.code == "ca-id-path"
