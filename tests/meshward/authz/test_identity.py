"""Identity in HTTP mode: trusted only when configured, and only if a valid SPIFFE ID."""

from __future__ import annotations

from meshward.authz.identity import identity_reader, trusted_principal
from meshward.authz.settings import IdentitySettings

PEER = "spiffe://cluster.local/ns/default/sa/frontend"


def test_nothing_is_trusted_by_default() -> None:
    read = identity_reader(IdentitySettings())
    headers = {
        "x-meshward-peer-uri-san": PEER,
        "x-forwarded-client-cert": f"URI={PEER}",
    }
    assert read(headers) is None


def test_header_mode_reads_only_the_configured_header() -> None:
    read = identity_reader(IdentitySettings(mode="header", header="X-Peer"))
    assert read({"x-peer": PEER}) == PEER
    assert read({"x-forwarded-client-cert": f"URI={PEER}"}) is None
    assert read({}) is None


def test_header_mode_refuses_several_sans_and_invalid_ids() -> None:
    read = identity_reader(IdentitySettings(mode="header"))
    two = f"{PEER},spiffe://cluster.local/ns/x/sa/y"  # Envoy's join of two URI SANs
    assert read({"x-meshward-peer-uri-san": two}) is None
    assert read({"x-meshward-peer-uri-san": "spiffe://Bad/ns"}) is None
    assert read({"x-meshward-peer-uri-san": ""}) is None


def test_xfcc_mode_uses_the_last_element() -> None:
    read = identity_reader(IdentitySettings(mode="xfcc"))
    header = f"URI=spiffe://cluster.local/ns/evil/sa/x,URI={PEER}"
    assert read({"x-forwarded-client-cert": header}) == PEER
    assert read({"x-meshward-peer-uri-san": PEER}) is None
    assert read({"x-forwarded-client-cert": f"URI={PEER};URI={PEER}"}) is None


def test_trusted_principal_validates() -> None:
    assert trusted_principal(PEER) == PEER
    assert trusted_principal("CN=frontend") is None  # a subject, not a SPIFFE ID
    assert trusted_principal(None) is None
