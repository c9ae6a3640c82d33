"""Strict XFCC parsing: what Envoy writes parses; anything else yields no identity."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshward.authz import xfcc
from meshward.authz.xfcc import (
    MAX_HEADER_BYTES,
    XfccElement,
    XfccError,
    parse_xfcc,
    peer_spiffe_id,
)

PEER = "spiffe://cluster.local/ns/default/sa/frontend"
PROXY = "spiffe://cluster.local/ns/default/sa/backend"


def test_envoy_element_with_quoted_subject_and_several_dns() -> None:
    header = (
        f'By={PROXY};Hash=abc123;Subject="CN=front,O=Acme;x";URI={PEER};DNS=a.example;DNS=b.example'
    )
    [element] = parse_xfcc(header)
    assert element == XfccElement(
        by=PROXY,
        hash="abc123",
        subject="CN=front,O=Acme;x",
        uri=PEER,
        dns=("a.example", "b.example"),
    )


def test_keys_are_case_insensitive_and_escaped_quotes_decode() -> None:
    [element] = parse_xfcc('uri=spiffe://td/a;SUBJECT="say \\"hi\\" \\\\ now"')
    assert element.uri == "spiffe://td/a"
    assert element.subject == 'say "hi" \\ now'


def test_multiple_elements_the_last_is_the_immediate_peer() -> None:
    first = "By=spiffe://td/gw;URI=spiffe://td/ns/a/sa/attacker"
    header = f"{first},By={PROXY};URI={PEER}"
    assert [e.uri for e in parse_xfcc(header)] == ["spiffe://td/ns/a/sa/attacker", PEER]
    assert peer_spiffe_id(header) == PEER


@pytest.mark.parametrize(
    "header",
    [
        "",
        "URI",
        "URI=",
        f"URI={PEER};URI=spiffe://cluster.local/ns/x/sa/y",  # duplicate URI: ambiguous
        f"By={PROXY};By={PROXY};URI={PEER}",
        f"Foo=bar;URI={PEER}",  # unknown key
        f'URI="{PEER}',  # unterminated quote
        f'URI="{PEER}"x',  # text after the closing quote
        f'Subject="a\\nb";URI={PEER}',  # unknown escape
        f'URI={PEER}"',  # quote in an unquoted value
        f"URI={PEER};",  # trailing separator
        f"URI={PEER},",
        f"URI=a=b;URI={PEER}",
        f'Subject="a"xURI={PEER}',  # text after a closing quote, before a valid URI
        f"Hash=a=b;URI={PEER}",  # `=` in an unquoted value
    ],
)
def test_malformed_headers_are_errors(header: str) -> None:
    with pytest.raises(XfccError):
        parse_xfcc(header)
    assert peer_spiffe_id(header) is None


def test_a_header_past_the_size_cap_gives_no_identity() -> None:
    padding = "x" * MAX_HEADER_BYTES
    header = f'Subject="{padding}";URI={PEER}'
    assert peer_spiffe_id(f"URI={PEER}") == PEER
    with pytest.raises(XfccError):
        parse_xfcc(header)
    assert peer_spiffe_id(header) is None


@pytest.mark.parametrize(
    "uri",
    [
        "spiffe://Cluster.Local/ns/a/sa/b",  # upper-case trust domain
        "spiffe://cluster.local/ns/a/sa/b/",  # trailing slash
        "spiffe://cluster.local/ns/%41/sa/b",  # percent-encoding
        "https://cluster.local/ns/a/sa/b",
        "spiffe://cluster.local:443/ns/a",
    ],
)
def test_bad_spiffe_ids_give_no_identity(uri: str) -> None:
    assert peer_spiffe_id(f'By={PROXY};URI="{uri}"') is None


def test_last_element_without_uri_gives_no_identity() -> None:
    assert peer_spiffe_id(f'URI={PEER},By={PROXY};Subject="CN=x"') is None


def test_expected_by_pins_the_proxy_that_wrote_the_element() -> None:
    header = f"By={PROXY};URI={PEER}"
    assert peer_spiffe_id(header, expected_by=PROXY) == PEER
    assert peer_spiffe_id(header, expected_by="spiffe://cluster.local/ns/x/sa/other") is None
    assert peer_spiffe_id(f"URI={PEER}", expected_by=PROXY) is None


_VALUE = st.text(alphabet=st.characters(codec="ascii", exclude_categories=["Cc"]), min_size=1)


@given(st.lists(st.tuples(_VALUE, _VALUE), min_size=1, max_size=4))
def test_round_trip_of_quoted_values(pairs: list[tuple[str, str]]) -> None:
    def quote(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    header = ",".join(f"Subject={quote(s)};URI={quote(u)}" for s, u in pairs)
    elements = parse_xfcc(header)
    assert [(e.subject, e.uri) for e in elements] == pairs


@given(st.text(max_size=60))
def test_arbitrary_text_never_crashes(header: str) -> None:
    with contextlib.suppress(XfccError):
        parse_xfcc(header)


def test_only_headers_of_ordinary_size_are_cached() -> None:
    # Behind APPEND_FORWARD the caller writes the elements before the last: huge, distinct
    # headers must not pile up in the cache.
    cache = xfcc._cached_peer_spiffe_id
    cache.cache_clear()
    forwarded = "URI=" + "spiffe://cluster.local/ns/x/sa/" + "y" * xfcc.CACHED_HEADER_CHARS
    assert peer_spiffe_id(f"{forwarded},By={PROXY};URI={PEER}") == PEER
    assert cache.cache_info().currsize == 0
    assert peer_spiffe_id(f"By={PROXY};URI={PEER}") == PEER
    assert cache.cache_info().currsize == 1
