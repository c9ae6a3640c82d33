"""Which service a request is for: the name the policy's ``service`` blocks use."""

from __future__ import annotations

from collections.abc import Mapping

from meshward.policy.request import host_name

from .settings import DestinationSettings


class DestinationResolver:
    """Resolve, in order: the configured header (Envoy adds it per listener), the gRPC
    ``context_extensions`` entry, then the Host (without port) through the host map.
    None means unknown, which the caller denies."""

    __slots__ = ("_extension", "_header", "_hosts")

    def __init__(self, settings: DestinationSettings) -> None:
        self._header = settings.header
        self._extension = settings.context_extension
        self._hosts = settings.hosts

    def resolve(
        self,
        headers: Mapping[str, str],
        host: str | None,
        context_extensions: Mapping[str, str] | None = None,
    ) -> str | None:
        if self._header is not None:
            value = headers.get(self._header)
            if value:
                return value
        if context_extensions:
            value = context_extensions.get(self._extension)
            if value:
                return value
        name = host_name(host)
        return self._hosts.get(name) if name else None


def host_port(host: str | None) -> int | None:
    """The port written in a Host / :authority value, if any."""
    if not host:
        return None
    tail = host.rsplit("]", 1)[-1] if host.startswith("[") else host
    if tail.count(":") != 1:
        return None
    digits = tail.rsplit(":", 1)[1]
    # ASCII digits only: str.isdigit also accepts characters int() refuses, such as '²'.
    if not (digits.isascii() and digits.isdigit()):
        return None
    port = int(digits)
    return port if port <= 65535 else None
