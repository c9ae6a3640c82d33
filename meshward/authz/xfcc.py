"""Strict parsing of Envoy's ``x-forwarded-client-cert`` (XFCC) header.

Grammar, as Envoy writes it: elements separated by ``,`` (one per proxy hop), key/value
pairs by ``;``, ``key=value``; keys are case-insensitive (``By``, ``Hash``, ``Cert``,
``Chain``, ``Subject``, ``URI``, ``DNS``); a value containing ``,`` ``;`` ``=`` or ``"`` is
double-quoted, with ``\\"`` for a quote inside. Anything else is an error: the header was
not written by Envoy, or was tampered with, and yields no identity rather than a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from meshward.policy.identity import peer_identity

KEYS = frozenset({"by", "hash", "cert", "chain", "subject", "uri", "dns"})
# Only DNS may repeat: Envoy writes one DNS pair per DNS SAN. A repeated URI or By would make
# "the peer's identity" ambiguous.
REPEATABLE = frozenset({"dns"})
MAX_HEADER_BYTES = 64 * 1024
# Larger headers are parsed every time (one element with its certificate, `Cert=`, is
# about 3 KiB): the cache then holds at most 4,096 × 4 KiB.
CACHED_HEADER_CHARS = 4096


class XfccError(ValueError):
    """The header does not parse strictly; the message says where and why."""


@dataclass(frozen=True, slots=True)
class XfccElement:
    """One hop's client certificate details; ``dns`` holds every DNS SAN in order."""

    by: str | None = None
    hash: str | None = None
    cert: str | None = None
    chain: str | None = None
    subject: str | None = None
    uri: str | None = None
    dns: tuple[str, ...] = ()


def parse_xfcc(header: str) -> list[XfccElement]:
    """Every element of the header, in order; raises :class:`XfccError`."""
    if len(header) > MAX_HEADER_BYTES:
        raise XfccError("header too long")
    elements: list[XfccElement] = []
    fields: dict[str, str] = {}
    dns: list[str] = []
    i, n = 0, len(header)
    while True:
        # one key=value pair
        eq = header.find("=", i)
        if eq < 0:
            raise XfccError(f"missing '=' after position {i}")
        key = header[i:eq].strip().lower()
        if key not in KEYS:
            raise XfccError(f"unknown key {header[i:eq].strip()!r}")
        value, i = _value(header, eq + 1)
        if key in REPEATABLE:
            dns.append(value)
        elif key in fields:
            raise XfccError(f"duplicate key {key!r} in one element")
        else:
            fields[key] = value
        if i == n or header[i] == ",":
            elements.append(XfccElement(dns=tuple(dns), **fields))
            fields, dns = {}, []
            if i == n:
                return elements
        i += 1
        while i < n and header[i] == " ":
            i += 1
        if i == n:
            raise XfccError("trailing separator")


def _value(header: str, i: int) -> tuple[str, int]:
    """The value starting at ``i`` and the index of the separator after it (or the end)."""
    n = len(header)
    if i < n and header[i] == '"':
        out: list[str] = []
        i += 1
        while i < n:
            c = header[i]
            if c == "\\":
                if i + 1 < n and header[i + 1] in '"\\':
                    out.append(header[i + 1])
                    i += 2
                    continue
                raise XfccError(f"invalid escape at position {i}")
            if c == '"':
                i += 1
                if i < n and header[i] not in ",;":
                    raise XfccError(f"text after a closing quote at position {i}")
                return "".join(out), i
            out.append(c)
            i += 1
        raise XfccError("unterminated quoted value")
    end = i
    while end < n and header[end] not in ",;":
        if header[end] in '="\\':
            raise XfccError(f"unquoted value holds {header[end]!r} at position {end}")
        end += 1
    if end == i:
        raise XfccError(f"empty value at position {i}")
    return header[i:end], end


def peer_spiffe_id(header: str, expected_by: str | None = None) -> str | None:
    """The SPIFFE ID of the immediate peer: the URI of the last element, which the local
    Envoy appended. None when the header does not parse, the last element has no URI or
    one that is not a valid SPIFFE ID, or (when ``expected_by`` is set) it was not added by
    the expected proxy identity.

    Cached (bounded): a peer's connection sends the same header on every request. Only
    headers of ordinary size are: behind ``APPEND_FORWARD`` the caller writes every
    element but the last, and could otherwise fill the cache with 64 KiB headers."""
    if len(header) > CACHED_HEADER_CHARS:
        return _peer_spiffe_id(header, expected_by)
    return _cached_peer_spiffe_id(header, expected_by)


@lru_cache(maxsize=4096)
def _cached_peer_spiffe_id(header: str, expected_by: str | None) -> str | None:
    return _peer_spiffe_id(header, expected_by)


def _peer_spiffe_id(header: str, expected_by: str | None) -> str | None:
    try:
        elements = parse_xfcc(header)
    except XfccError:
        return None
    last = elements[-1]
    if expected_by is not None and last.by != expected_by:
        return None
    if last.uri is None or peer_identity(last.uri) is None:
        return None
    return last.uri
