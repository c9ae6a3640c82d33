"""The canonical request: its JSON shape, and value semantics."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshward.policy import Request
from meshward.policy.request import RequestError

FULL = {
    "destination": "reviews",
    "method": "GET",
    "path": "/reviews/1?x=1",
    "port": 9080,
    "host": "Reviews:9080",
    "headers": {"x-trace": "1"},
    "source": {"principal": "spiffe://cluster.local/ns/a/sa/b", "ip": "10.0.0.1"},
    "jwt": {"sub": "alice", "scope": ["read"]},
    "sni": "reviews.local",
}


def test_from_json_reads_every_field() -> None:
    request = Request.from_json(FULL)
    assert request == Request(
        "reviews",
        "GET",
        "/reviews/1?x=1",
        9080,
        "Reviews:9080",
        {"x-trace": "1"},
        "spiffe://cluster.local/ns/a/sa/b",
        "10.0.0.1",
        {"sub": "alice", "scope": ["read"]},
        "reviews.local",
    )
    assert request.host_name == "reviews"


def test_from_json_normalises_method_and_header_names() -> None:
    request = Request.from_json(
        {"destination": "d", "method": "get", "path": "/", "headers": {"X-A": 1}}
    )
    assert (request.method, dict(request.headers)) == ("GET", {"x-a": "1"})


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "a request is a JSON object"),
        ({"destination": "d", "method": "GET", "path": "/", "source": ""}, "JSON objects"),
        ({"method": "GET", "path": "/"}, "'destination' is required"),
        ({"destination": "d", "method": 1, "path": "/"}, "'method' is required"),
        ({"destination": "d", "method": "GET", "path": "/", "port": "80"}, "`port`"),
        ({"destination": "d", "method": "GET", "path": "/", "port": True}, "`port`"),
        ({"destination": "d", "method": "GET", "path": "/", "headers": []}, "JSON objects"),
        ({"destination": "d", "method": "GET", "path": "/", "jwt": "token"}, "verified claims"),
    ],
)
def test_from_json_refuses_wrong_shapes(doc: Any, message: str) -> None:
    with pytest.raises(RequestError, match=message):
        Request.from_json(doc)


def test_json_round_trip_keeps_every_field() -> None:
    request = Request.from_json(FULL)
    assert Request.from_json(request.to_json()) == request


def test_defaults_and_minimal_json() -> None:
    request = Request("d", "GET", "/")
    assert request.to_json() == {"destination": "d", "method": "GET", "path": "/"}
    assert (request.port, request.host, request.principal, request.jwt) == (None,) * 4
    assert dict(request.headers) == {}


@given(
    st.sampled_from(["destination", "method", "path", "host", "principal", "source_ip", "sni"]),
    st.text(min_size=1, max_size=5),
)
def test_equal_only_when_every_field_is(field: str, value: str) -> None:
    base = Request.from_json(FULL)
    changed = Request.from_json(FULL)
    assert changed == base
    object.__setattr__(changed, field, getattr(base, field) + value)
    assert changed != base
    assert base != FULL  # never equal to another type


def test_repr_names_every_field() -> None:
    text = repr(Request("d", "GET", "/a", principal="spiffe://td/x"))
    assert text.startswith("Request(destination='d', method='GET', path='/a', port=None")
    assert "principal='spiffe://td/x'" in text and text.endswith("sni=None)")


def test_a_request_takes_no_other_attribute() -> None:
    request = Request("d", "GET", "/")
    with pytest.raises(AttributeError):
        request.extra = 1  # type: ignore[attr-defined]
