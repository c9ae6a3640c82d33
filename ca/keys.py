"""Key generation, loading and the key strength policy for CA and workload keys."""

from __future__ import annotations

import hashlib
from enum import StrEnum

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from .errors import KeyRejected

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

MIN_RSA_BITS = 2048
_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "secp256r1": ec.SECP256R1,
    "secp384r1": ec.SECP384R1,
}


class KeyAlgorithm(StrEnum):
    """Key types the CA generates; ECDSA P-256 is the default everywhere."""

    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"
    ED25519 = "ed25519"


def generate_private_key(algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256) -> PrivateKey:
    """Generate a fresh private key of the given algorithm."""
    match algorithm:
        case KeyAlgorithm.EC_P256:
            return ec.generate_private_key(ec.SECP256R1())
        case KeyAlgorithm.EC_P384:
            return ec.generate_private_key(ec.SECP384R1())
        case KeyAlgorithm.ED25519:
            return ed25519.Ed25519PrivateKey.generate()
        case _:
            bits = int(algorithm.value.split("-")[1])
            return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def check_public_key(key: object) -> PublicKey:
    """Return ``key`` if the CA accepts it for a certificate, else raise :class:`KeyRejected`."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise KeyRejected(
                f"RSA key of {key.key_size} bits is weaker than the {MIN_RSA_BITS}-bit minimum",
                code="weak-key",
            )
        return key
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _CURVES:
            raise KeyRejected(
                f"elliptic curve {key.curve.name} is not supported (use P-256 or P-384)",
                code="unsupported-key",
            )
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise KeyRejected(
        f"key type {type(key).__name__} is not supported (use ECDSA, RSA or Ed25519)",
        code="unsupported-key",
    )


def signature_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384 | None:
    """The digest to sign certificates with for ``key`` (None for Ed25519, which has its own)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1":
        return hashes.SHA384()
    return hashes.SHA256()


def private_key_pem(key: PrivateKey) -> bytes:
    """Serialise a private key as unencrypted PKCS#8 PEM (the form Envoy and SPIFFE expect)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key_pem(data: bytes) -> PrivateKey:
    """Load an unencrypted PEM private key of a supported type."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyRejected(f"cannot read private key: {exc}", code="bad-key") from None
    if not isinstance(
        key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise KeyRejected(f"key type {type(key).__name__} is not supported")
    check_public_key(key.public_key())
    return key


def public_key_id(key: PublicKey) -> str:
    """A stable identifier for a public key: hex SHA-256 of its SubjectPublicKeyInfo DER."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()
