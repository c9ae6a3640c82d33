"""gRPC mode's messages: a CheckRequest read as the transport-neutral :class:`CheckInput`,
and an :class:`Outcome` written as a CheckResponse. Runs on every call, so it is compiled
with the rest of the check path (the server around it stays interpreted: grpcio's
servicer base class cannot be compiled).

The caller's identity is ``source.principal`` (Envoy fills it from the TLS handshake) or,
with identity mode ``xfcc``, the XFCC element Envoy wrote (for a proxy behind a
TLS-terminating Envoy); the destination comes from ``context_extensions`` (else the
destination principal or the Host, through their maps) and the port from the destination
address (see :mod:`.destination`). Every CheckResponse sets ``status`` explicitly: an
unset status reads as OK, which Envoy takes as an allow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from envoy.config.core.v3.base_pb2 import HeaderValueOption
from envoy.service.auth.v3 import external_auth_pb2 as pb
from google.rpc import code_pb2, status_pb2

from .core import Authorizer, CheckInput, Outcome
from .destination import DestinationResolver
from .identity import IdentityReader, trusted_principal

_OVERWRITE = HeaderValueOption.HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD
_OK = status_pb2.Status(code=code_pb2.OK)


def answer(authorizer: Authorizer, request: Any, fallback: IdentityReader | None) -> Any:
    """The CheckResponse for a CheckRequest. :meth:`Authorizer.check` never raises, but
    reading the request or writing the response may: the servicer denies then."""
    inp = check_input(request, authorizer.destinations, fallback)
    return check_response(authorizer.check(inp, "grpc"))


def check_input(
    request: Any, destinations: DestinationResolver, fallback: IdentityReader | None = None
) -> CheckInput:
    """The transport-neutral question of a CheckRequest. The destination comes from the
    route's context extensions or the workload's identity, and the port from the address
    the request arrived on, never from the client's headers."""
    attrs = request.attributes
    http = attrs.request.http
    headers = http.headers  # a read-only view; Envoy sends lower-case names
    if not headers and http.HasField("header_map"):
        headers = raw_headers(http.header_map)
    source = attrs.source
    address = source.address.socket_address.address if source.HasField("address") else ""
    principal = trusted_principal(source.principal)
    # XFCC only where the peer presented no certificate: an invalid one makes the caller
    # unauthenticated, whatever a header says.
    if not source.principal and fallback is not None:
        principal = fallback(headers)
    local = attrs.destination
    port = local.address.socket_address.port_value if local.HasField("address") else 0
    return CheckInput(
        # Methods are tokens the policy writes in upper case; Envoy passes HTTP/2's
        # :method as the client wrote it, and many applications read `delete` as DELETE.
        http.method.upper(),
        http.path,
        http.host or headers.get(":authority") or headers.get("host"),
        headers,
        principal,
        address or None,
        destinations.from_grpc(attrs.context_extensions, local.principal),
        port or None,
    )


def raw_headers(header_map: Any) -> dict[str, str]:
    """The headers Envoy sends as a list instead of a map (``encode_raw_headers``), in the
    map's form: values as text, a repeated header joined with commas as Envoy joins it."""
    out: dict[str, str] = {}
    for header in header_map.headers:
        raw: bytes = header.raw_value
        value = raw.decode("latin-1") if raw else header.value
        key = header.key.lower()
        out[key] = out[key] + "," + value if key in out else value
    return out


def check_response(outcome: Outcome) -> Any:
    """The CheckResponse for an outcome, status always set."""
    # Filled in place: about half the cost of building nested messages from keywords.
    if outcome.allowed:
        response = pb.CheckResponse(status=_OK)
        ok = response.ok_response
        _add_headers(ok.headers, outcome.upstream_headers)
        ok.headers_to_remove.extend(outcome.remove_headers)
        return response
    code = code_pb2.UNAUTHENTICATED if outcome.status == 401 else code_pb2.PERMISSION_DENIED
    response = pb.CheckResponse(status=status_pb2.Status(code=code, message=outcome.reason))
    denied = response.denied_response
    denied.status.code = outcome.status
    _add_headers(denied.headers, outcome.deny_headers)
    denied.body = outcome.body.decode()
    return response


def _add_headers(target: Any, headers: Sequence[tuple[str, str]]) -> None:
    for key, value in headers:
        option = target.add(append_action=_OVERWRITE)
        option.header.key = key
        option.header.value = value
