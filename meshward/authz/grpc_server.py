"""gRPC mode: the ``envoy.service.auth.v3.Authorization/Check`` server, from the xds-protos
stubs. Reading a CheckRequest and writing the CheckResponse (status always set) is
:mod:`.grpc_messages`; here are the servicer, which turns any failure into a deny, and the
grpcio server around it.
"""

from __future__ import annotations

import logging
from concurrent import futures

import grpc
from envoy.service.auth.v3 import external_auth_pb2 as pb
from envoy.service.auth.v3 import external_auth_pb2_grpc as pb_grpc
from envoy.type.v3.http_status_pb2 import HttpStatus
from google.rpc import code_pb2, status_pb2

from .core import Authorizer
from .grpc_messages import answer
from .identity import IdentityReader, identity_reader
from .settings import IdentitySettings

log = logging.getLogger("meshward.authz.grpc")

# grpcio binds with SO_REUSEPORT by default: a stale server on the port would silently
# share the traffic. One server per port, always.
SERVER_OPTIONS = (("grpc.so_reuseport", 0),)


def xfcc_fallback(settings: IdentitySettings) -> IdentityReader | None:
    """The identity reader used when ``source.principal`` is empty: XFCC only. Header
    mode is HTTP-only, since gRPC mode has no way to make Envoy overwrite the header."""
    return identity_reader(settings) if settings.mode == "xfcc" else None


class AuthorizationService(pb_grpc.AuthorizationServicer):  # type: ignore[misc]  # untyped stubs
    """The servicer; :meth:`Authorizer.check` never raises, and a failure to even read the
    request is a deny as well."""

    def __init__(self, authorizer: Authorizer) -> None:
        self._authorizer = authorizer
        self._fallback = xfcc_fallback(authorizer.settings.identity)
        self._failsafe = pb.CheckResponse(
            status=status_pb2.Status(code=code_pb2.PERMISSION_DENIED, message="internal error"),
            denied_response=pb.DeniedHttpResponse(
                status=HttpStatus(code=authorizer.settings.default_deny_status),
                body='{"decision":"deny","reason":"denied: internal error"}',
            ),
        )

    def Check(self, request: pb.CheckRequest, context: grpc.ServicerContext) -> pb.CheckResponse:
        try:
            return answer(self._authorizer, request, self._fallback)
        except Exception:
            log.exception("internal error in the gRPC check path")
            return self._failsafe


def build_grpc_server(
    authorizer: Authorizer, host: str, port: int, workers: int
) -> tuple[grpc.Server, int]:
    """A sync gRPC server, bound but not started, and its port (``port`` 0 lets the kernel
    choose); raises if the port cannot be bound."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="authz-grpc"),
        options=SERVER_OPTIONS,
    )
    pb_grpc.add_AuthorizationServicer_to_server(AuthorizationService(authorizer), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind the gRPC port {host}:{port}")
    return server, bound
