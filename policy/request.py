"""The canonical request the evaluator decides on, independent of any transport.

Transport adapters (HTTP or gRPC ext_authz, the CLI) build a :class:`Request`; the
identity and JWT claims in it must already be verified by the adapter.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

_EMPTY: Mapping[str, str] = MappingProxyType({})


class RequestError(ValueError):
    """A request document that does not have the documented shape."""


# Request's fields, in the constructor's order.
_FIELDS: Final = (
    "destination",
    "method",
    "path",
    "port",
    "host",
    "headers",
    "principal",
    "source_ip",
    "jwt",
    "sni",
)


class Request:
    """One authorization question: may this caller make this call to this destination?

    ``principal`` is the caller's SPIFFE ID (None: no mTLS identity); ``jwt`` holds
    claims of a token that was verified (None: no verified token); ``path`` is raw, as
    received, and is canonicalised by the evaluator; header names are lower-case.
    A value: two are equal when every field is. Its fields can be assigned, but nothing
    should: adapters build a new one per request.
    """

    # A plain class: adapters build one per request. Compiled, its __init__ and its
    # attribute reads in the evaluator are native code, where a NamedTuple's __new__
    # stays interpreted and costs as much as a fifth of a whole decision.
    __slots__ = _FIELDS

    def __init__(
        self,
        destination: str,
        method: str,
        path: str,
        port: int | None = None,
        host: str | None = None,
        headers: Mapping[str, str] = _EMPTY,
        principal: str | None = None,
        source_ip: str | None = None,
        jwt: Mapping[str, Any] | None = None,
        sni: str | None = None,
    ) -> None:
        self.destination = destination
        self.method = method
        self.path = path
        self.port = port
        self.host = host
        self.headers = headers
        self.principal = principal
        self.source_ip = source_ip
        self.jwt = jwt
        self.sni = sni

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in _FIELDS)

    def __reduce__(self) -> tuple[type[Request], tuple[Any, ...]]:
        # Compiled, the default pickling protocol would call __init__ without arguments.
        # Headers go as a dict: the shared empty default is a mappingproxy, which does
        # not pickle (and compares equal to an empty dict).
        return (
            Request,
            (
                self.destination,
                self.method,
                self.path,
                self.port,
                self.host,
                dict(self.headers),
                self.principal,
                self.source_ip,
                self.jwt,
                self.sni,
            ),
        )

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in _FIELDS)
        return f"Request({fields})"

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
        # Absent or null is empty; any other non-object (even `[]`) is a mistake.
        source = {} if doc.get("source") is None else doc["source"]
        headers = {} if doc.get("headers") is None else doc["headers"]
        if not isinstance(source, dict) or not isinstance(headers, dict):
            raise RequestError("`source` and `headers` are JSON objects")
        port = doc.get("port")
        if port is not None and (not isinstance(port, int) or isinstance(port, bool)):
            raise RequestError("`port` is an integer")
        jwt = doc.get("jwt")
        if jwt is not None and not isinstance(jwt, dict):
            raise RequestError("`jwt` is an object of verified claims")
        for name, value in (
            ("host", doc.get("host")),
            ("sni", doc.get("sni")),
            ("source.principal", source.get("principal")),
            ("source.ip", source.get("ip")),
        ):
            if value is not None and not isinstance(value, str):
                raise RequestError(f"`{name}` is a string")
        for header, text in headers.items():
            # A YAML test file can make a name a bool (`on:`) or a number; null is not
            # "None" and 1 is not "1". (Names of their own: compiled, the loop above
            # typed `name` as str.)
            if not isinstance(header, str) or not isinstance(text, str):
                raise RequestError(f"headers are strings: {header!r}: {text!r}")
        return cls(
            destination=doc["destination"],
            method=doc["method"].upper(),
            path=doc["path"],
            port=port,
            host=doc.get("host"),
            headers={k.lower(): v for k, v in headers.items()},
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
    """A Host / :authority value without its port, lower-case, and without the trailing
    dot of a fully qualified name (``admin.local.`` is ``admin.local``: one host, one
    name, or a rule on the name would miss requests written the other way)."""
    if host is None:
        return None
    host = host.lower()
    if host.startswith("["):  # [v6]:port
        return host.split("]", 1)[0] + "]"
    if host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    return host[:-1] if host.endswith(".") and len(host) > 1 else host


def canonical_ip(text: str) -> str:
    """An address in one spelling (IPv4-mapped as IPv4, IPv6 compressed and lower-case),
    so that `source.ip == "10.0.0.5"` holds however the address was written; text that is
    not an address is returned as it is."""
    try:
        return str(source_address(text))
    except ValueError:
        return text


def canonical_network(text: str) -> str:
    """A network in the spelling rules match it in: an IPv4-mapped IPv6 network
    (``::ffff:10.0.0.0/104``) is its IPv4 network, as a mapped address is its IPv4
    address (:func:`source_address`); written as IPv6 it would never match. Raises
    ValueError for text that is not a network (host bits set included)."""
    network = ipaddress.ip_network(text, strict=True)
    mapped = network.network_address.ipv4_mapped if network.version == 6 else None
    if mapped is not None and network.prefixlen >= 96:
        return str(ipaddress.IPv4Network((mapped, network.prefixlen - 96)))
    return str(network)


def source_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """A source IP as rules match it; raises ValueError when ``text`` is not an address.
    An IPv4-mapped IPv6 address (``::ffff:10.1.2.3``, as dual-stack listeners report IPv4
    peers) is its IPv4 address, so that it meets IPv4 networks."""
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
