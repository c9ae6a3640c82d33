"""Representative requests: a finite set of requests meeting every cell of the request
space that a set of rules tells apart.

Every rule part is an *atom* on one attribute of a request: the caller's identity (and
source IP), the method, the canonical path, the host, the port, and each attribute a
condition reads (headers, JWT claims, SNI). Two requests that agree on every atom are
matched by exactly the same rules, so they decide the same. For each attribute this
module picks one value per distinguishable class — every constant the rules mention,
the boundaries of every network, one instance of every path the decision table's path
trie tells apart, a fresh value that matches nothing, the value being absent, a value
of the wrong type — and a request space is the product of those choices.

``diff`` evaluates these requests under two policy versions to find every kind of
request whose decision flips; ``lint`` evaluates a rule's conditions over them to prove
that a rule can never match. Atoms are exact for everything the decision tables index;
``matches`` globs in conditions are represented by one matching and one non-matching
value each, which is exact unless two globs on one attribute overlap partially.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import model
from .compiler import build_table
from .identity import SpiffeIdError, parse_spiffe_id, peer_identity
from .paths import AmbiguousPathError, canonical_path
from .reference import _source_matches as source_matches
from .request import Request
from .tables import PathNode


class _Missing:
    """An attribute the request does not carry."""

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()
FRESH = "zz-other"  # a value no rule names: the "everything else" class
_FRESH_TD = "other.invalid"

Claims = dict[tuple[str, ...], tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Space:
    """The representative values of each request attribute for one destination."""

    destination: str
    principals: tuple[str | None, ...]
    ips: tuple[str | None, ...]
    methods: tuple[str, ...]
    paths: tuple[str, ...]
    hosts: tuple[str | None, ...]
    ports: tuple[int | None, ...]
    headers: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    claims: Claims = field(default_factory=dict)
    snis: tuple[str | None, ...] = (None,)

    def size(
        self,
        within: model.Rule | None = None,
        context: Sequence[tuple[int | None, model.Rule]] | None = None,
    ) -> int:
        """How many requests :meth:`requests` yields at most (without building them)."""
        n = 1
        for values in self._dimensions(within, context):
            n *= len(values)
        return n

    def requests(
        self,
        within: model.Rule | None = None,
        context: Sequence[tuple[int | None, model.Rule]] | None = None,
    ) -> Iterator[Request]:
        """Every combination of representatives.

        With ``within``, only those whose indexed attributes (caller, method, path,
        host, port) the rule accepts. With ``context`` (the rules that decide, each with
        the port of its service block), an attribute that no context rule able to
        match in that region looks at keeps a single value: all its values decide alike.
        """
        dims = self._dimensions(within, context)
        header_names = list(self.headers)
        claim_paths = list(self.claims)
        nh = len(header_names)
        for combo in itertools.product(*dims):
            principal, ip, method, path, host, port, sni, *attrs = combo
            headers = {
                name: value
                for name, value in zip(header_names, attrs[:nh], strict=True)
                if value is not MISSING
            }
            jwt = _claims_document(claim_paths, attrs[nh:])
            if jwt is _CONFLICT:
                continue
            yield Request(
                self.destination,
                method,
                path,
                port=port,
                host=host,
                headers=headers,
                principal=principal,
                source_ip=ip,
                jwt=jwt,
                sni=sni,
            )

    def _dimensions(
        self,
        within: model.Rule | None,
        context: Sequence[tuple[int | None, model.Rule]] | None,
    ) -> list[Sequence[Any]]:
        principals: Sequence[Any] = self.principals
        ips: Sequence[Any] = self.ips
        methods: Sequence[Any] = self.methods
        paths: Sequence[Any] = self.paths
        hosts: Sequence[Any] = self.hosts
        ports: Sequence[Any] = self.ports
        if within is not None:
            principals, ips = _callers(within, self.principals, self.ips)
            if within.methods is not None:
                methods = [m for m in methods if m in within.methods]
            if within.paths is not None:
                paths = [p for p in paths if _path_accepted(within.paths, p)]
            if within.hosts is not None:
                hosts = [h for h in hosts if _host_accepted(within.hosts, h)]
            if within.ports is not None:
                ports = [p for p in ports if p in within.ports]
        snis: Sequence[Any] = self.snis
        headers = dict(self.headers)
        claims = dict(self.claims)
        if context is not None:
            used = _Usage()
            for port, rule in context:
                if _may_overlap(rule, port, principals, ips, methods, paths, hosts, ports):
                    used.add(rule, port)
            ips = ips if used.ips else ips[:1]
            hosts = hosts if used.hosts else hosts[:1]
            ports = ports if used.ports else ports[:1]
            snis = snis if used.sni else snis[:1]
            headers = {h: v if h in used.headers else (MISSING,) for h, v in headers.items()}
            claims = {c: v if c in used.claims else (MISSING,) for c, v in claims.items()}
        dims: list[Sequence[Any]] = [principals, ips, methods, paths, hosts, ports, snis]
        dims.extend(headers.values())
        dims.extend(claims.values())
        return dims


@dataclass
class _Usage:
    """Which attributes a set of rules looks at."""

    ips: bool = False
    hosts: bool = False
    ports: bool = False
    sni: bool = False
    headers: set[str] = field(default_factory=set)
    claims: set[tuple[str, ...]] = field(default_factory=set)

    def add(self, rule: model.Rule, port: int | None) -> None:
        self.ips |= any(s.kind == "cidr" for s in rule.sources)
        self.hosts |= rule.hosts is not None
        self.ports |= rule.ports is not None or port is not None
        for cond in (rule.when, rule.unless):
            if cond is not None:
                self._condition(cond)

    def _condition(self, cond: model.Cond) -> None:
        if isinstance(cond, model.AllOf | model.AnyOf):
            for c in cond.operands:
                self._condition(c)
        elif isinstance(cond, model.NotCond):
            self._condition(cond.operand)
        else:
            parts = cond.attribute.parts
            if parts[0] == "jwt":
                # A claim and every claim around or inside it: they share one object.
                self.claims.update(parts[1:i] for i in range(2, len(parts) + 1))
            elif parts[:2] == ("request", "headers"):
                self.headers.add(parts[2])
            elif parts == ("connection", "sni"):
                self.sni = True
            elif parts == ("source", "ip"):
                self.ips = True
            elif parts == ("request", "host"):
                self.hosts = True
            elif parts == ("destination", "port"):
                self.ports = True


def _may_overlap(
    rule: model.Rule,
    port: int | None,
    principals: Sequence[Any],
    ips: Sequence[Any],
    methods: Sequence[Any],
    paths: Sequence[Any],
    hosts: Sequence[Any],
    ports: Sequence[Any],
) -> bool:
    """Can the rule match some request built from these values? (False only when
    one attribute rules it out.)"""
    if port is not None and port not in ports:
        return False
    if rule.ports is not None and not any(p in rule.ports for p in ports):
        return False
    if rule.methods is not None and not any(m in rule.methods for m in methods):
        return False
    if rule.paths is not None and not any(_path_accepted(rule.paths, p) for p in paths):
        return False
    if rule.hosts is not None and not any(_host_accepted(rule.hosts, h) for h in hosts):
        return False
    kept_principals, kept_ips = _callers(rule, principals, ips)
    return bool(kept_principals) and bool(kept_ips)


def _host_accepted(patterns: Sequence[model.HostPattern], host: str | None) -> bool:
    return host is not None and any(x.matches(host) for x in patterns)


def _callers(
    rule: model.Rule, principals: Sequence[str | None], ips: Sequence[str | None]
) -> tuple[list[str | None], list[str | None]]:
    """Principals and IPs that can meet one of the rule's sources. (The product of the
    two lists may still hold pairs the rule rejects; the evaluator decides those.)"""
    if any(s.kind == "any" for s in rule.sources):
        return list(principals), list(ips)
    by_ip = [s for s in rule.sources if s.kind == "cidr"]
    by_id = [s for s in rule.sources if s.kind != "cidr"]
    if by_ip and by_id:
        return list(principals), list(ips)
    if by_ip:
        kept_ips = [ip for ip in ips if any(source_matches(s, None, ip) for s in by_ip)]
        return list(principals), kept_ips
    kept = [p for p in principals if any(source_matches(s, peer_identity(p), None) for s in by_id)]
    return kept, list(ips)


def _path_accepted(patterns: Sequence[Any], raw: str) -> bool:
    try:
        path = canonical_path(raw)
    except AmbiguousPathError:
        return False
    return any(p.matches(path) for p in patterns)


_CONFLICT: Any = object()


def _claims_document(paths: list[tuple[str, ...]], values: Sequence[Any]) -> Any:
    """Nest claim values into one JWT claims object; None when every claim is missing;
    the conflict marker when a claim and a claim inside it disagree (``jwt.a`` a string
    while ``jwt.a.b`` is present)."""
    if not paths:
        return None
    doc: dict[str, Any] = {}
    present = False
    # Shorter paths first, so an object claim is placed before the claims inside it.
    for path, value in sorted(zip(paths, values, strict=True), key=lambda pv: len(pv[0])):
        if value is MISSING:
            continue
        present = True
        node = doc
        for key in path[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                return _CONFLICT
            node = child
        if path[-1] in node:
            return _CONFLICT
        node[path[-1]] = _copy(value)
    if not present:
        return None
    # A claim recorded as missing must really be missing.
    for path, value in zip(paths, values, strict=True):
        if value is MISSING and _lookup(doc, path) is not MISSING:
            return _CONFLICT
    return doc


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return list(value)
    return value


def _lookup(doc: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = doc
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return MISSING
        node = node[key]
    return node


# --- building a space ----------------------------------------------------------------


def build_space(
    destination: str, rules: Iterable[model.Rule], ports: Iterable[int | None] = ()
) -> Space:
    """The representatives that separate every cell the given rules distinguish, for
    requests to ``destination``. ``ports`` adds the ports service blocks are bound to."""
    rules = list(rules)
    atoms = _Atoms()
    for rule in rules:
        atoms.add_rule(rule)
    atoms.ports.update(p for p in ports if p is not None)
    table = build_table(destination, "deny", rules)
    paths = set(trie_paths(table.path_root)) | {"/"}
    for text in atoms.path_constants:
        paths.add(text)
    return Space(
        destination=destination,
        principals=tuple(atoms.principal_values()),
        ips=tuple(atoms.ip_values()),
        methods=tuple(sorted(atoms.methods | {"GET", "ZZ-OTHER"})),
        paths=tuple(sorted(paths)),
        hosts=tuple(atoms.host_values()),
        ports=tuple(atoms.port_values()),
        headers={h: tuple(atoms.scalar_values(v, strings=True)) for h, v in atoms.headers.items()},
        claims={c: tuple(atoms.claim_values(v)) for c, v in atoms.claims.items()},
        snis=tuple(atoms.sni_values()),
    )


@dataclass
class _Operands:
    """What the conditions of a set of rules compare one attribute with."""

    scalars: list[Any] = field(default_factory=list)
    contains: list[Any] = field(default_factory=list)
    globs: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)


@dataclass
class _Atoms:
    ids: set[str] = field(default_factory=set)
    trust_domains: set[str] = field(default_factory=set)
    namespaces: set[tuple[str, str]] = field(default_factory=set)
    service_accounts: set[str] = field(default_factory=set)
    networks: set[str] = field(default_factory=set)
    ip_constants: set[str] = field(default_factory=set)
    methods: set[str] = field(default_factory=set)
    path_constants: set[str] = field(default_factory=set)
    host_patterns: set[str] = field(default_factory=set)
    ports: set[int] = field(default_factory=set)
    headers: dict[str, _Operands] = field(default_factory=dict)
    claims: dict[tuple[str, ...], _Operands] = field(default_factory=dict)
    sni: _Operands | None = None

    def add_rule(self, rule: model.Rule) -> None:
        for source in rule.sources:
            if source.kind == "id":
                self._add_id(source.value)
            elif source.kind == "namespace":
                td, ns = source.value.split("/", 1)
                self.trust_domains.add(td)
                self.namespaces.add((td, ns))
            elif source.kind == "trust_domain":
                self.trust_domains.add(source.value)
            elif source.kind == "cidr":
                self.networks.add(source.value)
        self.methods.update(rule.methods or ())
        self.host_patterns.update(h.text for h in rule.hosts or ())
        self.ports.update(rule.ports or ())
        for cond in (rule.when, rule.unless):
            if cond is not None:
                self._add_condition(cond)

    def _add_id(self, text: str) -> None:
        try:
            ident = parse_spiffe_id(text)
        except SpiffeIdError:
            return
        self.ids.add(text)
        self.trust_domains.add(ident.trust_domain)
        if ident.namespace is not None:
            self.namespaces.add((ident.trust_domain, ident.namespace))

    def _add_condition(self, cond: model.Cond) -> None:
        if isinstance(cond, model.AllOf | model.AnyOf):
            for c in cond.operands:
                self._add_condition(c)
            return
        if isinstance(cond, model.NotCond):
            self._add_condition(cond.operand)
            return
        parts = cond.attribute.parts
        ops = self._operands(parts)
        if isinstance(cond, model.HasAttr):
            return
        operands = cond.operand if isinstance(cond.operand, tuple) else (cond.operand,)
        if cond.op == "matches":
            ops.globs.append(str(cond.operand))
        elif cond.op == "within":
            ops.networks.extend(str(n) for n in operands)
        elif cond.op == "contains":
            ops.contains.append(cond.operand)
            ops.scalars.append(cond.operand)
        else:
            ops.scalars.extend(operands)
        self._couple(parts, ops)

    def _operands(self, parts: tuple[str, ...]) -> _Operands:
        if parts[0] == "jwt":
            return self.claims.setdefault(parts[1:], _Operands())
        if parts[:2] == ("request", "headers"):
            return self.headers.setdefault(parts[2], _Operands())
        if parts == ("connection", "sni"):
            if self.sni is None:
                self.sni = _Operands()
            return self.sni
        return _Operands()  # an attribute coupled to an indexed one: see _couple

    def _couple(self, parts: tuple[str, ...], ops: _Operands) -> None:
        """Conditions on attributes the tables also index add values to that index's
        representatives instead of being a dimension of their own."""
        strings = [v for v in ops.scalars if isinstance(v, str)] + [
            glob_witness(g) for g in ops.globs
        ]
        if parts == ("source", "principal"):
            for s in strings:
                self._add_id(s)
        elif parts == ("source", "namespace"):
            for s in strings:
                self.namespaces.add(("", s))
        elif parts == ("source", "trust_domain"):
            self.trust_domains.update(strings)
        elif parts == ("source", "service_account"):
            self.service_accounts.update(strings)
        elif parts == ("source", "ip"):
            self.networks.update(ops.networks)
            self.ip_constants.update(strings)
        elif parts == ("request", "method"):
            self.methods.update(strings)
        elif parts == ("request", "path"):
            self.path_constants.update(s for s in strings if s.startswith("/"))
        elif parts == ("request", "host"):
            self.host_patterns.update(s.lower() for s in strings)
        elif parts == ("destination", "port"):
            self.ports.update(int(v) for v in ops.scalars if isinstance(v, int | float))

    # --- values per attribute --------------------------------------------------------

    def principal_values(self) -> list[str | None]:
        tds = sorted(self.trust_domains | {td for td, _ in self.namespaces if td})
        namespaces = {(td, ns) for td, ns in self.namespaces if td}
        # A namespace named only in a condition exists in every trust domain seen.
        for _, ns in {x for x in self.namespaces if not x[0]}:
            namespaces.update((td, ns) for td in tds or [_FRESH_TD])
        accounts = self.service_accounts | {FRESH}
        out: set[str] = set(self.ids)
        for td, ns in namespaces:
            out.update(f"spiffe://{td}/ns/{ns}/sa/{sa}" for sa in accounts)
        for td in tds:
            out.add(f"spiffe://{td}/{FRESH}")
            out.update(f"spiffe://{td}/ns/{FRESH}/sa/{sa}" for sa in accounts)
        out.add(f"spiffe://{_FRESH_TD}/ns/{FRESH}/sa/{FRESH}")
        valid = []
        for text in sorted(out):
            try:
                parse_spiffe_id(text)
            except SpiffeIdError:
                continue
            valid.append(text)
        return [None, *valid]

    def ip_values(self) -> list[str | None]:
        if not self.networks and not self.ip_constants:
            return [None]
        out: set[str] = set(self.ip_constants)
        for text in self.networks:
            net = ipaddress.ip_network(text)
            for address in (net[0], net[-1]):
                out.add(str(address))
                for step in (-1, 1):  # just outside: the class of a sibling network
                    with contextlib.suppress(ipaddress.AddressValueError):
                        out.add(str(address + step))
        # Outside every network (both families), and not an address at all.
        out.update(("203.0.113.254", "2001:db8::fe", "not-an-ip"))
        return [None, *sorted(out)]

    def host_values(self) -> list[str | None]:
        if not self.host_patterns:
            return [None]
        out = {FRESH + ".invalid"}
        for h in self.host_patterns:
            out.add(FRESH + h[1:] if h.startswith("*.") else h)
        return [None, *sorted(out)]

    def port_values(self) -> list[int | None]:
        if not self.ports:
            return [None]
        fresh = max(self.ports) + 1
        return [None, *sorted(self.ports), fresh if fresh < 65536 else 1]

    def sni_values(self) -> list[Any]:
        if self.sni is None:
            return [None]
        return [None if v is MISSING else v for v in self.scalar_values(self.sni, True)]

    def scalar_values(self, ops: _Operands, strings: bool) -> list[Any]:
        """Missing, each constant, a fresh value of each constant's type, a glob's
        witness, and (for claims) a value of another type."""
        out: list[Any] = [MISSING, FRESH]
        for v in [*ops.scalars, *(glob_witness(g) for g in ops.globs)]:
            if strings and not isinstance(v, str):
                continue
            if v not in out or type(v) is not type(out[out.index(v)]):
                out.append(v)
        for text in ops.networks:
            net = ipaddress.ip_network(text)
            out.extend(str(a) for a in (net[0], net[-1]))
        if not strings:
            out.extend((-1.5, False, {}))  # other types: comparisons fail on them
        return _unique(out)

    def claim_values(self, ops: _Operands) -> list[Any]:
        out = self.scalar_values(ops, strings=False)
        if ops.contains:
            out.append([])
        items = _unique(ops.contains)
        # Lists holding each subset of the values `contains` looks for (a few at most).
        if len(items) <= 4:
            for n in range(1, len(items) + 1):
                out.extend(list(c) for c in itertools.combinations(items, n))
        else:
            out.extend([x] for x in items)
            out.append(list(items))
        strings = [x for x in items if isinstance(x, str)]
        if len(strings) > 1:
            out.append(" ".join(strings))  # a space-separated claim such as `scope`
        return out


def _unique(values: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if not any(type(v) is type(o) and v == o for o in out):
            out.append(v)
    return out


def glob_witness(pattern: str) -> str:
    """A string the ``matches`` glob accepts (``*`` empty, ``?`` and sets one char)."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            i += 1
            continue
        if c == "?":
            out.append("a")
        elif c == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                out.append(next(ch for ch in "azAZ09_-~" if ch not in body[1:]))
            else:
                out.append(body[0])
            i = end + 1
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def trie_paths(*roots: PathNode) -> Iterator[str]:
    """One path for every distinct way through the path tries of decision tables:
    following each literal child, each prefix (and a longer segment with it), a
    segment no pattern names, and ending (with or without a trailing slash) at each
    node. Tries of several tables are walked together, so the paths also tell apart
    the patterns of two policy versions."""
    stack: list[tuple[str, tuple[PathNode, ...]]] = [("", roots)]
    while stack:
        prefix, nodes = stack.pop()
        yield prefix or "/"
        if not nodes:
            continue
        yield prefix + "/"
        segments: set[str] = set()
        for node in nodes:
            segments.update(node.children)
            for partial, _ in node.prefixes:
                segments.update((partial, partial + FRESH))
        fresh = FRESH
        while fresh in segments or any(
            fresh.startswith(p) for n in nodes for p, _ in n.prefixes if p
        ):
            fresh += "~"
        segments.add(fresh)
        segments.discard("")
        for segment in sorted(segments):
            nxt: list[PathNode] = []
            for node in nodes:
                child = node.children.get(segment)
                if child is not None:
                    nxt.append(child)
                if node.one is not None:
                    nxt.append(node.one)
            stack.append((f"{prefix}/{segment}", tuple(nxt)))
