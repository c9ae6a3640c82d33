"""The canonical request: its JSON shape, and value semantics."""

from __future__ import annotations

import copy
import pickle
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
        {"destination": "d", "method": "get", "path": "/", "headers": {"X-A": "1"}}
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
        # A null header would read as the text "None", and make `has` true.
        ({"destination": "d", "method": "GET", "path": "/", "headers": {"a": None}}, "strings"),
        ({"destination": "d", "method": "GET", "path": "/", "headers": {"a": 1}}, "strings"),
        ({"destination": "d", "method": "GET", "path": "/", "headers": {True: "x"}}, "strings"),
        ({"destination": "d", "method": "GET", "path": "/", "jwt": "token"}, "verified claims"),
        ({"destination": "d", "method": "GET", "path": "/", "host": 5}, "`host` is a string"),
        ({"destination": "d", "method": "GET", "path": "/", "sni": 5}, "`sni` is a string"),
        (
            {"destination": "d", "method": "GET", "path": "/", "source": {"principal": 1}},
            "`source.principal` is a string",
        ),
        (
            {"destination": "d", "method": "GET", "path": "/", "source": {"ip": ["10.0.0.1"]}},
            "`source.ip` is a string",
        ),
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


OTHER_VALUES: dict[str, Any] = {
    "port": 9081,
    "headers": {"x-trace": "2"},
    "jwt": {"sub": "bob", "scope": ["read"]},
}


@given(
    st.sampled_from(
        ["destination", "method", "path", "host", "principal", "source_ip", "sni", *OTHER_VALUES]
    ),
    st.text(min_size=1, max_size=5),
)
def test_equal_only_when_every_field_is(field: str, value: str) -> None:
    base = Request.from_json(FULL)
    changed = Request.from_json(FULL)
    assert changed == base
    new = OTHER_VALUES[field] if field in OTHER_VALUES else getattr(base, field) + value
    object.__setattr__(changed, field, new)
    assert changed != base
    assert base != FULL  # never equal to another type


@pytest.mark.parametrize("request_", [Request.from_json(FULL), Request("d", "GET", "/")])
def test_pickles_and_copies_as_a_value(request_: Request) -> None:
    assert pickle.loads(pickle.dumps(request_)) == request_
    assert copy.copy(request_) == request_ and copy.deepcopy(request_) == request_


def test_repr_names_every_field() -> None:
    text = repr(Request("d", "GET", "/a", principal="spiffe://td/x"))
    assert text.startswith("Request(destination='d', method='GET', path='/a', port=None")
    assert "principal='spiffe://td/x'" in text and text.endswith("sni=None)")


def test_a_request_takes_no_other_attribute() -> None:
    request = Request("d", "GET", "/")
    with pytest.raises(AttributeError):
        request.extra = 1  # type: ignore[attr-defined]
