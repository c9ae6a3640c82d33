"""JWT-SVIDs: issuing compact JWS tokens for a SPIFFE ID, and validating them per the spec."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .authority import utcnow
from .errors import InvalidSpiffeId, JwtSvidInvalid
from .keys import PrivateKey, PublicKey
from .spiffe_id import SpiffeId

#: The only algorithms the JWT-SVID spec allows (never HS*, none or EdDSA).
ALLOWED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"}
)
_ALLOWED_HEADERS = frozenset({"alg", "kid", "typ"})
_ALLOWED_TYPES = frozenset({"JWT", "JOSE"})
DEFAULT_JWT_TTL = dt.timedelta(minutes=5)
DEFAULT_LEEWAY = dt.timedelta(seconds=30)


def algorithm_for(key: PrivateKey | PublicKey) -> str:
    """The JWS algorithm a key signs JWT-SVIDs with (ES256 for P-256, the default)."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return {"secp256r1": "ES256", "secp384r1": "ES384"}[key.curve.name]
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "RS256"
    raise JwtSvidInvalid(
        "JWT-SVIDs cannot be signed with Ed25519 (EdDSA is not allowed)", code="bad-alg"
    )


def issue_jwt_svid(
    key: PrivateKey,
    kid: str,
    spiffe_id: SpiffeId,
    audience: Sequence[str],
    *,
    ttl: dt.timedelta = DEFAULT_JWT_TTL,
    now: dt.datetime | None = None,
) -> str:
    """Sign a JWT-SVID for ``spiffe_id`` valid for ``audience`` (at least one)."""
    if not audience:
        raise JwtSvidInvalid("a JWT-SVID needs at least one audience", code="no-audience")
    if not kid:
        raise JwtSvidInvalid("a JWT-SVID must carry a key id", code="no-kid")
    if spiffe_id.is_trust_domain:
        raise InvalidSpiffeId("a JWT-SVID subject needs a path", code="leaf-without-path")
    if ttl <= dt.timedelta(0):
        raise JwtSvidInvalid(f"a lifetime must be positive, not {ttl}", code="bad-ttl")
    now = now or utcnow()
    claims: dict[str, Any] = {
        "sub": str(spiffe_id),
        "aud": list(audience),
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
    }
    return jwt.encode(claims, key, algorithm=algorithm_for(key), headers={"kid": kid, "typ": "JWT"})


@dataclass(frozen=True)
class JwtSvid:
    """A validated JWT-SVID."""

    spiffe_id: SpiffeId
    audience: tuple[str, ...]
    expiry: dt.datetime
    claims: Mapping[str, Any]


def _fits(alg: str, key: PublicKey) -> bool:
    """Whether ``key`` is of the family ``alg`` signs with (ES256 also needs P-256, ...)."""
    if alg.startswith(("RS", "PS")):
        return isinstance(key, rsa.RSAPublicKey)
    curve = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}[alg]
    return isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, curve)


def validate_jwt_svid(
    token: str,
    keys: Mapping[str, PublicKey],
    audience: str,
    *,
    trust_domain: str,
    now: dt.datetime | None = None,
    leeway: dt.timedelta = DEFAULT_LEEWAY,
) -> JwtSvid:
    """Validate a JWT-SVID against the trust domain's JWT authorities (``kid`` → key).

    Rejects: a header other than alg/kid/typ, a disallowed alg, a missing or unknown kid,
    a bad signature, a missing sub/aud/exp, an audience not containing ``audience``, an
    expired token, and a subject outside ``trust_domain``.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:  # undecodable, or a header pyjwt refuses
        raise JwtSvidInvalid(f"not a compact JWS: {exc}", code="malformed") from None
    extra = set(header) - _ALLOWED_HEADERS
    if extra:
        raise JwtSvidInvalid(f"header fields not allowed: {sorted(extra)}", code="bad-header")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:  # (a list is unhashable)
        raise JwtSvidInvalid(f"algorithm {alg!r} is not allowed", code="bad-alg")
    typ = header.get("typ", "JWT")
    if not isinstance(typ, str) or typ not in _ALLOWED_TYPES:
        raise JwtSvidInvalid(f"typ {typ!r} is not JWT or JOSE", code="bad-header")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise JwtSvidInvalid("the token has no key id (kid)", code="no-kid")
    key = keys.get(kid)
    if key is None:
        raise JwtSvidInvalid(f"key id {kid!r} is not in the trust bundle", code="unknown-kid")
    if not _fits(alg, key):  # pyjwt would fail with a TypeError deep in the key loader
        raise JwtSvidInvalid(f"key {kid!r} is not a key for {alg}", code="bad-alg")
    try:
        # exp is checked below against the caller's clock, so tests and callers control "now".
        claims = jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=audience,
            options={"require": ["sub", "aud", "exp"], "verify_exp": False},
        )
    except jwt.MissingRequiredClaimError as exc:
        raise JwtSvidInvalid(f"required claim missing: {exc.claim}", code="missing-claim") from None
    except jwt.InvalidAudienceError:
        raise JwtSvidInvalid(
            f"the token is not for audience {audience!r}", code="audience"
        ) from None
    except jwt.InvalidSignatureError:
        raise JwtSvidInvalid("the signature does not verify", code="bad-signature") from None
    except jwt.PyJWTError as exc:
        raise JwtSvidInvalid(f"invalid token: {exc}", code="invalid") from None
    exp = claims["exp"]
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise JwtSvidInvalid("exp is not a number", code="invalid")
    expiry = dt.datetime.fromtimestamp(exp, dt.UTC)
    if expiry + leeway <= (now or utcnow()):
        raise JwtSvidInvalid("the token has expired", code="expired")
    try:
        subject = SpiffeId.parse(claims["sub"])
    except (InvalidSpiffeId, TypeError) as exc:
        raise JwtSvidInvalid(f"sub is not a SPIFFE ID: {exc}", code="bad-subject") from None
    if subject.trust_domain != trust_domain or subject.is_trust_domain:
        raise JwtSvidInvalid(
            f"sub {subject} is not a workload of {trust_domain}", code="bad-subject"
        )
    aud = claims["aud"]
    return JwtSvid(subject, tuple([aud] if isinstance(aud, str) else aud), expiry, claims)
