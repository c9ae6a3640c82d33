"""Destination resolution order and host parsing."""

from __future__ import annotations

import pytest

from meshward.authz.destination import DestinationResolver, host_port
from meshward.authz.settings import DestinationSettings
from meshward.policy.request import host_name

WORKLOAD = "spiffe://cluster.local/ns/default/sa/ratings"


def test_each_transport_reads_its_own_channel_then_the_maps() -> None:
    r = DestinationResolver(
        DestinationSettings(
            hosts={"Reviews.Example": "reviews.default"}, principals={WORKLOAD: "ratings.default"}
        )
    )
    assert r.from_headers({"x-meshward-destination": "api.default"}) == "api.default"
    assert r.from_headers({"x-meshward-destination": ""}) is None
    by_identity = {"x-meshward-destination-principal": WORKLOAD}
    assert r.from_headers(by_identity) == "ratings.default"
    assert r.from_headers({**by_identity, "x-meshward-destination": "api.default"}) == (
        "api.default"
    )
    assert r.from_headers({"x-meshward-destination-principal": "spiffe://x/y"}) is None
    assert r.from_grpc({"destination": "api.default"}, WORKLOAD) == "api.default"
    assert r.from_grpc({}, WORKLOAD) == "ratings.default"
    assert r.from_grpc({}, "") is None
    assert r.by_host("REVIEWS.example:9080") == "reviews.default"
    assert r.by_host("unknown.example") is None
    assert r.by_host(None) is None


def test_header_ignored_when_not_configured() -> None:
    r = DestinationResolver(DestinationSettings(header=None))
    assert r.from_headers({"x-meshward-destination": "api.default"}) is None


def test_the_port_comes_from_envoys_port_header_not_the_host() -> None:
    r = DestinationResolver(DestinationSettings())
    assert r.port_from_headers({"x-meshward-destination-port": "8443"}, "a:1") == 8443
    assert r.port_from_headers({}, "a:8443") is None
    for bad in ("", "0", "65536", "８０", "80 ", "123456"):
        assert r.port_from_headers({"x-meshward-destination-port": bad}, "a") is None
    # Only with no port header configured does the Host's port count.
    assert (
        DestinationResolver(DestinationSettings(port_header=None)).port_from_headers(
            {"x-meshward-destination-port": "1"}, "a:8443"
        )
        == 8443
    )


@pytest.mark.parametrize(
    ("host", "name", "port"),
    [
        ("reviews:9080", "reviews", 9080),
        ("Reviews", "reviews", None),
        ("[::1]:8080", "[::1]", 8080),
        ("[::1]", "[::1]", None),
        ("::1", "::1", None),
        ("a:99999", "a", None),
        ("a:0", "a", None),
        ("a:x", "a", None),
        ("a:\u00b2", "a", None),  # a digit to str.isdigit, not to int()
        ("a:\u0663", "a", None),  # a decimal digit, but not an ASCII one
        ("a:000080", "a", None),  # more than five digits is no port
        ("a:" + "9" * 5000, "a", None),  # nor a number int() would refuse
    ],
)
def test_host_parts(host: str, name: str, port: int | None) -> None:
    assert host_name(host) == name
    assert host_port(host) == port
