"""Destination resolution order and host parsing."""

from __future__ import annotations

import pytest

from meshward.authz.destination import DestinationResolver, host_port
from meshward.authz.settings import DestinationSettings
from meshward.policy.request import host_name


def test_header_then_context_extension_then_host_map() -> None:
    r = DestinationResolver(DestinationSettings(hosts={"Reviews.Example": "reviews.default"}))
    headers = {"x-meshward-destination": "api.default"}
    assert r.resolve(headers, "reviews.example", {"destination": "x"}) == "api.default"
    assert r.resolve({}, "reviews.example", {"destination": "ratings.default"}) == (
        "ratings.default"
    )
    assert r.resolve({}, "REVIEWS.example:9080") == "reviews.default"
    assert r.resolve({}, "unknown.example") is None
    assert r.resolve({}, None) is None


def test_header_ignored_when_not_configured() -> None:
    r = DestinationResolver(DestinationSettings(header=None))
    assert r.resolve({"x-meshward-destination": "api.default"}, None) is None


@pytest.mark.parametrize(
    ("host", "name", "port"),
    [
        ("reviews:9080", "reviews", 9080),
        ("Reviews", "reviews", None),
        ("[::1]:8080", "[::1]", 8080),
        ("[::1]", "[::1]", None),
        ("::1", "::1", None),
        ("a:99999", "a", None),
        ("a:x", "a", None),
        ("a:\u00b2", "a", None),  # a digit to str.isdigit, not to int()
        ("a:\u0663", "a", None),  # a decimal digit, but not an ASCII one
    ],
)
def test_host_parts(host: str, name: str, port: int | None) -> None:
    assert host_name(host) == name
    assert host_port(host) == port
