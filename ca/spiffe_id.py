"""SPIFFE IDs and trust domain names, validated per the SPIFFE ID specification."""

from __future__ import annotations

import string
from dataclasses import dataclass

from .errors import InvalidSpiffeId

SCHEME_PREFIX = "spiffe://"
MAX_ID_BYTES = 2048
MAX_TRUST_DOMAIN_BYTES = 255

_TRUST_DOMAIN_CHARS = frozenset(string.ascii_lowercase + string.digits + ".-_")
_PATH_CHARS = frozenset(string.ascii_letters + string.digits + ".-_")


def validate_trust_domain(name: str) -> str:
    """Return ``name`` if it is a valid trust domain name, else raise :class:`InvalidSpiffeId`."""
    if not name:
        raise InvalidSpiffeId("trust domain is empty", code="empty-trust-domain")
    if len(name.encode()) > MAX_TRUST_DOMAIN_BYTES:
        raise InvalidSpiffeId(
            f"trust domain is longer than {MAX_TRUST_DOMAIN_BYTES} bytes",
            code="trust-domain-too-long",
        )
    for ch in name:
        if ch in _TRUST_DOMAIN_CHARS:
            continue
        if ch == "@":
            raise InvalidSpiffeId("SPIFFE ID must not contain userinfo ('@')", code="userinfo")
        if ch == ":":
            raise InvalidSpiffeId("SPIFFE ID must not contain a port (':')", code="port")
        if ch == "%":
            raise InvalidSpiffeId(
                "SPIFFE ID must not contain percent-encoding ('%')", code="percent-encoding"
            )
        if ch.isupper():
            raise InvalidSpiffeId(
                f"trust domain must be lower-case, found {ch!r}", code="trust-domain-case"
            )
        raise InvalidSpiffeId(
            f"trust domain may only contain [a-z0-9._-], found {ch!r}",
            code="trust-domain-char",
        )
    return name


def _validate_path(path: str) -> None:
    if not path:
        return
    if path.endswith("/"):
        raise InvalidSpiffeId("path must not end with '/'", code="trailing-slash")
    for segment in path[1:].split("/"):
        if not segment:
            raise InvalidSpiffeId("path segments must not be empty", code="empty-segment")
        if segment in (".", ".."):
            raise InvalidSpiffeId(
                f"path segments must not be '.' or '..', found {segment!r}", code="dot-segment"
            )
        for ch in segment:
            if ch in _PATH_CHARS:
                continue
            if ch == "%":
                raise InvalidSpiffeId(
                    "SPIFFE ID must not contain percent-encoding ('%')", code="percent-encoding"
                )
            raise InvalidSpiffeId(
                f"path segments may only contain [a-zA-Z0-9._-], found {ch!r}",
                code="path-char",
            )


@dataclass(frozen=True, order=True)
class SpiffeId:
    """A validated SPIFFE ID: a trust domain and a path (``""`` for the trust domain itself)."""

    trust_domain: str
    path: str = ""

    def __post_init__(self) -> None:
        validate_trust_domain(self.trust_domain)
        if self.path and not self.path.startswith("/"):
            raise InvalidSpiffeId("path must start with '/'", code="path-start")
        _validate_path(self.path)
        if len(str(self).encode()) > MAX_ID_BYTES:
            raise InvalidSpiffeId(
                f"SPIFFE ID is longer than {MAX_ID_BYTES} bytes", code="id-too-long"
            )

    @classmethod
    def parse(cls, text: str) -> SpiffeId:
        """Parse ``spiffe://trust-domain/path``, naming the broken rule on failure."""
        if not text:
            raise InvalidSpiffeId("SPIFFE ID is empty", code="empty")
        if len(text.encode()) > MAX_ID_BYTES:
            raise InvalidSpiffeId(
                f"SPIFFE ID is longer than {MAX_ID_BYTES} bytes", code="id-too-long"
            )
        if not text.startswith(SCHEME_PREFIX):
            raise InvalidSpiffeId("scheme must be 'spiffe://'", code="scheme")
        rest = text[len(SCHEME_PREFIX) :]
        if "?" in rest:
            raise InvalidSpiffeId("SPIFFE ID must not contain a query ('?')", code="query")
        if "#" in rest:
            raise InvalidSpiffeId("SPIFFE ID must not contain a fragment ('#')", code="fragment")
        slash = rest.find("/")
        if slash == -1:
            return cls(rest)
        return cls(rest[:slash], rest[slash:])

    @classmethod
    def of_trust_domain(cls, trust_domain: str) -> SpiffeId:
        """The ID of the trust domain itself (no path), as carried by CA certificates."""
        return cls(trust_domain)

    @property
    def is_trust_domain(self) -> bool:
        """True when this is the ID of a trust domain, not of a workload."""
        return not self.path

    def __str__(self) -> str:
        return f"{SCHEME_PREFIX}{self.trust_domain}{self.path}"
