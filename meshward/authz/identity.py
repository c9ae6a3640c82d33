"""The caller's SPIFFE ID in HTTP mode, from whatever the settings say Envoy provides.

Nothing the caller sends is trusted by default: with ``mode: none`` every request is
unauthenticated. The other modes are safe only with the Envoy settings in
``docs/ext_authz.md`` (Envoy overwrites or sanitises the header before it reaches here).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from meshward.policy.identity import peer_identity

from .settings import IdentitySettings
from .xfcc import peer_spiffe_id

XFCC_HEADER = "x-forwarded-client-cert"

IdentityReader = Callable[[Mapping[str, str]], str | None]


def identity_reader(settings: IdentitySettings) -> IdentityReader:
    """A function from lower-case request headers to a validated SPIFFE ID, or None."""
    if settings.mode == "header":
        name = settings.header

        def from_header(headers: Mapping[str, str]) -> str | None:
            # Envoy joins several URI SANs with ',', which is then not a valid SPIFFE ID:
            # a certificate with more than one URI SAN gives no identity.
            return trusted_principal(headers.get(name))

        return from_header
    if settings.mode == "xfcc":
        expected_by = settings.xfcc_by

        def from_xfcc(headers: Mapping[str, str]) -> str | None:
            value = headers.get(XFCC_HEADER)
            return peer_spiffe_id(value, expected_by) if value else None

        return from_xfcc
    return lambda headers: None


def trusted_principal(value: str | None) -> str | None:
    """``value`` when it is a valid SPIFFE ID, else None (the caller is unauthenticated)."""
    if not value:
        return None
    return value if peer_identity(value) is not None else None
