"""Caller identities: SPIFFE IDs as the policy language and the evaluator see them.

Validation follows the SPIFFE ID specification; a request whose peer ID breaks it is
treated as having no identity (unauthenticated), never as a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]+")
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_WORKLOAD_PATH = re.compile(r"/ns/([^/]+)/sa/([^/]+)")


class SpiffeIdError(ValueError):
    """A SPIFFE ID that breaks the specification; the message names the rule."""


@dataclass(frozen=True, slots=True)
class Identity:
    """A validated SPIFFE ID, with the Kubernetes namespace and service account when the
    path has the ``/ns/<ns>/sa/<sa>`` shape workloads use."""

    spiffe_id: str
    trust_domain: str
    path: str
    namespace: str | None
    service_account: str | None
    namespace_key: str  # ``trust_domain/namespace`` as the model names it; "" if none


def check_trust_domain(name: str) -> None:
    """Validate a trust domain name per the SPIFFE ID spec; raises SpiffeIdError."""
    if not name:
        raise SpiffeIdError("the trust domain is empty")
    if ":" in name:
        raise SpiffeIdError("the trust domain may not contain a port")
    if len(name) > 255:
        raise SpiffeIdError("the trust domain is at most 255 characters")
    if not _TRUST_DOMAIN.fullmatch(name):
        raise SpiffeIdError(
            f"trust domain {name!r} may use only lower-case letters, digits, '.', '-', '_'"
        )


@lru_cache(maxsize=65536)
def parse_spiffe_id(text: str) -> Identity:
    """Validate ``spiffe://trust-domain/path`` per the SPIFFE ID spec (cached: a policy
    set names the same identities over and over)."""
    if len(text.encode()) > 2048:
        raise SpiffeIdError("a SPIFFE ID is at most 2048 bytes")
    scheme, sep, rest = text.partition("://")
    if not sep or scheme != "spiffe":
        raise SpiffeIdError("a SPIFFE ID starts with spiffe:// (lower-case scheme)")
    if "%" in text:
        raise SpiffeIdError("a SPIFFE ID may not contain percent-encoding")
    for char, what in (("?", "a query"), ("#", "a fragment"), ("@", "userinfo")):
        if char in rest:
            raise SpiffeIdError(f"a SPIFFE ID may not contain {what}")
    trust_domain, slash, path = rest.partition("/")
    check_trust_domain(trust_domain)
    path = slash + path
    if path:
        if path.endswith("/"):
            raise SpiffeIdError("the path may not end with '/'")
        for segment in path[1:].split("/"):
            if segment in ("", ".", ".."):
                raise SpiffeIdError("path segments may not be empty, '.' or '..'")
            if not _SEGMENT.fullmatch(segment):
                raise SpiffeIdError(
                    f"path segment {segment!r} may use only letters, digits, '.', '-', '_'"
                )
    m = _WORKLOAD_PATH.fullmatch(path)
    return Identity(
        spiffe_id=text,
        trust_domain=trust_domain,
        path=path,
        namespace=m.group(1) if m else None,
        service_account=m.group(2) if m else None,
        namespace_key=f"{trust_domain}/{m.group(1)}" if m else "",
    )


_PEERS_LIMIT = 65536
_peers: dict[str, Identity | None] = {}


def peer_identity(text: str | None) -> Identity | None:
    """The identity of a request's peer, or None when absent or not a valid SPIFFE ID.

    Cached apart from :func:`parse_spiffe_id`, whose failures raise and so are not cached:
    the same few thousand peers call over and over. A plain dict, emptied when full, not
    an LRU: this runs on every decision, and a dict lookup costs a fifth of an LRU call.
    """
    if not text:
        return None
    try:
        return _peers[text]
    except KeyError:  # a miss is rare: the cost of raising is paid once per peer
        pass
    identity: Identity | None
    try:
        identity = parse_spiffe_id(text)
    except SpiffeIdError:
        identity = None
    if len(_peers) >= _PEERS_LIMIT:
        _peers.clear()  # bounded, whatever callers send
    _peers[text] = identity
    return identity
