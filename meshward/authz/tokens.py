"""JWT verification against configured issuers, with JWKS caching and a verified-token cache.

A token feeds claims into a decision only after pyjwt verified its signature, issuer,
audience, expiry and not-before (with bounded clock skew) under an allowed algorithm.
Failures are classified into stable reasons for decisions and metrics. Tokens are never
logged; the caches (verified tokens until they expire or their issuer's keys are withdrawn
or replaced, and apart from them, failures that cannot heal for a minute) are keyed by the
token's SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from meshward.policy.identity import peer_identity

from .settings import IssuerSettings, JwtSettings

log = logging.getLogger("meshward.authz.jwt")

# Stable failure reasons (also the `reason` label of the JWT failure metric).
MISSING = "missing"
MALFORMED = "malformed"
UNKNOWN_ISSUER = "unknown_issuer"
DISALLOWED_ALGORITHM = "disallowed_algorithm"
UNKNOWN_KEY = "unknown_key"
BAD_SIGNATURE = "bad_signature"
EXPIRED = "expired"
NOT_YET_VALID = "not_yet_valid"
WRONG_AUDIENCE = "wrong_audience"
MISSING_CLAIM = "missing_claim"
JWKS_UNAVAILABLE = "jwks_unavailable"
FAILURE_REASONS = (
    MALFORMED,
    UNKNOWN_ISSUER,
    DISALLOWED_ALGORITHM,
    UNKNOWN_KEY,
    BAD_SIGNATURE,
    EXPIRED,
    NOT_YET_VALID,
    WRONG_AUDIENCE,
    MISSING_CLAIM,
    JWKS_UNAVAILABLE,
)


# Failures found only after the signature was checked, which no later moment and no JWKS
# refresh turn into a success for the same token (a key replaced under its own kid could,
# which is rare and is bounded by the TTL). They are cached apart from verified tokens, so
# a client resending such a token costs a lookup, not a signature check, and no flood of
# bad tokens can push verified ones out. Failures found before any signature work
# (malformed, unknown issuer, disallowed algorithm) cost little to find again; an unknown
# key (a refresh may bring it) and a token not yet valid are never cached.
LASTING_FAILURES = frozenset({BAD_SIGNATURE, EXPIRED, WRONG_AUDIENCE, MISSING_CLAIM})
FAILURE_TTL_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class JwtResult:
    """Verified ``claims``, or None with the ``reason`` verification failed (or ``missing``)."""

    claims: Mapping[str, Any] | None
    reason: str | None

    @property
    def verified(self) -> bool:
        return self.claims is not None


NO_TOKEN = JwtResult(None, MISSING)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None


class KeySet:
    """One issuer's JWKS: loaded from a file or URL, cached, refreshed when it ages out or a
    token names an unknown ``kid`` (at most once per ``min_refresh`` seconds).

    A JWKS file is re-read in place (a local read). A JWKS URL is fetched on a background
    thread, never inside a check: until the fetch lands, a token under a key not yet known
    fails with ``unknown_key`` (issuers publish a key before signing with it, so the
    periodic refresh normally has it already). :meth:`load` fetches synchronously, once,
    before serving."""

    def __init__(self, issuer: IssuerSettings, min_refresh: float, timeout: float) -> None:
        self._settings = issuer
        self._min_refresh = min_refresh
        self._timeout = timeout
        self._lock = threading.Lock()
        # The keys by kid, and their generation, swapped together in one assignment. The
        # generation moves on when a reload drops or replaces a key: tokens verified under
        # an earlier one are verified again, so a withdrawn key stops working before its
        # tokens expire.
        self._state: tuple[dict[str | None, Any], int] = ({}, 0)
        self._loaded_at = -1e18
        self._attempted_at = -1e18
        self._fetching = False

    def load(self) -> None:
        """Fetch the keys now (at start-up); failures are logged, not raised."""
        with self._lock:
            self._attempted_at = time.monotonic()
        self._load()

    def current(self) -> int:
        """The generation of the keys, once they are reread if they have aged out."""
        self._refresh_if_aged(time.monotonic())
        return self._state[1]

    def key(self, kid: str | None) -> tuple[Any | None, int]:
        """The verification key for ``kid`` (a JWKS with one key also serves no kid), and
        the generation of the keys it was found in."""
        now = time.monotonic()
        self._refresh_if_aged(now)
        found, generation = self._lookup(kid)
        if found is None:
            self._refresh(now)
            found, generation = self._lookup(kid)
        return found, generation

    def _refresh_if_aged(self, now: float) -> None:
        if now - self._loaded_at > self._settings.jwks_cache_seconds:
            self._refresh(now)

    def _lookup(self, kid: str | None) -> tuple[Any | None, int]:
        keys, generation = self._state
        if kid is None and len(keys) == 1:
            return next(iter(keys.values())), generation
        return keys.get(kid), generation

    def _refresh(self, now: float) -> None:
        with self._lock:
            if self._fetching or now - self._attempted_at < self._min_refresh:
                return
            self._attempted_at = now
            background = self._fetching = self._settings.jwks_url is not None
        if background:
            threading.Thread(target=self._load, name="jwks-fetch", daemon=True).start()
        else:
            self._load()

    def _load(self) -> None:
        try:
            keys = self._fetch()
        except Exception as exc:  # unreadable, unreachable, or not a JWKS at all
            # Keep the last good keys; a token signed by a key we cannot load fails.
            log.warning("JWKS of issuer %s unavailable: %s", self._settings.name, exc)
        else:
            old, generation = self._state
            if any(keys.get(kid) != key for kid, key in old.items()):
                generation += 1
            self._state = (keys, generation)  # one swap: readers see the old or the new
            self._loaded_at = time.monotonic()
        finally:
            with self._lock:
                self._fetching = False

    def _fetch(self) -> dict[str | None, Any]:
        s = self._settings
        if s.jwks_file is not None:
            text = s.jwks_file.read_text(encoding="utf-8")
        else:
            assert s.jwks_url is not None
            with urllib.request.urlopen(s.jwks_url, timeout=self._timeout) as response:
                text = response.read(1 << 20).decode()
        document = json.loads(text)
        found = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(found, list):
            raise ValueError('not a JWKS: expected an object with a "keys" list')
        keys: dict[str | None, Any] = {}
        broken = 0
        for jwk in found:
            kid = jwk.get("kid") if isinstance(jwk, dict) else None
            if not isinstance(jwk, dict) or (kid is not None and not isinstance(kid, str)):
                broken += 1
                continue
            if jwk.get("use", "sig") not in ("sig", "jwt-svid"):
                continue  # e.g. the x509-svid keys of a SPIFFE bundle
            try:
                keys[kid] = jwt.PyJWK(jwk).key
            except (jwt.PyJWKError, jwt.InvalidKeyError) as exc:
                broken += 1
                log.warning("skipping a JWK of issuer %s: %s", s.name, exc)
        if broken and not keys:
            # A publishing fault, not a rotation to no keys: keep the last good ones.
            raise ValueError(f"none of its {broken} key(s) could be read")
        return keys


FAR_FUTURE = 1e18  # seconds since the epoch: later expiry times are cached as this


class JwtVerifier:
    """Verify bearer tokens; thread-safe; caches verified tokens until they expire."""

    def __init__(self, settings: JwtSettings) -> None:
        self._leeway = settings.leeway_seconds
        self._cache_size = settings.cache_size
        # Verified tokens, until they expire, with the key set (and its generation) that
        # verified them; failures apart.
        self._cache: OrderedDict[bytes, tuple[JwtResult, float, KeySet | None, int]] = OrderedDict()
        self._failures: OrderedDict[bytes, tuple[JwtResult, float, KeySet | None, int]] = (
            OrderedDict()
        )
        self._cache_lock = threading.Lock()
        entries = [
            (i, KeySet(i, settings.jwks_min_refresh_seconds, settings.jwks_fetch_timeout_seconds))
            for i in settings.issuers
        ]
        self._issuers = {i.issuer: (i, k) for i, k in entries if i.issuer is not None}
        # JWT-SVIDs, by the trust domain of their subject.
        self._trust_domains = {i.trust_domain: (i, k) for i, k in entries if i.trust_domain}

    @property
    def enabled(self) -> bool:
        return bool(self._issuers or self._trust_domains)

    def load_keys(self) -> None:
        """Fetch every issuer's keys now, before serving (bounded by the fetch timeout)."""
        for _, keyset in (*self._issuers.values(), *self._trust_domains.values()):
            keyset.load()

    def verify(self, token: str | None) -> JwtResult:
        if not token:
            return NO_TOKEN
        digest = hashlib.sha256(token.encode()).digest()
        now = time.time()
        for cache in (self._cache, self._failures):
            cached = cache.get(digest)
            if cached is not None:
                result, expires, keyset, generation = cached
                # A verified token holds while the keys it was verified under stand (reread
                # as they age, as for any token), and until it expires.
                if now <= expires and (keyset is None or keyset.current() == generation):
                    return result
                with self._cache_lock:
                    cache.pop(digest, None)
        result, keyset, generation = self._verify(token)
        if not self._cache_size:
            return result
        if result.claims is not None:
            exp = result.claims.get("exp")
            if isinstance(exp, int | float):
                # (An int past any float's range would overflow float(): such a token
                # stays cached as long as its keys stand, as a far-future one does.)
                until = float(min(exp, FAR_FUTURE)) + self._leeway
                self._remember(self._cache, digest, (result, until, keyset, generation))
        elif result.reason in LASTING_FAILURES:
            entry = (result, now + FAILURE_TTL_SECONDS, None, 0)
            self._remember(self._failures, digest, entry)
        return result

    def _remember(
        self,
        cache: OrderedDict[bytes, tuple[JwtResult, float, KeySet | None, int]],
        digest: bytes,
        entry: tuple[JwtResult, float, KeySet | None, int],
    ) -> None:
        with self._cache_lock:
            cache[digest] = entry
            while len(cache) > self._cache_size:
                cache.popitem(last=False)

    def _verify(self, token: str) -> tuple[JwtResult, KeySet | None, int]:
        """The result, the key set whose key verified the token (None if none did), and
        the generation of the keys that key was found in."""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:  # not decodable, or a header pyjwt refuses (a kid
            return JwtResult(None, MALFORMED), None, 0  # that is not a string, a bad `crit`)
        entry = self._issuer_of(unverified)
        if entry is None:
            return JwtResult(None, UNKNOWN_ISSUER), None, 0
        settings, keyset = entry
        alg = header.get("alg")
        if alg not in settings.algorithms:
            return JwtResult(None, DISALLOWED_ALGORITHM), None, 0
        kid = header.get("kid")
        key, generation = keyset.key(kid if isinstance(kid, str) else None)
        if key is None:
            return JwtResult(None, UNKNOWN_KEY), None, 0
        result = self._signed(token, alg, key, settings)
        return result, keyset if result.claims is not None else None, generation

    def _signed(self, token: str, alg: str, key: Any, settings: IssuerSettings) -> JwtResult:
        """Verify the token's signature with ``key``, and its claims by the issuer's rules."""
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=settings.audiences,
                issuer=settings.issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss" if settings.issuer else "sub", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            return JwtResult(None, EXPIRED)
        except jwt.ImmatureSignatureError:
            return JwtResult(None, NOT_YET_VALID)
        except jwt.InvalidAudienceError:
            return JwtResult(None, WRONG_AUDIENCE)
        except jwt.InvalidIssuerError:
            return JwtResult(None, UNKNOWN_ISSUER)
        except jwt.MissingRequiredClaimError:
            return JwtResult(None, MISSING_CLAIM)
        except jwt.InvalidSignatureError:
            return JwtResult(None, BAD_SIGNATURE)
        except (jwt.InvalidTokenError, jwt.InvalidKeyError, ValueError, TypeError):
            return JwtResult(None, MALFORMED)
        return JwtResult(claims, None)

    def _issuer_of(self, unverified: Mapping[str, Any]) -> tuple[IssuerSettings, KeySet] | None:
        """Whose keys verify this token: the configured issuer its ``iss`` names; for a
        token without ``iss`` (a JWT-SVID), the trust domain of its ``sub``, a SPIFFE ID.
        The signature, checked next with those keys only, is what makes either claim true;
        an ``iss`` never falls through to a trust domain, so a verified claim set has an
        ``iss`` exactly when an issuer, not a trust domain, vouched for it."""
        if "iss" in unverified:
            issuer = unverified["iss"]
            return self._issuers.get(issuer) if isinstance(issuer, str) else None
        subject = unverified.get("sub")
        if self._trust_domains and isinstance(subject, str):
            identity = peer_identity(subject)
            if identity is not None:
                return self._trust_domains.get(identity.trust_domain)
        return None
