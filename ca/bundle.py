"""Trust bundles: the X.509 and JWT authorities of a trust domain, as PEM and SPIFFE JWKS."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from .authority import chain_pem
from .errors import CaError
from .keys import PublicKey, check_public_key
from .spiffe_id import validate_trust_domain

DEFAULT_REFRESH_HINT = 300


class BundleError(CaError):
    """A SPIFFE bundle document is malformed."""

    code = "bad-bundle"


def _jwk(key: PublicKey) -> dict[str, Any]:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return dict(ECAlgorithm.to_jwk(key, as_dict=True))
    if isinstance(key, rsa.RSAPublicKey):
        return dict(RSAAlgorithm.to_jwk(key, as_dict=True))
    return dict(OKPAlgorithm.to_jwk(key, as_dict=True))


@dataclass(frozen=True)
class TrustBundle:
    """What a peer of ``trust_domain`` needs to verify its SVIDs.

    ``sequence`` increases on every change of the authorities; ``refresh_hint`` tells
    consumers how often (seconds) to fetch it again.
    """

    trust_domain: str
    x509_authorities: tuple[x509.Certificate, ...]
    jwt_authorities: Mapping[str, PublicKey] = field(default_factory=dict)
    sequence: int = 1
    refresh_hint: int = DEFAULT_REFRESH_HINT

    def to_pem(self) -> bytes:
        """The X.509 authorities as concatenated PEM (what Envoy's trusted_ca reads)."""
        return chain_pem(self.x509_authorities)

    def to_jwks(self) -> dict[str, Any]:
        """The SPIFFE bundle document (a JWK Set with ``spiffe_sequence``)."""
        keys: list[dict[str, Any]] = []
        for cert in self.x509_authorities:
            jwk = _jwk(check_public_key(cert.public_key()))
            jwk.pop("kid", None)
            der = cert.public_bytes(serialization.Encoding.DER)
            keys.append({**jwk, "use": "x509-svid", "x5c": [base64.b64encode(der).decode()]})
        for kid, key in sorted(self.jwt_authorities.items()):
            keys.append({**_jwk(key), "use": "jwt-svid", "kid": kid})
        return {
            "keys": keys,
            "spiffe_sequence": self.sequence,
            "spiffe_refresh_hint": self.refresh_hint,
        }

    def to_json(self) -> str:
        """The SPIFFE bundle document serialised as JSON."""
        return json.dumps(self.to_jwks(), indent=2, sort_keys=True)

    @classmethod
    def from_jwks(cls, trust_domain: str, document: Mapping[str, Any]) -> TrustBundle:
        """Read a SPIFFE bundle document, enforcing its per-key rules."""
        validate_trust_domain(trust_domain)
        entries = document.get("keys")
        if not isinstance(entries, list):
            raise BundleError("a SPIFFE bundle needs a 'keys' list")
        certs: list[x509.Certificate] = []
        jwt_keys: dict[str, PublicKey] = {}
        for entry in entries:
            if not isinstance(entry, dict) or "kty" not in entry:
                raise BundleError("every key needs 'kty'")
            use = entry.get("use")
            if use == "x509-svid":
                x5c = entry.get("x5c")
                if not isinstance(x5c, list) or len(x5c) != 1:
                    raise BundleError("an x509-svid key needs exactly one x5c certificate")
                if "kid" in entry:
                    raise BundleError("an x509-svid key must not carry a kid")
                certs.append(x509.load_der_x509_certificate(base64.b64decode(x5c[0])))
            elif use == "jwt-svid":
                kid = entry.get("kid")
                if not isinstance(kid, str) or not kid:
                    raise BundleError("a jwt-svid key needs a kid")
                try:
                    key = jwt.PyJWK(entry).key
                except jwt.PyJWTError as exc:
                    raise BundleError(f"unreadable jwt-svid key {kid}: {exc}") from None
                if not isinstance(
                    key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
                ):
                    raise BundleError(f"jwt-svid key {kid} is not a public key")
                jwt_keys[kid] = key
            else:
                raise BundleError(f"unknown key use {use!r}")
        sequence = document.get("spiffe_sequence", 0)
        hint = document.get("spiffe_refresh_hint", DEFAULT_REFRESH_HINT)
        if not isinstance(sequence, int) or not isinstance(hint, int):
            raise BundleError("spiffe_sequence and spiffe_refresh_hint must be integers")
        return cls(trust_domain, tuple(certs), jwt_keys, sequence, hint)
