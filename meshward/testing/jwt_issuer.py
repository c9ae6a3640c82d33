"""A JWT issuer for tests and benchmarks: a real key pair, a JWKS file, signed tokens."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm


class TestIssuer:
    """An ES256 issuer. ``write_jwks`` publishes its public keys; ``token`` signs claims
    (``iss``, ``aud``, ``iat`` and ``exp`` are filled in unless given; ``ttl=None`` leaves
    ``exp`` out); ``key`` signs with a key the JWKS does not hold."""

    __test__ = False  # not a pytest test class

    def __init__(self, issuer: str = "https://issuer.test", audience: str = "meshward") -> None:
        self.issuer = issuer
        self.audience = audience
        self._keys: dict[str, ec.EllipticCurvePrivateKey] = {}
        self.kid = self.add_key()

    def add_key(self) -> str:
        """Add a signing key (key rotation); it signs from now on. Returns its kid."""
        kid = f"k{len(self._keys) + 1}"
        self._keys[kid] = ec.generate_private_key(ec.SECP256R1())
        self.kid = kid
        return kid

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in self._keys.items():
            jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "ES256"})
        return {"keys": keys}

    def write_jwks(self, path: Path) -> Path:
        path.write_text(json.dumps(self.jwks()), encoding="utf-8")
        return path

    def token(
        self,
        claims: dict[str, Any] | None = None,
        *,
        ttl: float | None = 300,
        kid: str | None = None,
        key: ec.EllipticCurvePrivateKey | None = None,
    ) -> str:
        now = int(time.time())
        body: dict[str, Any] = {"iss": self.issuer, "aud": self.audience, "iat": now}
        if ttl is not None:
            body["exp"] = now + int(ttl)
        body.update(claims or {})
        kid = kid or self.kid
        signing_key = key if key is not None else self._keys[kid]
        return jwt.encode(body, signing_key, algorithm="ES256", headers={"kid": kid})
