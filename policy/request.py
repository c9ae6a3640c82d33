"""The canonical request the evaluator decides on, independent of any transport.

Transport adapters (HTTP or gRPC ext_authz, the CLI) build a :class:`Request`; the
identity and JWT claims in it must already be verified by the adapter.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

_EMPTY: Mapping[str, str] = MappingProxyType({})


class RequestError(ValueError):
    """A request document that does not have the documented shape."""


class Request(NamedTuple):
    """One authorization question: may this caller make this call to this destination?

    ``principal`` is the caller's SPIFFE ID (None: no mTLS identity); ``jwt`` holds
    claims of a token that was verified (None: no verified token); ``path`` is raw, as
    received, and is canonicalised by the evaluator; header names are lower-case.
    A named tuple: adapters build one per request, and that must cost next to nothing.
    """

    destination: str
    method: str
    path: str
    port: int | None = None
    host: str | None = None
    headers: Mapping[str, str] = _EMPTY
    principal: str | None = None
    source_ip: str | None = None
    jwt: Mapping[str, Any] | None = None
    sni: str | None = None

    @property
    def host_name(self) -> str | None:
        """The host without a port, lower-case (``Reviews:9080`` is ``reviews``)."""
        return host_name(self.host)

    @classmethod
    def from_json(cls, doc: Any) -> Request:
        """Build from the documented JSON shape (see README); raises RequestError."""
        if not isinstance(doc, dict):
            raise RequestError("a request is a JSON object")
        for key in ("destination", "method", "path"):
            if not isinstance(doc.get(key), str):
                raise RequestError(f"request field {key!r} is required and must be a string")
        source = doc.get("source") or {}
        headers = doc.get("headers") or {}
        if not isinstance(source, dict) or not isinstance(headers, dict):
            raise RequestError("`source` and `headers` are JSON objects")
        port = doc.get("port")
        if port is not None and (not isinstance(port, int) or isinstance(port, bool)):
            raise RequestError("`port` is an integer")
        jwt = doc.get("jwt")
        if jwt is not None and not isinstance(jwt, dict):
            raise RequestError("`jwt` is an object of verified claims")
        return cls(
            destination=doc["destination"],
            method=doc["method"].upper(),
            path=doc["path"],
            port=port,
            host=doc.get("host"),
            headers={str(k).lower(): str(v) for k, v in headers.items()},
            principal=source.get("principal"),
            source_ip=source.get("ip"),
            jwt=jwt,
            sni=doc.get("sni"),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "destination": self.destination,
            "method": self.method,
            "path": self.path,
        }
        if self.port is not None:
            out["port"] = self.port
        if self.host is not None:
            out["host"] = self.host
        if self.headers:
            out["headers"] = dict(self.headers)
        source = {"principal": self.principal, "ip": self.source_ip}
        if any(source.values()):
            out["source"] = {k: v for k, v in source.items() if v is not None}
        if self.jwt is not None:
            out["jwt"] = dict(self.jwt)
        if self.sni is not None:
            out["sni"] = self.sni
        return out


def host_name(host: str | None) -> str | None:
    """A Host / :authority value without its port, lower-case."""
    if host is None:
        return None
    host = host.lower()
    if host.startswith("["):  # [v6]:port
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
