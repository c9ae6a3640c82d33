"""Approval of certificate signing requests: what a workload may have signed."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes

from .errors import CsrRefused, InvalidSpiffeId, KeyRejected
from .keys import PublicKey, check_public_key
from .spiffe_id import SpiffeId


@dataclass(frozen=True)
class ApprovedCsr:
    """A CSR that passed every check: the identity and key to certify."""

    spiffe_id: SpiffeId
    public_key: PublicKey


def load_csr(data: bytes) -> x509.CertificateSigningRequest:
    """Parse a PEM (or DER) CSR, refusing unreadable input."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_csr(data)
        return x509.load_der_x509_csr(data)
    except ValueError as exc:
        raise CsrRefused(f"cannot read the CSR: {exc}", code="malformed") from None


def approve_csr(data: bytes, entitled: SpiffeId) -> ApprovedCsr:
    """Check a CSR submitted by a caller entitled to ``entitled``; refuse with a reason.

    The CSR may name no identity (the entitled one is used) or exactly ``entitled`` as its
    only URI SAN. It must not ask for CA powers or other names, must use an accepted key,
    and must be signed by that key.
    """
    csr = load_csr(data)
    try:
        digest = csr.signature_hash_algorithm
    except UnsupportedAlgorithm:
        digest = None
    if isinstance(digest, hashes.SHA1 | hashes.MD5):
        raise CsrRefused(
            f"the CSR is signed with {digest.name}, which is refused", code="weak-hash"
        )
    try:
        valid = csr.is_signature_valid
    except UnsupportedAlgorithm as exc:  # a key type or curve this library cannot verify
        raise CsrRefused(f"the CSR's key is not supported: {exc}", code="unsupported-key") from None
    if not valid:
        raise CsrRefused("the CSR's signature does not verify", code="bad-signature")
    try:
        public_key = check_public_key(csr.public_key())
    except KeyRejected as exc:
        raise CsrRefused(str(exc), code=exc.code) from None
    try:
        extensions = csr.extensions
    except (ValueError, x509.DuplicateExtension) as exc:  # unparsable, or given twice
        raise CsrRefused(f"cannot read the CSR's extensions: {exc}", code="malformed") from None
    for ext in extensions:
        value = ext.value
        if isinstance(value, x509.BasicConstraints) and value.ca:
            raise CsrRefused("the CSR asks for a CA certificate (cA=true)", code="ca-extension")
        if isinstance(value, x509.KeyUsage) and (value.key_cert_sign or value.crl_sign):
            raise CsrRefused(
                "the CSR asks for keyCertSign or cRLSign key usage", code="ca-extension"
            )
        if isinstance(value, x509.SubjectAlternativeName):
            _check_names(value, entitled)
    return ApprovedCsr(entitled, public_key)


def _check_names(san: x509.SubjectAlternativeName, entitled: SpiffeId) -> None:
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != len(list(san)):
        raise CsrRefused("the CSR may only name a SPIFFE ID (URI SAN)", code="unexpected-san")
    if len(uris) > 1:
        raise CsrRefused("the CSR names more than one URI SAN", code="identity-mismatch")
    for uri in uris:
        try:
            asked = SpiffeId.parse(uri)
        except InvalidSpiffeId as exc:
            raise CsrRefused(
                f"the CSR's URI SAN is not a SPIFFE ID: {exc}", code="bad-id"
            ) from None
        if asked != entitled:
            raise CsrRefused(
                f"the CSR asks for {asked}, but the caller is entitled to {entitled}",
                code="identity-mismatch",
            )
