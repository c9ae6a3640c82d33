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


def _resigned(tbs: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """A DER CSR of an edited ``tbs``, signed again so that only the edit is wrong."""

    def tlv(tag: int, body: bytes) -> bytes:
        n = len(body)  # DER: the length in as few bytes as it takes
        size = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return bytes([tag]) + (size if n < 0x80 else bytes([0x80 | len(size)]) + size) + body

    ecdsa_sha256 = tlv(0x30, tlv(0x06, bytes.fromhex("2a8648ce3d040302")))
    signature = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    return tlv(0x30, tbs + ecdsa_sha256 + tlv(0x03, b"\x00" + signature))


def test_refused_when_an_extension_is_given_twice() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    twice = [
        x509.UnrecognizedExtension(x509.ObjectIdentifier(f"1.2.3.{n}"), b"\x05\x00") for n in (4, 5)
    ]
    tbs = _csr(key, extensions=twice).tbs_certrequest_bytes
    # 1.2.3.5 renamed 1.2.3.4: cryptography raises DuplicateExtension, not a ValueError.
    edited = tbs.replace(bytes.fromhex("06032a0305"), bytes.fromhex("06032a0304"))
    assert _refusal(_resigned(edited, key)) == "malformed"


def test_refused_when_the_key_names_an_unknown_curve() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    p256 = bytes.fromhex("06082a8648ce3d030107")
    tbs = _csr(key).tbs_certrequest_bytes
    assert _refusal(_resigned(tbs.replace(p256, p256[:-1] + b"\x09"), key)) == "unsupported-key"
