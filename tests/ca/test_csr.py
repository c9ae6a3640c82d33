"""CSR approval: each refusal reason, and the happy paths."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import ExtensionOID

from meshward.ca.authority import Authority
from meshward.ca.csr import approve_csr
from meshward.ca.errors import CsrRefused
from meshward.ca.keys import generate_private_key
from meshward.ca.spiffe_id import SpiffeId
from meshward.ca.x509_svid import issue_x509_svid, spiffe_id_of

WEB = SpiffeId.parse("spiffe://example.org/ns/default/sa/web")


def _csr(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None,
    names: list[x509.GeneralName] | None = None,
    extensions: Sequence[x509.ExtensionType] = (),
) -> x509.CertificateSigningRequest:
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    if names is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    for ext in extensions:
        builder = builder.add_extension(ext, critical=True)
    return builder.sign(key, hashes.SHA256())


def _pem(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(Encoding.PEM)


def _refusal(data: bytes) -> str:
    with pytest.raises(CsrRefused) as caught:
        approve_csr(data, WEB)
    return caught.value.code


def test_csr_naming_the_entitled_id_is_signed_and_the_workload_keeps_its_key(
    intermediate: Authority,
) -> None:
    key = generate_private_key()
    approved = approve_csr(_pem(_csr(key, [x509.UniformResourceIdentifier(str(WEB))])), WEB)
    svid = issue_x509_svid(intermediate, approved.spiffe_id, approved.public_key)
    assert spiffe_id_of(svid.leaf) == WEB
    assert svid.leaf.public_key() == key.public_key()
    assert svid.private_key is None


def test_csr_without_names_gets_the_entitled_id() -> None:
    assert approve_csr(_pem(_csr()), WEB).spiffe_id == WEB


def test_der_csr_is_accepted() -> None:
    assert approve_csr(_csr().public_bytes(Encoding.DER), WEB).spiffe_id == WEB


def test_refused_when_asking_for_another_identity() -> None:
    other = x509.UniformResourceIdentifier("spiffe://example.org/ns/default/sa/admin")
    assert _refusal(_pem(_csr(names=[other]))) == "identity-mismatch"


def test_refused_when_asking_for_two_identities() -> None:
    names: list[x509.GeneralName] = [
        x509.UniformResourceIdentifier(str(WEB)),
        x509.UniformResourceIdentifier("spiffe://example.org/b"),
    ]
    assert _refusal(_pem(_csr(names=names))) == "identity-mismatch"


def test_refused_when_asking_for_other_names() -> None:
    names: list[x509.GeneralName] = [x509.DNSName("admin.example.org")]
    assert _refusal(_pem(_csr(names=names))) == "unexpected-san"


def test_refused_with_ca_basic_constraints() -> None:
    ext = x509.BasicConstraints(ca=True, path_length=None)
    assert _refusal(_pem(_csr(extensions=[ext]))) == "ca-extension"


def test_refused_with_cert_sign_key_usage() -> None:
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    assert _refusal(_pem(_csr(extensions=[usage]))) == "ca-extension"


def test_refused_with_weak_rsa_key() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    assert _refusal(_pem(_csr(weak))) == "weak-key"


def test_refused_with_unsupported_curve() -> None:
    odd = ec.generate_private_key(ec.SECP256K1())
    assert _refusal(_pem(_csr(odd))) == "unsupported-key"


def test_refused_with_bad_signature() -> None:
    der = bytearray(_csr().public_bytes(Encoding.DER))
    der[-1] ^= 0x01  # last byte of the signature value
    assert _refusal(bytes(der)) == "bad-signature"


def test_refused_when_unreadable() -> None:
    assert _refusal(b"-----BEGIN CERTIFICATE REQUEST-----\nnope\n") == "malformed"


@pytest.mark.parametrize(
    "oid", [ExtensionOID.SUBJECT_ALTERNATIVE_NAME, ExtensionOID.BASIC_CONSTRAINTS]
)
def test_refused_when_an_extension_does_not_parse(oid: x509.ObjectIdentifier) -> None:
    garbage = x509.UnrecognizedExtension(oid, b"\x01\x02\x03")
    assert _refusal(_pem(_csr(extensions=[garbage]))) == "malformed"


def test_refused_when_signed_with_sha1_and_told_why(openssl_binary: str, tmp_path: Path) -> None:
    # cryptography will not sign with SHA-1 any more; openssl still will.
    key = tmp_path / "key.pem"
    key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        )
    )
    command = [openssl_binary, "req", "-new", "-key", str(key), "-subj", "/", "-sha1"]
    pem = subprocess.run(command, capture_output=True, check=True, timeout=30).stdout
    with pytest.raises(CsrRefused, match="sha1") as caught:
        approve_csr(pem, WEB)
    assert caught.value.code == "weak-hash"
