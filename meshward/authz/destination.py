"""Which service a request is for, and on which port: the ``service name:port`` its
policy is written for.

Each transport learns the destination from a channel the client cannot write to: in HTTP
mode a header Envoy sets on the check request (``headers_to_add`` replaces any copy the
client sent), in gRPC mode a ``context_extensions`` entry of the route. Where neither
can be configured per workload (Istio's mesh-wide providers), the workload's own SPIFFE
ID, which Envoy reports from the certificate it serves, is mapped to a service name.
Only when all of that is missing is the Host, which the client chose, mapped. The port is
the one the request arrived on, as Envoy reports it, never the one written in the Host: a
client would otherwise pick which port's rules apply.
"""

from __future__ import annotations

from collections.abc import Mapping

from meshward.policy.request import host_name

from .settings import DestinationSettings


class DestinationResolver:
    """The transport-facing half of :class:`DestinationSettings`."""

    __slots__ = (
        "_extension",
        "_header",
        "_hosts",
        "_port_header",
        "_principal_header",
        "_principals",
    )

    def __init__(self, settings: DestinationSettings) -> None:
        self._header = settings.header
        self._port_header = settings.port_header
        self._principal_header = settings.principal_header
        self._extension = settings.context_extension
        self._principals = settings.principals
        self._hosts = settings.hosts

    def from_headers(self, headers: Mapping[str, str]) -> str | None:
        """HTTP mode: the destination header Envoy adds, else the workload identity
        header (``%DOWNSTREAM_LOCAL_URI_SAN%``) through the principal map."""
        if self._header is not None:
            named = headers.get(self._header)
            if named:
                return named
        if self._principal_header is None or not self._principals:
            return None
        return self.by_principal(headers.get(self._principal_header))

    def from_grpc(self, context_extensions: Mapping[str, str], principal: str) -> str | None:
        """gRPC mode: the route's context extension, else the CheckRequest's destination
        principal through the principal map (client headers are never read here: Envoy's
        gRPC check forwards them as the client wrote them)."""
        return context_extensions.get(self._extension) or self.by_principal(principal)

    def by_principal(self, principal: str | None) -> str | None:
        """The service a workload identity is mapped to; None when unknown."""
        return self._principals.get(principal) if principal else None

    def port_from_headers(self, headers: Mapping[str, str], host: str | None) -> int | None:
        """HTTP mode: the port header Envoy adds; the Host's port only when no port
        header is configured (where the Host cannot be chosen freely)."""
        if self._port_header is None:
            return host_port(host)
        return _port(headers.get(self._port_header))

    def by_host(self, host: str | None) -> str | None:
        """The service the Host (without its port) is mapped to; None when unknown."""
        name = host_name(host)
        return self._hosts.get(name) if name else None


def host_port(host: str | None) -> int | None:
    """The port written in a Host / :authority value, if any."""
    if not host:
        return None
    tail = host.rsplit("]", 1)[-1] if host.startswith("[") else host
    if tail.count(":") != 1:
        return None
    return _port(tail.rsplit(":", 1)[1])


def _port(digits: str | None) -> int | None:
    # ASCII digits only: str.isdigit also accepts characters int() refuses, such as '²'.
    if not digits or not (digits.isascii() and digits.isdigit()) or len(digits) > 5:
        return None
    port = int(digits)
    return port if 0 < port <= 65535 else None
