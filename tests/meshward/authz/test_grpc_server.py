"""gRPC mode against a real grpcio server on loopback, with the xds-protos stubs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import grpc
import pytest
from envoy.config.core.v3.address_pb2 import Address, SocketAddress
from envoy.service.auth.v3 import attribute_context_pb2 as ac
from envoy.service.auth.v3 import external_auth_pb2 as pb
from envoy.service.auth.v3 import external_auth_pb2_grpc as pb_grpc
from google.rpc import code_pb2

from meshward.authz import core, grpc_server
from meshward.authz.grpc_server import build_grpc_server

MakeAuthorizer = Callable[..., core.Authorizer]
PRODUCTPAGE = "spiffe://cluster.local/ns/default/sa/productpage"


@pytest.fixture
def stub(make_authorizer: MakeAuthorizer) -> Iterator[pb_grpc.AuthorizationStub]:
    authorizer = make_authorizer(destination={"header": None})
    server, port = build_grpc_server(authorizer, "127.0.0.1", 0, 2)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield pb_grpc.AuthorizationStub(channel)
    finally:
        channel.close()
        server.stop(grace=None)


def _request(
    path: str,
    method: str = "GET",
    principal: str = "",
    destination: str = "reviews.default",
    headers: dict[str, str] | None = None,
) -> pb.CheckRequest:
    source = ac.AttributeContext.Peer(
        principal=principal,
        address=Address(socket_address=SocketAddress(address="10.1.2.3", port_value=5555)),
    )
    http = ac.AttributeContext.HttpRequest(
        method=method, path=path, host="reviews:9080", headers=headers or {}
    )
    attrs = ac.AttributeContext(
        source=source,
        request=ac.AttributeContext.Request(http=http),
        context_extensions={"destination": destination},
    )
    return pb.CheckRequest(attributes=attrs)


def _check_once(authorizer: core.Authorizer, request: pb.CheckRequest) -> pb.CheckResponse:
    """One Check through a server of its own (for authorizers a test configures)."""
    server, port = build_grpc_server(authorizer, "127.0.0.1", 0, 1)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            return pb_grpc.AuthorizationStub(channel).Check(request, timeout=5)
    finally:
        server.stop(grace=None)


def test_allow_sets_status_explicitly_and_upstream_headers(
    stub: pb_grpc.AuthorizationStub,
) -> None:
    response = stub.Check(_request("/reviews/1", principal=PRODUCTPAGE), timeout=5)
    assert response.HasField("status") and response.status.code == code_pb2.OK
    assert response.HasField("ok_response")
    headers = {h.header.key: h.header.value for h in response.ok_response.headers}
    assert headers["x-meshward-principal"] == PRODUCTPAGE


def test_anonymous_allow_removes_identity_header(stub: pb_grpc.AuthorizationStub) -> None:
    response = stub.Check(_request("/public/x"), timeout=5)
    assert response.status.code == code_pb2.OK
    assert list(response.ok_response.headers_to_remove) == ["x-meshward-principal"]


def test_deny_carries_status_body_and_headers(stub: pb_grpc.AuthorizationStub) -> None:
    response = stub.Check(_request("/admin/x", principal=PRODUCTPAGE), timeout=5)
    assert response.status.code == code_pb2.PERMISSION_DENIED
    denied = response.denied_response
    assert denied.status.code == 403
    headers = {h.header.key: h.header.value for h in denied.headers}
    body = json.loads(denied.body)
    assert headers["x-meshward-rule"] == body["rule"] == "admin-only-ops"
    assert headers["x-meshward-decision-id"] == body["decision_id"]


def test_invalid_principal_is_unauthenticated(stub: pb_grpc.AuthorizationStub) -> None:
    response = stub.Check(_request("/reviews/1", principal="CN=productpage"), timeout=5)
    assert response.status.code == code_pb2.PERMISSION_DENIED


def test_unknown_destination_and_empty_request_deny(stub: pb_grpc.AuthorizationStub) -> None:
    unknown = stub.Check(_request("/public/x", destination=""), timeout=5)
    assert unknown.status.code == code_pb2.PERMISSION_DENIED
    empty = stub.Check(pb.CheckRequest(), timeout=5)
    assert empty.status.code == code_pb2.PERMISSION_DENIED


def test_required_jwt_is_unauthenticated(make_authorizer: MakeAuthorizer) -> None:
    authorizer = make_authorizer(services={"reviews.default": {"require_jwt": True}}, jwt=True)
    response = _check_once(authorizer, _request("/public/x"))
    assert response.status.code == code_pb2.UNAUTHENTICATED
    assert response.denied_response.status.code == 401


def test_xfcc_is_the_fallback_identity_only_in_xfcc_mode(make_authorizer: MakeAuthorizer) -> None:
    xfcc = {"x-forwarded-client-cert": f"URI={PRODUCTPAGE}"}
    peer = {"x-meshward-peer-uri-san": PRODUCTPAGE}
    for mode, headers, expected in (
        ("xfcc", xfcc, code_pb2.OK),
        ("none", xfcc, code_pb2.PERMISSION_DENIED),
        ("header", peer, code_pb2.PERMISSION_DENIED),  # header mode is HTTP only
    ):
        authorizer = make_authorizer(destination={"header": None}, identity={"mode": mode})
        response = _check_once(authorizer, _request("/reviews/1", headers=headers))
        assert response.status.code == expected, mode


def test_a_check_that_fails_is_the_failsafe_deny(
    make_authorizer: MakeAuthorizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("broken")

    monkeypatch.setattr(grpc_server, "answer", broken)
    authorizer = make_authorizer(destination={"header": None})
    response = _check_once(authorizer, _request("/reviews/1"))
    assert response.status.code == code_pb2.PERMISSION_DENIED
    assert response.denied_response.status.code == authorizer.settings.default_deny_status
    assert json.loads(response.denied_response.body)["reason"] == "denied: internal error"
