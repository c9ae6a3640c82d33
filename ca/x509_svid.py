"""X.509-SVIDs: leaf certificates carrying exactly one SPIFFE ID, issued by an authority."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from .authority import Authority, chain_pem, utcnow
from .errors import InvalidSpiffeId
from .keys import KeyAlgorithm, PrivateKey, PublicKey, check_public_key, generate_private_key
from .keys import private_key_pem as _private_key_pem
from .spiffe_id import SpiffeId

DEFAULT_SVID_TTL = dt.timedelta(hours=1)


def _leaf_key_usage(*, key_encipherment: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


# Extensions every leaf carries, built once (issuance is the hot path of rotation).
_EMPTY_NAME = x509.Name([])
_NOT_A_CA = x509.BasicConstraints(ca=False, path_length=None)
_KEY_USAGE = _leaf_key_usage(key_encipherment=False)
# TLS 1.2 RSA key exchange encrypts with the leaf key.
_RSA_KEY_USAGE = _leaf_key_usage(key_encipherment=True)
_SERVER_AND_CLIENT = x509.ExtendedKeyUsage(
    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
)


@dataclass(frozen=True)
class X509Svid:
    """An issued X.509-SVID: the leaf, the intermediates to present after it, maybe its key."""

    spiffe_id: SpiffeId
    chain: tuple[x509.Certificate, ...]
    private_key: PrivateKey | None = None

    @property
    def leaf(self) -> x509.Certificate:
        """The leaf certificate."""
        return self.chain[0]

    @property
    def not_after(self) -> dt.datetime:
        """When the leaf expires."""
        return self.leaf.not_valid_after_utc

    def chain_pem(self) -> bytes:
        """Leaf then intermediates, as PEM (what a workload presents)."""
        return chain_pem(self.chain)

    def private_key_pem(self) -> bytes:
        """The workload's private key as PKCS#8 PEM; only for SVIDs issued with a key."""
        if self.private_key is None:
            raise ValueError("this SVID was issued for a CSR: the workload holds the key")
        return _private_key_pem(self.private_key)


def check_leaf_id(spiffe_id: SpiffeId, trust_domain: str) -> None:
    """Refuse an ID no X.509-SVID of this trust domain's CA may carry."""
    if spiffe_id.is_trust_domain:
        raise InvalidSpiffeId(
            "an X.509-SVID needs a SPIFFE ID with a path, not the trust domain itself",
            code="leaf-without-path",
        )
    if spiffe_id.trust_domain != trust_domain:
        raise InvalidSpiffeId(
            f"{spiffe_id} is outside this CA's trust domain {trust_domain}",
            code="foreign-trust-domain",
        )


def issue_x509_svid(
    authority: Authority,
    spiffe_id: SpiffeId,
    public_key: PublicKey,
    *,
    ttl: dt.timedelta = DEFAULT_SVID_TTL,
    dns_names: Sequence[str] = (),
    now: dt.datetime | None = None,
) -> X509Svid:
    """Sign an X.509-SVID for ``public_key`` (the workload keeps its private key)."""
    check_leaf_id(spiffe_id, authority.trust_domain)
    check_public_key(public_key)
    not_before, not_after = authority.validity(ttl, now or utcnow())
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(str(spiffe_id))]
    names += [x509.DNSName(name) for name in dns_names]
    usage = _RSA_KEY_USAGE if isinstance(public_key, rsa.RSAPublicKey) else _KEY_USAGE
    builder = (
        x509.CertificateBuilder()
        # Empty subject, as SPIFFE recommends: the identity is the URI SAN, which is
        # therefore marked critical.
        .subject_name(_EMPTY_NAME)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(_NOT_A_CA, critical=True)
        .add_extension(usage, critical=True)
        .add_extension(_SERVER_AND_CLIENT, critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    leaf = authority.sign(builder)
    return X509Svid(spiffe_id, (leaf, *authority.chain))


def issue_x509_svid_with_key(
    authority: Authority,
    spiffe_id: SpiffeId,
    *,
    ttl: dt.timedelta = DEFAULT_SVID_TTL,
    algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256,
    dns_names: Sequence[str] = (),
    now: dt.datetime | None = None,
) -> X509Svid:
    """Generate a fresh key for the workload and issue an X.509-SVID for it."""
    key = generate_private_key(algorithm)
    svid = issue_x509_svid(
        authority, spiffe_id, key.public_key(), ttl=ttl, dns_names=dns_names, now=now
    )
    return X509Svid(svid.spiffe_id, svid.chain, key)


def spiffe_id_of(cert: x509.Certificate) -> SpiffeId:
    """The SPIFFE ID in a certificate's single URI SAN."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise InvalidSpiffeId("certificate has no SAN extension", code="no-uri-san") from None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        raise InvalidSpiffeId(
            f"certificate must carry exactly one URI SAN, found {len(uris)}", code="uri-san-count"
        )
    return SpiffeId.parse(uris[0])
