"""Representative requests: a finite set of requests meeting every cell of the request
space that a set of rules tells apart.

Every rule part is an *atom* on one attribute of a request: the caller's identity (and
source IP), the method, the canonical path, the host, the port, and each attribute a
condition reads (headers, JWT claims, SNI). Two requests that agree on every atom are
matched by exactly the same rules, so they decide the same. For each attribute this
module collects candidate values — every constant the rules mention, the boundaries of
every network, one instance of every path the decision table's path trie tells apart,
a fresh value that matches nothing, the value being absent, a value of the wrong type —
and keeps one per class of values that every rule and every comparison treat alike.
The requests are the combinations of those classes (for conditions, only of the
attributes that the rules able to match there read).

``diff`` evaluates these requests under two policy versions to find every kind of
request whose decision flips; ``lint`` evaluates a rule's conditions over them to prove
that a rule can never match. Classes are exact for everything the decision tables
index and for comparisons with constants; a ``matches`` glob is represented by values
it matches (its ``*`` also filled with the tails of the rules' paths, or with the hosts
they name), so cells where two globs on one attribute overlap only partly can be missed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from . import model
from .compiler import build_table
from .conditions import Context, EvalError, compile_condition
from .identity import SpiffeIdError, parse_spiffe_id, peer_identity
from .paths import AmbiguousPathError, canonical_path
from .reference import source_matches
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


RulesAt = Callable[[int | None], Sequence[model.Rule]]


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
    snis: tuple[Any, ...] = (None,)

    def requests(
        self,
        rules_at: RulesAt,
        within: model.Rule | None = None,
        within_port: int | None = None,
    ) -> Iterator[Request]:
        """One request per cell of the space that ``rules_at(port)`` (the rules that
        decide requests on a port) tells apart.

        For each attribute the tables index, values that every rule treats alike (and
        that no condition reads) are one class: one of them stands for all. For each
        combination of classes, only the conditions of the rules that can match there
        vary, over the values of the attributes they read. With ``within``, only
        requests whose indexed attributes that rule accepts (on ``within_port``, the
        port of its service block, if any).
        """
        principals: Sequence[str | None] = self.principals
        ips: Sequence[str | None] = self.ips
        methods: Sequence[str] = self.methods
        paths = [p for p in self.paths if _canonical(p) is not None]
        hosts: Sequence[str | None] = self.hosts
        ports: Sequence[int | None] = self.ports
        if within is not None:
            principals, ips = _callers(within, principals, ips)
            if within.methods is not None:
                methods = [m for m in methods if m in within.methods]
            if within.paths is not None:
                paths = [p for p in paths if _path_accepted(within.paths, p)]
            if within.hosts is not None:
                hosts = [h for h in hosts if _host_accepted(within.hosts, h)]
            if within.ports is not None:
                ports = [p for p in ports if p in within.ports]
            if within_port is not None:
                ports = [p for p in ports if p == within_port]
        for port in ports:
            rules = list({id(r): r for r in rules_at(port)}.values())
            yield from self._port_requests(rules, port, principals, ips, methods, paths, hosts)

    def _port_requests(
        self,
        rules: list[model.Rule],
        port: int | None,
        principals: Sequence[str | None],
        ips: Sequence[str | None],
        methods: Sequence[str],
        paths: Sequence[str],
        hosts: Sequence[str | None],
    ) -> Iterator[Request]:
        sig = _Signatures(rules, self.destination)
        callers = _classes(
            ((p, ip) for p in principals for ip in ips),
            lambda c: _mask(rules, lambda r: _caller_accepted(r, c[0], c[1])),
            lambda c: (sig.of("identity", principal=c[0]), sig.of("ip", source_ip=c[1])),
        )
        method_classes = _classes(
            methods,
            lambda m: _mask(rules, lambda r: r.methods is None or m in r.methods),
            lambda m: sig.of("method", method=m),
        )
        path_classes = _classes(
            paths,
            lambda p: _mask(rules, lambda r: r.paths is None or _path_accepted(r.paths, p)),
            lambda p: sig.of("path", path=p),
        )
        host_classes = _classes(
            hosts,
            lambda h: _mask(rules, lambda r: r.hosts is None or _host_accepted(r.hosts, h)),
            lambda h: sig.of("host", host=h),
        )
        nested = {c for c in self.claims for d in self.claims if d != c and d[: len(c)] == c}
        headers = {h: sig.values(("header", h), v) for h, v in self.headers.items()}
        # A claim holding other claims keeps every value: its object shape matters too.
        claims = {
            c: v if c in nested else sig.values(("claim", c), v) for c, v in self.claims.items()
        }
        snis = sig.values("sni", self.snis)
        port_mask = _mask(rules, lambda r: r.ports is None or port in r.ports)
        for (caller, m1), (method, m2), (path, m3), (host, m4) in itertools.product(
            callers, method_classes, path_classes, host_classes
        ):
            principal, ip = caller
            candidates = m1 & m2 & m3 & m4 & port_mask
            used = _Reads()
            for i in _bits(candidates):
                used.add(rules[i])
            header_names = sorted(h for h in self.headers if h in used.headers)
            claim_paths = sorted(c for c in self.claims if c in used.claims)
            dims: list[Sequence[Any]] = [snis if used.sni else (None,)]
            dims.extend(headers[h] for h in header_names)
            dims.extend(claims[c] for c in claim_paths)
            nh = len(header_names)
            for sni, *attrs in itertools.product(*dims):
                jwt = _claims_document(claim_paths, attrs[nh:])
                if jwt is _CONFLICT:
                    continue
                yield Request(
                    self.destination,
                    method,
                    path,
                    port=port,
                    host=host,
                    headers={
                        name: value
                        for name, value in zip(header_names, attrs[:nh], strict=True)
                        if value is not MISSING
                    },
                    principal=principal,
                    source_ip=ip,
                    jwt=jwt,
                    sni=None if sni is MISSING else sni,
                )


_T = TypeVar("_T")


class _Signatures:
    """What the conditions of some rules say about one attribute's value: the outcome
    (true, false or an evaluation error) of every comparison that reads it. Values
    with the same outcomes are alike to every condition."""

    def __init__(self, rules: Sequence[model.Rule], destination: str):
        self.destination = destination
        self.atoms: dict[object, list[Callable[[Context], bool]]] = {}
        for rule in rules:
            for test in rule.tests():
                self.atoms.setdefault(_category(test.attribute.parts), []).append(
                    compile_condition(test)
                )

    def values(self, category: object, values: Sequence[Any]) -> list[Any]:
        """One value per distinct signature, of a header, a claim or the SNI."""
        out: dict[object, Any] = {}
        for value in values:
            if isinstance(category, tuple) and category[0] == "claim":
                signature = self.of(category, jwt=_claims_document([category[1]], [value]))
            elif isinstance(category, tuple):
                signature = self.of(
                    category, headers={} if value is MISSING else {category[1]: value}
                )
            else:
                signature = self.of(category, sni=None if value is MISSING else value)
            out.setdefault(signature, value)
        return list(out.values())

    def of(self, category: object, **fields: Any) -> tuple[object, ...]:
        """The outcomes of the comparisons on ``category`` for a request that has
        only ``fields`` set."""
        atoms = self.atoms.get(category)
        if not atoms:
            return ()
        if fields.get("jwt") is _CONFLICT:
            return ("conflict",)
        path = _canonical(fields.pop("path", "/")) or "/"
        req = Request(self.destination, fields.pop("method", "GET"), path, **fields)
        ctx = Context(req, peer_identity(req.principal), path, req.host_name)
        out: list[object] = []
        for atom in atoms:
            try:
                out.append(atom(ctx))
            except EvalError:
                out.append("error")
        return tuple(out)


def _category(parts: tuple[str, ...]) -> object:
    if parts[0] == "jwt":
        return ("claim", parts[1:])
    if parts[:2] == ("request", "headers"):
        return ("header", parts[2])
    if parts == ("source", "ip"):
        return "ip"
    if parts[0] == "source":
        return "identity"
    named: dict[tuple[str, ...], str] = {
        ("request", "method"): "method",
        ("request", "path"): "path",
        ("request", "host"): "host",
        ("destination", "port"): "port",
        ("destination", "service"): "service",
        ("connection", "sni"): "sni",
    }
    return named[parts]


def _classes(
    values: Iterable[_T], mask: Callable[[_T], int], read: Callable[[_T], object]
) -> list[tuple[_T, int]]:
    """One representative per class of values with the same rule mask and the same
    value as far as conditions read it; each with its mask."""
    out: dict[tuple[int, object], _T] = {}
    for value in values:
        m = mask(value)
        out.setdefault((m, read(value)), value)
    return [(value, m) for (m, _), value in out.items()]


def _mask(rules: Sequence[model.Rule], accepts: Callable[[model.Rule], bool]) -> int:
    m = 0
    for i, rule in enumerate(rules):
        if accepts(rule):
            m |= 1 << i
    return m


def _bits(mask: int) -> Iterator[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


@dataclass
class _Reads:
    """Which request attributes the conditions of some rules read."""

    identity: bool = False
    ip: bool = False
    method: bool = False
    path: bool = False
    host: bool = False
    sni: bool = False
    headers: set[str] = field(default_factory=set)
    claims: set[tuple[str, ...]] = field(default_factory=set)

    def add(self, rule: model.Rule) -> None:
        for test in rule.tests():
            parts = test.attribute.parts
            if parts[0] == "jwt":
                # A claim and every claim around it: they share one object.
                self.claims.update(parts[1:i] for i in range(2, len(parts) + 1))
            elif parts[:2] == ("request", "headers"):
                self.headers.add(parts[2])
            elif parts == ("connection", "sni"):
                self.sni = True
            elif parts == ("source", "ip"):
                self.ip = True
            elif parts[0] == "source":
                self.identity = True
            elif parts == ("request", "method"):
                self.method = True
            elif parts == ("request", "path"):
                self.path = True
            elif parts == ("request", "host"):
                self.host = True


def _canonical(raw: str) -> str | None:
    try:
        return canonical_path(raw)
    except AmbiguousPathError:
        return None


def _caller_accepted(rule: model.Rule, principal: str | None, ip: str | None) -> bool:
    identity = peer_identity(principal)
    return any(source_matches(s, identity, ip, rule.effect) for s in rule.sources)


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
        kept_ips = [
            ip for ip in ips if any(source_matches(s, None, ip, rule.effect) for s in by_ip)
        ]
        return list(principals), kept_ips
    kept = [p for p in principals if any(source_matches(s, peer_identity(p), None) for s in by_id)]
    return kept, list(ips)


def _path_accepted(patterns: Sequence[Any], raw: str) -> bool:
    path = _canonical(raw)
    return path is not None and any(p.matches(path) for p in patterns)


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
    # A glob's `*` filled with the tails of the rules' own paths: requests that meet a
    # `matches` condition and a wildcard rule path at once (`/api/*` and `/{*}/b`).
    tails = {p[i + 1 :] for p in paths for i, c in enumerate(p) if c == "/"}
    paths.update(_witnesses_with(atoms.path_globs, tails))
    for text in atoms.path_constants:
        paths.add(text)
    hosts = atoms.host_values()
    named_hosts = {h for h in hosts if h is not None}
    extra_hosts = _witnesses_with(atoms.host_globs, named_hosts) - named_hosts
    return Space(
        destination=destination,
        principals=tuple(atoms.principal_values()),
        ips=tuple(atoms.ip_values()),
        methods=tuple(sorted(atoms.methods | {"GET", "ZZ-OTHER"})),
        paths=tuple(sorted(paths)),
        hosts=(*hosts, *sorted(extra_hosts)),
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
    path_globs: set[str] = field(default_factory=set)
    host_globs: set[str] = field(default_factory=set)
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
        for test in rule.tests():
            self._add_test(test)

    def _add_id(self, text: str) -> None:
        try:
            ident = parse_spiffe_id(text)
        except SpiffeIdError:
            return
        self.ids.add(text)
        self.trust_domains.add(ident.trust_domain)
        if ident.namespace is not None:
            self.namespaces.add((ident.trust_domain, ident.namespace))

    def _add_test(self, cond: model.Test) -> None:
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
            w for g in ops.globs for w in glob_witnesses(g)
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
            self.path_globs.update(ops.globs)
        elif parts == ("request", "host"):
            self.host_patterns.update(s.lower() for s in strings)
            self.host_globs.update(g.lower() for g in ops.globs)
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
        # Callers of a trust domain no rule names, with every account a condition names
        # (`from authenticated when source.service_account == "web"`).
        out.update(f"spiffe://{_FRESH_TD}/ns/{FRESH}/sa/{sa}" for sa in accounts)
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
        out = set(self.ip_constants) | _network_witnesses(self.networks)
        out.add("not-an-ip")  # not an address at all: `ip` sources of denies match it
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
        for v in [*ops.scalars, *(w for g in ops.globs for w in glob_witnesses(g))]:
            if strings and not isinstance(v, str):
                continue
            if v not in out or type(v) is not type(out[out.index(v)]):
                out.append(v)
        if ops.networks:
            out.extend(sorted(_network_witnesses(ops.networks)))  # FRESH: a non-address
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
        if items:
            # Lists holding a value of another kind than the one looked for (`[1]` for
            # `contains "a"`): the comparison fails, and a deny matches there.
            out.extend(([FRESH], [-1.5], [False], [items[0], -1.5]))
        return out


def _network_witnesses(networks: Iterable[str]) -> set[str]:
    """Addresses for every class `within` and `ip` tell apart: each network's first and
    last address, the addresses just outside them (the class of a sibling network), and
    addresses outside every network in both families."""
    out = {"203.0.113.254", "2001:db8::fe"}
    for text in networks:
        net = ipaddress.ip_network(text)
        for address in (net[0], net[-1]):
            out.add(str(address))
            for step in (-1, 1):
                with contextlib.suppress(ipaddress.AddressValueError):
                    out.add(str(address + step))
    return out


def _unique(values: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if not any(type(v) is type(o) and v == o for o in out):
            out.append(v)
    return out


# Bounds the values added by filling globs with other values, per destination.
_MAX_GLOB_FILLS = 4096


def _witnesses_with(globs: Iterable[str], fillers: Iterable[str]) -> set[str]:
    """Strings each glob accepts, its first `*` (and any others) filled with each filler."""
    out: set[str] = set()
    fills = sorted(fillers)
    for glob in sorted(globs):
        if "*" not in glob:
            continue
        for fill in fills:
            if len(out) >= _MAX_GLOB_FILLS:
                return out
            out.add(glob_witness(glob, fill))
    return out


def glob_witnesses(pattern: str) -> tuple[str, str]:
    """Two strings the ``matches`` glob accepts: ``*`` as nothing and as a word (a
    SPIFFE ID or host glob ending in ``/*`` or starting ``*.`` needs the word)."""
    return glob_witness(pattern, ""), glob_witness(pattern, "x")


def glob_witness(pattern: str, star: str = "") -> str:
    """A string the ``matches`` glob accepts (``*`` as ``star``, ``?`` and sets one
    char)."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append(star)
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
