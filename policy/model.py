"""The checked model: a policy set after names are resolved and every value validated.

This is what the compiler, the reference interpreter, the bundle and the tooling work
from. It holds no syntax, only meaning, plus the span each rule came from.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Literal

from .diagnostics import Span
from .nodes import dotted_name
from .paths import PathPattern
from .request import canonical_ip, canonical_network, host_name

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Effect = Literal["allow", "deny"]


# --- attributes ----------------------------------------------------------------------

AttrType = Literal["string", "number", "bool", "list", "ip", "any"]

# Attributes a condition may name, with their types. `jwt.*` claims are dynamic ("any")
# except the registered claims whose types RFC 7519 fixes.
FIXED_ATTRIBUTES: dict[tuple[str, ...], AttrType] = {
    ("source", "principal"): "string",
    ("source", "namespace"): "string",
    ("source", "service_account"): "string",
    ("source", "trust_domain"): "string",
    ("source", "ip"): "ip",
    ("request", "method"): "string",
    ("request", "path"): "string",
    ("request", "host"): "string",
    ("destination", "service"): "string",
    ("destination", "port"): "number",
    ("connection", "sni"): "string",
}
REGISTERED_CLAIMS: dict[str, AttrType] = {
    "iss": "string",
    "sub": "string",
    "exp": "number",
    "nbf": "number",
    "iat": "number",
    "jti": "string",
}


def attribute_type(parts: tuple[str, ...]) -> AttrType | None:
    """The type the language gives an attribute (header names lower-case); None for an
    attribute it does not know."""
    if len(parts) >= 2 and parts[0] == "jwt":
        return REGISTERED_CLAIMS.get(parts[1], "any") if len(parts) == 2 else "any"
    if len(parts) == 3 and parts[:2] == ("request", "headers"):
        return "string" if parts[2] == parts[2].lower() else None
    return FIXED_ATTRIBUTES.get(parts)


@dataclass(frozen=True, slots=True)
class AttributeRef:
    """A resolved attribute: ``root`` is source/request/jwt/destination/connection."""

    parts: tuple[str, ...]
    type: AttrType

    @property
    def dotted(self) -> str:
        return dotted_name(self.parts)


def operand_mismatch(op: str, attr: AttributeRef, value: Value) -> str | None:
    """Why ``attr op value`` is a type error, or None when the types fit (the networks of
    a `within` list are checked apart)."""
    if op in ("==", "!="):
        if isinstance(value, tuple):
            return f"`{op}` compares one value; use `in [...]` for a list"
        if not _compatible(attr.type, value):
            return f"{attr.dotted} is a {attr.type}, compared with a {kind_of(value)}"
    elif op == "in":
        if not isinstance(value, tuple):
            return '`in` takes a list: in ["a", "b"]'
        if not value:
            return "`in []` can never match"
        if bad := [v for v in value if not _compatible(attr.type, v)]:
            return f"{attr.dotted} is a {attr.type}; the list holds a {kind_of(bad[0])}"
    elif op == "contains":
        if attr.type not in ("any", "list"):
            return (
                f"{attr.dotted} is a {attr.type}; `contains` works on list claims "
                "(and space-separated claims such as scope)"
            )
        if isinstance(value, tuple):
            return "`contains` takes one value"
    elif op == "matches":
        if attr.type not in ("string", "any"):
            return f"{attr.dotted} is a {attr.type}; `matches` takes a string"
    elif op == "within":
        if attr.type not in ("ip", "any"):
            return f"{attr.dotted} is a {attr.type}; `within` takes an IP address"
        if not isinstance(value, tuple) or not value:
            return '`within` takes a list of networks: within ["10.0.0.0/8"]'
    return None


def _compatible(attr_type: AttrType, value: Value) -> bool:
    if attr_type == "any":
        return not isinstance(value, tuple)
    if attr_type in ("string", "ip"):
        return isinstance(value, str)
    if attr_type == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if attr_type == "bool":
        return isinstance(value, bool)
    return False


# --- conditions ----------------------------------------------------------------------

Value = str | int | float | bool | tuple["Value", ...]


def canonical_operand(op: str, attribute: AttributeRef, value: Value) -> Value:
    """A comparison's constant in the spelling the request's value is compared in: an
    address as :func:`canonical_ip` writes it, a network as :func:`canonical_network`
    does, a host lower-case without port or trailing dot. The checker and the bundle
    loader both apply it, so a bundle written before a spelling changed still decides as
    its source does today."""
    if op == "within":
        return _map_strings(value, canonical_network)
    if op not in ("==", "!=", "in"):
        return value
    if attribute.type == "ip":
        return _map_strings(value, canonical_ip)
    if attribute.parts == ("request", "host"):
        return _map_strings(value, lambda h: host_name(h) or h)
    return value


def _map_strings(value: Value, f: Callable[[str], str]) -> Value:
    if isinstance(value, tuple):
        return tuple(_map_strings(v, f) for v in value)
    return f(value) if isinstance(value, str) else value


def kind_of(value: object) -> str:
    """A value's kind as conditions compare them (every number is one kind)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, tuple | list) else type(value).__name__


@dataclass(frozen=True, slots=True)
class Cmp:
    """``attr op operand``; op is ==, !=, in, contains, matches (glob), within (CIDRs)."""

    op: Literal["==", "!=", "in", "contains", "matches", "within"]
    attribute: AttributeRef
    operand: Value


@dataclass(frozen=True, slots=True)
class HasAttr:
    attribute: AttributeRef


@dataclass(frozen=True, slots=True)
class NotCond:
    operand: Cond


@dataclass(frozen=True, slots=True)
class AllOf:
    operands: tuple[Cond, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    operands: tuple[Cond, ...]


Cond = Cmp | HasAttr | NotCond | AllOf | AnyOf
Test = Cmp | HasAttr  # a condition's leaves


def tests_of(cond: Cond) -> Iterator[Test]:
    """A condition's comparisons and `has` tests, left to right."""
    if isinstance(cond, AllOf | AnyOf):
        for operand in cond.operands:
            yield from tests_of(operand)
    elif isinstance(cond, NotCond):
        yield from tests_of(cond.operand)
    else:
        yield cond


# --- sources -------------------------------------------------------------------------

SourceKind = Literal[
    "any", "authenticated", "unauthenticated", "id", "namespace", "trust_domain", "cidr"
]


@dataclass(frozen=True, slots=True)
class Source:
    """One way a caller can match. ``id`` is a full SPIFFE ID; ``namespace`` is
    ``trust_domain/namespace``; ``cidr`` is a network in canonical text."""

    kind: SourceKind
    value: str = ""

    def describe(self) -> str:
        if self.kind in ("any", "authenticated", "unauthenticated"):
            return self.kind
        if self.kind == "namespace":
            td, ns = self.value.split("/", 1)
            return f'namespace "{ns}" (trust domain {td})'
        if self.kind == "cidr":
            return f'ip "{self.value}"'
        if self.kind == "trust_domain":
            return f'trust_domain "{self.value}"'
        return f'"{self.value}"'


# --- rules and services --------------------------------------------------------------


# What the checker admits (and a bundle must hold): methods as the grammar spells them,
# hosts lower-case without a port, optionally `*.` and a suffix.
METHOD_PATTERN = re.compile(r"[A-Z][A-Z_-]*")
SERVICE_NAME_PATTERN = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?")  # the grammar's
NAMESPACE_PATTERN = re.compile(r"[A-Za-z0-9._-]+")  # in `namespace` and `sa` sources
HOST_PATTERN = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


@dataclass(frozen=True, slots=True)
class HostPattern:
    """An exact host, or ``*.suffix``; always lower-case, never with a port."""

    text: str

    def matches(self, host: str) -> bool:
        if self.text.startswith("*."):
            return host.endswith(self.text[1:]) and len(host) > len(self.text) - 1
        return host == self.text


@dataclass(frozen=True, slots=True)
class Rule:
    rule_id: str
    effect: Effect
    audit: bool  # dry-run: evaluated and reported, never decides
    methods: frozenset[str] | None  # None: any method
    paths: tuple[PathPattern, ...] | None  # None: any path
    hosts: tuple[HostPattern, ...] | None
    ports: frozenset[int] | None
    sources: tuple[Source, ...]
    when: Cond | None
    unless: Cond | None
    span: Span
    explicit_id: bool = True

    def tests(self) -> Iterator[Test]:
        """Every comparison and `has` test of the rule's `when` and `unless`."""
        for cond in (self.when, self.unless):
            if cond is not None:
                yield from tests_of(cond)


@dataclass(frozen=True, slots=True)
class ServiceKey:
    """A destination: a service name and optionally one port (None: every port)."""

    name: str
    port: int | None

    def __str__(self) -> str:
        return self.name if self.port is None else f"{self.name}:{self.port}"


def derived_rule_id(path: str, key: ServiceKey, index: int) -> str:
    """The id of a rule written without ``@id``: its file's name, its destination and its
    position among that destination's rules in the file (from 1), as in
    ``bookinfo.policy:reviews.default:2`` or ``api.policy:api:8443:1``. The folder is left
    out, so the id does not depend on where the checker runs; it changes when rules
    move, which is why ``meshward lint`` asks for an ``@id``."""
    return f"{PurePath(path).name}:{key}:{index}"


@dataclass(frozen=True, slots=True)
class ServicePolicy:
    """All rules of one destination key, merged across blocks and files."""

    key: ServiceKey
    rules: tuple[Rule, ...]
    default: Effect = "deny"
    spans: tuple[Span, ...] = field(default=(), compare=False)  # where it was written


@dataclass(frozen=True, slots=True)
class PolicySet:
    """A checked policy set: every service policy, keyed by destination."""

    services: dict[ServiceKey, ServicePolicy] = field(default_factory=dict)
    trust_domains: frozenset[str] = frozenset()

    def rules(self) -> list[Rule]:
        return [r for s in self.services.values() for r in s.rules]

    def request_headers(self) -> tuple[str, ...]:
        """The request headers the rules read (lower-case, sorted): what a proxy must
        send along with each check for those rules to see them."""
        return tuple(
            sorted(
                {
                    test.attribute.parts[2].lower()
                    for rule in self.rules()
                    for test in rule.tests()
                    if test.attribute.parts[:2] == ("request", "headers")
                }
            )
        )

    def needs_port(self, name: str) -> bool:
        """Whether ``name`` has a deny rule that holds on some ports only (in a block
        bound to a port, or with a `port` clause). A request to it whose port is unknown
        cannot be decided: it is denied, not let past those rules."""
        return any(
            _port_bound_deny(key, service)
            for key, service in self.services.items()
            if key.name == name
        )

    def names_needing_port(self) -> frozenset[str]:
        """Every name :meth:`needs_port` holds for, in one pass over the services."""
        return frozenset(
            key.name for key, service in self.services.items() if _port_bound_deny(key, service)
        )

    def policies_for(self, name: str, port: int | None) -> list[ServicePolicy]:
        """The service policies that apply to a request to ``name`` on ``port``."""
        out = []
        if (any_port := self.services.get(ServiceKey(name, None))) is not None:
            out.append(any_port)
        if port is not None and (on_port := self.services.get(ServiceKey(name, port))):
            out.append(on_port)
        return out


def _port_bound_deny(key: ServiceKey, service: ServicePolicy) -> bool:
    """Whether a block holds a deny rule that holds on some ports only."""
    bound = key.port is not None
    return any(
        rule.effect == "deny" and not rule.audit and (bound or rule.ports is not None)
        for rule in service.rules
    )
