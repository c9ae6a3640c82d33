"""Signing authorities: a root (self-signed) and the intermediates it signs, or loaded from PEM."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID, NameOID

from .errors import AuthorityError
from .keys import (
    KeyAlgorithm,
    PrivateKey,
    PublicKey,
    check_public_key,
    generate_private_key,
    load_private_key_pem,
    public_key_id,
    signature_hash,
)
from .spiffe_id import SpiffeId

#: notBefore is moved this far into the past so peers with a slightly slow clock accept a
#: certificate the moment it is issued.
DEFAULT_BACKDATE = dt.timedelta(seconds=60)


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC (the clock every lifetime is measured on)."""
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Authority:
    """A CA certificate with its private key, able to sign certificates.

    ``chain`` lists the certificates between this CA and a trust anchor (this CA first,
    the root excluded); a workload presents it after its leaf.
    """

    certificate: x509.Certificate
    private_key: PrivateKey
    chain: tuple[x509.Certificate, ...]
    trust_domain: str

    @property
    def key_id(self) -> bytes:
        """The subject key identifier of this CA's certificate."""
        ext = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        return ext.value.digest

    @property
    def not_after(self) -> dt.datetime:
        """When this CA's certificate expires."""
        return self.certificate.not_valid_after_utc

    @property
    def is_self_signed(self) -> bool:
        """True for a root: issuer and subject are the same name."""
        return self.certificate.issuer == self.certificate.subject

    def validity(
        self, ttl: dt.timedelta, now: dt.datetime, backdate: dt.timedelta = DEFAULT_BACKDATE
    ) -> tuple[dt.datetime, dt.datetime]:
        """The (notBefore, notAfter) of a certificate this CA issues now for ``ttl``.

        notAfter is capped at this CA's own expiry; refuses when nothing valid is left.
        """
        if ttl <= dt.timedelta(0):
            raise AuthorityError(f"a lifetime must be positive, not {ttl}", code="bad-ttl")
        not_before = max(now - backdate, self.certificate.not_valid_before_utc)
        not_after = min(now + ttl, self.not_after)
        if not_after <= now:
            raise AuthorityError(
                f"CA certificate expired or expires now ({self.not_after.isoformat()})",
                code="issuer-expired",
            )
        return not_before, not_after

    @cached_property
    def _authority_key_identifier(self) -> x509.AuthorityKeyIdentifier:
        # Computed once per CA: issuance is the hot path of rotation.
        ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)

    def sign(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        """Sign a prepared certificate builder with this CA, adding the issuer name and AKI."""
        builder = builder.issuer_name(self.certificate.subject).add_extension(
            self._authority_key_identifier, critical=False
        )
        return builder.sign(self.private_key, signature_hash(self.private_key))

    def issue_intermediate(
        self,
        *,
        ttl: dt.timedelta,
        algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256,
        name_constraints: bool = False,
        path_length: int | None = 0,
        now: dt.datetime | None = None,
    ) -> Authority:
        """Create a new intermediate CA signed by this one, for the same trust domain.

        ``path_length`` 0 (the default) lets it sign only leaves.
        """
        now = now or utcnow()
        key = generate_private_key(algorithm)
        not_before, not_after = self.validity(ttl, now)
        builder = _ca_builder(
            self.trust_domain,
            "intermediate",
            key.public_key(),
            path_length=path_length,
            name_constraints=name_constraints,
        )
        cert = self.sign(builder.not_valid_before(not_before).not_valid_after(not_after))
        chain = (cert, *self.chain) if not self.is_self_signed else (cert,)
        return Authority(cert, key, chain, self.trust_domain)

    def public_pem(self) -> bytes:
        """This CA's certificate as PEM."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)


def _ca_subject(trust_domain: str, role: str, public_key: PublicKey) -> x509.Name:
    # A unique subject per CA certificate: name clashes between generations make path
    # building pick the wrong issuer during rotation.
    digest = x509.SubjectKeyIdentifier.from_public_key(public_key).digest
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meshward"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{trust_domain} {role} {digest[:8].hex()}"),
        ]
    )


def _ca_builder(
    trust_domain: str,
    role: str,
    public_key: PublicKey,
    *,
    path_length: int | None,
    name_constraints: bool,
) -> x509.CertificateBuilder:
    td_uri = str(SpiffeId.of_trust_domain(trust_domain))
    builder = (
        x509.CertificateBuilder()
        .subject_name(_ca_subject(trust_domain, role, public_key))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(td_uri)]), critical=False
        )
    )
    if not name_constraints:
        return builder
    # Limits the CA to SPIFFE IDs of its own trust domain (RFC 5280 URI constraint on the
    # host part), so a leaked intermediate cannot mint identities elsewhere. Opt-in:
    # OpenSSL and BoringSSL (Envoy) enforce it, but some verifiers (Python's
    # cryptography among them) reject every certificate under a URI constraint.
    return builder.add_extension(
        x509.NameConstraints(
            permitted_subtrees=[x509.UniformResourceIdentifier(trust_domain)],
            excluded_subtrees=None,
        ),
        critical=True,
    )


def create_root(
    trust_domain: str,
    *,
    ttl: dt.timedelta,
    algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256,
    name_constraints: bool = False,
    now: dt.datetime | None = None,
) -> Authority:
    """Create a self-signed root CA for ``trust_domain``."""
    SpiffeId.of_trust_domain(trust_domain)
    now = now or utcnow()
    key = generate_private_key(algorithm)
    public_key = key.public_key()
    cert = (
        _ca_builder(
            trust_domain, "root", public_key, path_length=None, name_constraints=name_constraints
        )
        .issuer_name(_ca_subject(trust_domain, "root", public_key))
        .not_valid_before(now - DEFAULT_BACKDATE)
        .not_valid_after(now + ttl)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False
        )
        .sign(key, signature_hash(key))
    )
    return Authority(cert, key, (), trust_domain)


def load_pem_certificates(data: bytes) -> list[x509.Certificate]:
    """Parse every certificate in a PEM bundle; an empty or unreadable bundle is an error."""
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise AuthorityError(f"cannot read PEM certificates: {exc}", code="bad-pem") from None
    return certs


def _trust_domain_of_ca(cert: x509.Certificate) -> str | None:
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    except x509.ExtensionNotFound:
        return None
    assert isinstance(san.value, x509.SubjectAlternativeName)
    for uri in san.value.get_values_for_type(x509.UniformResourceIdentifier):
        spiffe_id = SpiffeId.parse(uri)
        if not spiffe_id.is_trust_domain:
            raise AuthorityError(
                f"a CA certificate's SPIFFE ID must have no path, found {uri}", code="ca-id-path"
            )
        return spiffe_id.trust_domain
    return None


def load_authority(
    cert_pem: bytes,
    key_pem: bytes,
    *,
    trust_domain: str | None = None,
    chain_pem: bytes = b"",
) -> Authority:
    """Load an existing CA (for example an upstream-issued intermediate) from PEM.

    ``cert_pem`` may hold the CA certificate followed by its own chain; ``chain_pem`` adds
    more intermediates. Roots found in either are dropped from the presented chain. The
    trust domain comes from the certificate's SPIFFE ID when it carries one.
    """
    certs = load_pem_certificates(cert_pem) + (
        load_pem_certificates(chain_pem) if chain_pem else []
    )
    cert = certs[0]
    key = load_private_key_pem(key_pem)
    if public_key_id(check_public_key(cert.public_key())) != public_key_id(key.public_key()):
        raise AuthorityError(
            "the private key does not belong to the certificate", code="key-mismatch"
        )
    try:
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound as exc:
        raise AuthorityError(f"not a CA certificate: {exc}", code="not-a-ca") from None
    if not basic.ca or not usage.key_cert_sign:
        raise AuthorityError(
            "certificate is not a signing CA (needs cA=true and keyCertSign)", code="not-a-ca"
        )
    found = _trust_domain_of_ca(cert)
    if trust_domain is None:
        if found is None:
            raise AuthorityError(
                "the CA certificate carries no SPIFFE ID: give the trust domain", code="no-td"
            )
        trust_domain = found
    elif found is not None and found != trust_domain:
        raise AuthorityError(
            f"CA certificate belongs to trust domain {found}, not {trust_domain}",
            code="td-mismatch",
        )
    SpiffeId.of_trust_domain(trust_domain)
    chain = tuple(c for c in certs if c.issuer != c.subject)
    return Authority(cert, key, chain, trust_domain)


def chain_pem(certs: Sequence[x509.Certificate]) -> bytes:
    """Concatenate certificates as PEM, in the given order."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
