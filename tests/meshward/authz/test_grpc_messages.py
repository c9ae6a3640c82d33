"""gRPC mode's message mapping on its own: CheckRequest to CheckInput, Outcome to
CheckResponse (in the wheel run, as compiled code reading and writing protobuf messages)."""

from __future__ import annotations

import pytest
from envoy.config.core.v3.address_pb2 import Address, SocketAddress
from envoy.config.core.v3.base_pb2 import HeaderValueOption
from envoy.service.auth.v3 import attribute_context_pb2 as ac
from envoy.service.auth.v3 import external_auth_pb2 as pb
from google.rpc import code_pb2

from meshward.authz.core import Outcome
from meshward.authz.destination import DestinationResolver
from meshward.authz.grpc_messages import check_input, check_response
from meshward.authz.settings import DestinationSettings

PEER = "spiffe://cluster.local/ns/default/sa/productpage"
OVERWRITE = HeaderValueOption.HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD


RESOLVER = DestinationResolver(DestinationSettings())


def _request(
    principal: str = "", host: str = "reviews:9080", headers: dict[str, str] | None = None
) -> pb.CheckRequest:
    request = pb.CheckRequest()
    attrs = request.attributes
    attrs.source.CopyFrom(
        ac.AttributeContext.Peer(
            principal=principal,
            address=Address(socket_address=SocketAddress(address="10.1.2.3", port_value=5555)),
        )
    )
    http = attrs.request.http
    http.method, http.path, http.host = "POST", "/reviews/1?x=1", host
    http.headers.update(headers or {})
    attrs.context_extensions["destination"] = "reviews.default"
    attrs.destination.address.socket_address.port_value = 9080
    return request


def test_check_input_reads_every_attribute() -> None:
    inp = check_input(_request(PEER, headers={"x-trace": "1"}), RESOLVER)
    assert (inp.method, inp.path, inp.host) == ("POST", "/reviews/1?x=1", "reviews:9080")
    assert (inp.principal, inp.source_ip) == (PEER, "10.1.2.3")
    assert inp.headers.get("x-trace") == "1"
    assert (inp.destination, inp.port) == ("reviews.default", 9080)


def test_the_destination_and_port_never_come_from_client_headers() -> None:
    # Envoy's gRPC check forwards the client's headers as written: a header naming
    # another service, or a Host naming another port, must not choose the policy.
    spoof = {"x-meshward-destination": "api.default", "x-meshward-destination-port": "1"}
    request = _request(host="reviews:8443", headers=spoof)
    inp = check_input(request, RESOLVER)
    assert (inp.destination, inp.port) == ("reviews.default", 9080)
    del request.attributes.context_extensions["destination"]
    request.attributes.ClearField("destination")
    inp = check_input(request, RESOLVER)
    assert (inp.destination, inp.port) == (None, None)


def test_without_a_context_extension_the_workload_identity_names_the_destination() -> None:
    workload = "spiffe://cluster.local/ns/default/sa/reviews"
    resolver = DestinationResolver(DestinationSettings(principals={workload: "reviews.default"}))
    request = _request(headers={"x-meshward-destination-principal": "spiffe://x/forged"})
    del request.attributes.context_extensions["destination"]
    request.attributes.destination.principal = workload
    assert check_input(request, resolver).destination == "reviews.default"


def test_check_input_host_falls_back_to_authority_then_host_header() -> None:
    both = {":authority": "a:1", "host": "b"}
    assert check_input(_request(host="", headers=both), RESOLVER).host == "a:1"
    assert check_input(_request(host="", headers={"host": "b"}), RESOLVER).host == "b"
    assert check_input(_request(host=""), RESOLVER).host is None


def test_without_an_address_or_a_valid_principal_nothing_is_made_up() -> None:
    inp = check_input(pb.CheckRequest(), RESOLVER)
    assert (inp.principal, inp.source_ip, inp.host) == (None, None, None)
    assert check_input(_request("CN=productpage"), RESOLVER).principal is None


def test_the_fallback_reads_headers_only_without_a_transport_identity() -> None:
    seen: list[str | None] = []

    def fallback(headers: object) -> str | None:
        seen.append(headers.get("x-forwarded-client-cert"))
        return "spiffe://cluster.local/ns/a/sa/b"

    xfcc = {"x-forwarded-client-cert": "By=x;URI=spiffe://cluster.local/ns/a/sa/b"}
    assert check_input(_request(PEER, headers=xfcc), RESOLVER, fallback).principal == PEER
    assert seen == []
    from_xfcc = check_input(_request(headers=xfcc), RESOLVER, fallback).principal
    assert from_xfcc == "spiffe://cluster.local/ns/a/sa/b"
    assert seen == [xfcc["x-forwarded-client-cert"]]


def test_an_invalid_transport_identity_is_never_replaced_by_a_header() -> None:
    # The peer presented a certificate without a valid SPIFFE ID: it is unauthenticated,
    # whatever XFCC the client wrote.
    def fallback(headers: object) -> str | None:
        return "spiffe://cluster.local/ns/a/sa/b"

    for principal in ("CN=x", "spiffe://Cluster.local/ns/a/sa/b", "spiffe://a/x,spiffe://b/y"):
        assert check_input(_request(principal), RESOLVER, fallback).principal is None


def test_methods_are_read_in_upper_case_as_the_policy_writes_them() -> None:
    request = _request()
    for method in ("delete", "Delete", "DELETE"):
        request.attributes.request.http.method = method
        assert check_input(request, RESOLVER).method == "DELETE"


def test_headers_sent_as_a_list_are_read_as_the_map() -> None:
    # With encode_raw_headers, Envoy fills header_map (values as raw bytes), not headers.
    request = _request(PEER)
    raw = request.attributes.request.http.header_map.headers
    raw.add(key="authorization", raw_value=b"Bearer t")
    raw.add(key="x-block", raw_value=b"yes")
    raw.add(key="x-block", raw_value=b"no")
    raw.add(key="x-old", value="text")
    headers = check_input(request, RESOLVER).headers
    assert dict(headers) == {"authorization": "Bearer t", "x-block": "yes,no", "x-old": "text"}
    request.attributes.request.http.headers["x-map"] = "1"  # the map, when Envoy sends it
    assert dict(check_input(request, RESOLVER).headers) == {"x-map": "1"}


def test_an_allow_sets_status_and_overwrites_upstream_headers() -> None:
    outcome = Outcome(
        True,
        200,
        "d-1",
        "allowed by rule r1",
        "r1",
        upstream_headers=(("x-meshward-principal", PEER),),
        remove_headers=("x-meshward-jwt-sub",),
    )
    response = check_response(outcome)
    assert response.HasField("status") and response.status.code == code_pb2.OK
    (option,) = response.ok_response.headers
    assert (option.header.key, option.header.value) == ("x-meshward-principal", PEER)
    assert option.append_action == OVERWRITE
    assert list(response.ok_response.headers_to_remove) == ["x-meshward-jwt-sub"]


@pytest.mark.parametrize(
    ("status", "code"), [(403, code_pb2.PERMISSION_DENIED), (401, code_pb2.UNAUTHENTICATED)]
)
def test_a_deny_carries_status_reason_headers_and_body(status: int, code: int) -> None:
    body = b'{"decision":"deny"}'
    reason = "denied: no rule allows"
    outcome = Outcome(False, status, "d-2", reason, "meshward:default", body=body)
    response = check_response(outcome)
    assert (response.status.code, response.status.message) == (code, reason)
    denied = response.denied_response
    assert denied.status.code == status and denied.body == body.decode()
    headers = [(h.header.key, h.header.value, h.append_action) for h in denied.headers]
    assert headers == [(k, v, OVERWRITE) for k, v in outcome.deny_headers]
    assert ("x-meshward-decision-id", "d-2") in outcome.deny_headers
