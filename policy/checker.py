"""Syntax trees to the checked model: resolve names, validate values, report every error.

All problems of a policy set are collected and reported together; a policy set with
any error produces no model at all, so nothing partial can ever be compiled or served.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

from . import model, nodes
from .diagnostics import Diagnostic, Severity, Span, did_you_mean
from .identity import SpiffeIdError, check_trust_domain, parse_spiffe_id
from .paths import PathPatternError, parse_path_pattern
from .request import canonical_network

RESERVED_NAMES = frozenset(
    {"any", "authenticated", "unauthenticated", "namespace", "sa", "trust_domain", "ip"}
)
_ROOTS = ("source", "request", "jwt", "destination", "connection")
_KNOWN_ATTRIBUTES = [".".join(k) for k in model.FIXED_ATTRIBUTES] + [
    'request.headers["name"]',
    "jwt.<claim>",
]


@dataclass(frozen=True, slots=True)
class CheckResult:
    policy: model.PolicySet | None
    diagnostics: tuple[Diagnostic, ...]


def check(files: Sequence[nodes.PolicyFile]) -> CheckResult:
    """Check parsed files as one policy set."""
    return _Checker(files).run()


@dataclass
class _SetDef:
    node: nodes.PrincipalSet
    file: nodes.PolicyFile
    resolved: tuple[model.Source, ...] | None = None
    resolving: bool = False


@dataclass
class _Checker:
    files: Sequence[nodes.PolicyFile]
    diagnostics: list[Diagnostic] = field(default_factory=list)
    sets: dict[str, _SetDef] = field(default_factory=dict)

    def error(self, code: str, message: str, span: Span, **extra: str | None) -> None:
        self.diagnostics.append(Diagnostic(code, message, span, Severity.ERROR, **extra))  # type: ignore[arg-type]

    def run(self) -> CheckResult:
        trust_domains: set[str] = set()
        for f in self.files:
            for extra in f.extra_trust_domains:
                self.error(
                    "duplicate-trust-domain",
                    "a file declares its trust domain once",
                    extra.span,
                    help="split the policies of each trust domain into their own files",
                )
            if f.trust_domain is not None:
                td = f.trust_domain.value
                try:
                    check_trust_domain(td)
                    trust_domains.add(td)
                except SpiffeIdError as exc:
                    self.error("bad-trust-domain", str(exc), f.trust_domain.span)
            for ps in f.principal_sets:
                self._declare_set(ps, f)

        blocks: dict[model.ServiceKey, list[tuple[nodes.ServiceBlock, nodes.PolicyFile]]]
        blocks = defaultdict(list)
        for f in self.files:
            for block in f.services:
                key = self._service_key(block)
                if key is not None:
                    blocks[key].append((block, f))

        seen_ids: dict[str, Span] = {}
        services: dict[model.ServiceKey, model.ServicePolicy] = {}
        defaults = self._defaults(blocks)
        derived: dict[str, Span] = {}
        for key, entries in blocks.items():
            rules: list[model.Rule] = []
            counted: dict[str, int] = defaultdict(int)  # rules of this key, by file
            for block, f in entries:
                for rule in block.rules:
                    counted[f.path] += 1
                    rule_id = self._rule_id(rule, f.path, key, counted[f.path], derived)
                    checked = self._rule(rule, rule_id, block, f, seen_ids)
                    if checked is not None:
                        rules.append(checked)
            services[key] = model.ServicePolicy(
                key=key,
                rules=tuple(rules),
                default=defaults.get(key, "deny"),
                spans=tuple(b.span for b, _ in entries),
            )
        for rule_id, span in derived.items():
            if rule_id in seen_ids:
                self.error(
                    "duplicate-id",
                    f"rule id {rule_id!r} is already the derived id of the rule at {span}",
                    seen_ids[rule_id],
                    help="choose another @id",
                )
        # Resolve sets nobody referenced too, so their errors are reported.
        for name in self.sets:
            self._resolve_set(name, self.sets[name].node.name.span)
        if self.diagnostics:
            return CheckResult(None, tuple(self.diagnostics))
        return CheckResult(model.PolicySet(services, frozenset(trust_domains)), ())

    # --- declarations ----------------------------------------------------------------

    def _declare_set(self, ps: nodes.PrincipalSet, f: nodes.PolicyFile) -> None:
        name = ps.name.value
        if name in RESERVED_NAMES:
            self.error("reserved-name", f"{name!r} is a keyword, not a set name", ps.name.span)
        elif name in self.sets:
            first = self.sets[name].node.name.span
            self.error(
                "duplicate-set",
                f"principal set {name!r} is already defined at {first}",
                ps.name.span,
            )
        else:
            self.sets[name] = _SetDef(ps, f)

    def _service_key(self, block: nodes.ServiceBlock) -> model.ServiceKey | None:
        port = None
        if block.port is not None:
            port = self._port(block.port)
            if port is None:
                return None
        if block.audit and block.default is not None:
            self.error(
                "audit-default",
                "an audit service cannot set a default: it never decides",
                block.default.span,
                help="remove `default` or drop `audit` from the service",
            )
        return model.ServiceKey(block.name.value, port)

    def _defaults(
        self,
        blocks: dict[model.ServiceKey, list[tuple[nodes.ServiceBlock, nodes.PolicyFile]]],
    ) -> dict[model.ServiceKey, model.Effect]:
        """A service's `default` may be set in one block only: a `default allow` written
        in one file would otherwise silently widen rules written in another. It belongs
        to its block's key: a block bound to a port sets the default of that port alone
        (an audit block for the same service on other ports must not inherit it)."""
        by_name: dict[str, list[tuple[model.ServiceKey, nodes.ServiceBlock]]] = defaultdict(list)
        for key, entries in blocks.items():
            by_name[key.name].extend((key, b) for b, _ in entries if not b.audit)
        out: dict[model.ServiceKey, model.Effect] = {}
        for name, service_blocks in by_name.items():
            for key, block in service_blocks:
                if block.default is None:
                    continue
                # The blocks whose rules a request decided under this default also meets:
                # every other block for a block on every port, else those on this port
                # or on every port.
                sharing = [
                    k
                    for k, b in service_blocks
                    if b is not block and (key.port is None or k.port in (None, key.port))
                ]
                if sharing:
                    where = "every port" if key.port is None else f"port {key.port}"
                    self.error(
                        "default-in-extended-service",
                        f"service {name!r} on {where} is written in {len(sharing) + 1} "
                        "blocks; `default` is allowed only where one block decides",
                        block.default.span,
                        help="merge those blocks, or remove `default` (deny is the default)",
                    )
                    continue
                out[key] = cast(model.Effect, block.default.value)
        return out

    # --- rules -----------------------------------------------------------------------

    def _rule_id(
        self,
        rule: nodes.Rule,
        path: str,
        key: model.ServiceKey,
        index: int,
        derived: dict[str, Span],
    ) -> str | None:
        """A rule without ``@id`` gets :func:`derived_rule_id`; two such rules that would
        share one (same file name in two folders, same service) are an error, since a
        decision must name exactly one rule. None for a written id (checked in _rule)."""
        if rule.rule_id is not None:
            return None
        rule_id = model.derived_rule_id(path, key, index)
        if rule_id in derived:
            self.error(
                "duplicate-id",
                f"this rule would be known as {rule_id!r}, like the rule at {derived[rule_id]}",
                rule.span,
                help="give one of them an @id (files with the same name in different "
                "folders derive the same ids)",
            )
        else:
            derived[rule_id] = rule.span
        return rule_id

    def _rule(
        self,
        rule: nodes.Rule,
        derived_id: str | None,
        block: nodes.ServiceBlock,
        f: nodes.PolicyFile,
        seen_ids: dict[str, Span],
    ) -> model.Rule | None:
        before = len(self.diagnostics)
        if derived_id is not None:
            rule_id = derived_id
        else:
            assert rule.rule_id is not None
            rule_id = rule.rule_id.value
            if not rule_id.strip():
                self.error("bad-id", "a rule id cannot be empty", rule.rule_id.span)
            elif not rule_id.isprintable():
                # Ids travel in response headers and log lines: no control characters.
                self.error(
                    "bad-id",
                    f"a rule id may not hold control characters: {rule_id!r}",
                    rule.rule_id.span,
                )
            elif rule_id in seen_ids:
                self.error(
                    "duplicate-id",
                    f"rule id {rule_id!r} is already used at {seen_ids[rule_id]}",
                    rule.rule_id.span,
                    help="every rule id must be unique across the policy set",
                )
            else:
                seen_ids[rule_id] = rule.rule_id.span

        methods = None if rule.methods is None else frozenset(m.value for m in rule.methods)
        paths = []
        for p in rule.paths:
            try:
                paths.append(parse_path_pattern(p.value))
            except PathPatternError as exc:
                self.error("bad-path", str(exc), p.span)
        hosts = []
        for h in rule.hosts:
            host = h.value.lower()
            if ":" in host:
                self.error(
                    "host-with-port",
                    f"host {h.value!r} carries a port; hosts are matched without one",
                    h.span,
                    help="write the port with `port N` on the rule or the service",
                )
            elif not model.HOST_PATTERN.fullmatch(host):
                self.error(
                    "bad-host", f"{h.value!r} is not a host name or `*.suffix` pattern", h.span
                )
            else:
                hosts.append(model.HostPattern(host))
        ports = [self._port(p) for p in rule.ports]
        sources = self._sources(rule.sources, f) if rule.sources else (model.Source("any"),)
        when = self._condition(rule.when, f) if rule.when is not None else None
        unless = self._condition(rule.unless, f) if rule.unless is not None else None
        if len(self.diagnostics) > before:
            return None
        return model.Rule(
            rule_id=rule_id,
            effect=rule.effect,
            audit=rule.audit or block.audit,
            methods=methods,
            paths=tuple(paths) or None,
            hosts=tuple(hosts) or None,
            ports=frozenset(p for p in ports if p is not None) or None,
            sources=tuple(dict.fromkeys(sources)),
            when=when,
            unless=unless,
            span=rule.span,
            explicit_id=rule.rule_id is not None,
        )

    def _port(self, text: nodes.Text) -> int | None:
        digits = text.value.lstrip("0")
        # Length first: int() refuses texts of thousands of digits.
        if len(digits) > 5 or not 0 < int(digits or "0") < 65536:
            shown = digits if len(digits) <= 12 else f"{digits[:12]}… ({len(digits)} digits)"
            self.error("bad-port", f"port {shown or 0} is outside 1..65535", text.span)
            return None
        return int(digits)

    # --- sources ---------------------------------------------------------------------

    def _sources(
        self, terms: Sequence[nodes.SourceTerm], f: nodes.PolicyFile
    ) -> tuple[model.Source, ...]:
        out: list[model.Source] = []
        for term in terms:
            out.extend(self._source(term, f))
        return tuple(out)

    def _source(self, term: nodes.SourceTerm, f: nodes.PolicyFile) -> tuple[model.Source, ...]:
        kind, value = term.kind, term.value or ""
        if kind in ("any", "authenticated", "unauthenticated"):
            return (model.Source(kind),)
        if kind == "set":
            return self._resolve_set(value, term.span)
        if kind == "trust_domain":
            try:
                check_trust_domain(value)
            except SpiffeIdError as exc:
                self.error("bad-trust-domain", str(exc), term.span)
                return ()
            return (model.Source("trust_domain", value),)
        if kind == "cidr":
            try:
                network = canonical_network(value)
            except ValueError as exc:
                hint = None
                with contextlib.suppress(ValueError):
                    hint = str(ipaddress.ip_network(value, strict=False))
                self.error("bad-cidr", f"invalid CIDR {value!r}: {exc}", term.span, suggestion=hint)
                return ()
            return (model.Source("cidr", network),)
        td = self._relative_trust_domain(term, f, kind)
        if kind == "namespace":
            if td is None:
                return ()
            if not model.NAMESPACE_PATTERN.fullmatch(value):
                self.error("bad-namespace", f"{value!r} is not a namespace name", term.span)
                return ()
            return (model.Source("namespace", f"{td}/{value}"),)
        if kind == "sa":
            ns, slash, sa = value.partition("/")
            if not slash or "/" in sa:
                self.error(
                    "bad-service-account",
                    f'{value!r} is not "namespace/service-account"',
                    term.span,
                    help='write sa "default/productpage"',
                )
                return ()
            if td is None:
                return ()
            return self._spiffe(f"spiffe://{td}/ns/{ns}/sa/{sa}", term.span)
        # kind == "id": a full SPIFFE ID, or a path relative to the file's trust domain.
        if value.startswith("spiffe://"):
            if value.startswith("spiffe://spiffe://"):
                self.error(
                    "bad-spiffe-id",
                    "`spiffe://` is written twice",
                    term.span,
                    suggestion=f'"{value.removeprefix("spiffe://")}"',
                )
                return ()
            return self._spiffe(value, term.span)
        if td is None:
            return ()
        return self._spiffe(f"spiffe://{td}/{value.lstrip('/')}", term.span)

    def _relative_trust_domain(
        self, term: nodes.SourceTerm, f: nodes.PolicyFile, kind: str
    ) -> str | None:
        if kind == "id" and (term.value or "").startswith("spiffe://"):
            return None
        if f.trust_domain is None:
            self.error(
                "no-trust-domain",
                f"{term.value!r} is relative, but {f.path} declares no trust_domain",
                term.span,
                help='add `trust_domain "example.org"` at the top of the file, '
                'or write the full ID "spiffe://example.org/..."',
            )
            return None
        return f.trust_domain.value

    def _spiffe(self, text: str, span: Span) -> tuple[model.Source, ...]:
        try:
            ident = parse_spiffe_id(text)
        except SpiffeIdError as exc:
            self.error("bad-spiffe-id", f"invalid SPIFFE ID {text!r}: {exc}", span)
            return ()
        if not ident.path:
            self.error(
                "bad-spiffe-id",
                f"{text!r} names a whole trust domain, not a workload",
                span,
                suggestion=f'trust_domain "{ident.trust_domain}"',
            )
            return ()
        return (model.Source("id", text),)

    def _resolve_set(self, name: str, span: Span) -> tuple[model.Source, ...]:
        entry = self.sets.get(name)
        if entry is None:
            self.error(
                "unknown-set",
                f"unknown principal set {name!r}",
                span,
                suggestion=did_you_mean(name, self.sets),
                help="define it with `principals NAME = [...]`",
            )
            return ()
        if entry.resolved is not None:
            return entry.resolved
        if entry.resolving:
            self.error("set-cycle", f"principal set {name!r} includes itself", span)
            return ()
        entry.resolving = True
        entry.resolved = self._sources(entry.node.members, entry.file)
        entry.resolving = False
        return entry.resolved

    # --- conditions ------------------------------------------------------------------

    def _condition(self, cond: nodes.Condition, f: nodes.PolicyFile) -> model.Cond | None:
        if isinstance(cond, nodes.And | nodes.Or):
            kind = type(cond)
            flat: list[nodes.Condition] = []
            stack: list[nodes.Condition] = [cond]
            while stack:  # flatten a and b and c into one node
                c = stack.pop()
                if isinstance(c, kind):
                    stack.extend((c.right, c.left))
                else:
                    flat.append(c)
            parts = [self._condition(c, f) for c in flat]
            if any(p is None for p in parts):
                return None
            items = tuple(cast(list[model.Cond], parts))
            return model.AllOf(items) if kind is nodes.And else model.AnyOf(items)
        if isinstance(cond, nodes.Not):
            inner = self._condition(cond.operand, f)
            return None if inner is None else model.NotCond(inner)
        attr = self._attribute(cond.attribute)
        if attr is None:
            return None
        if isinstance(cond, nodes.Has):
            return model.HasAttr(attr)
        return self._compare(cond, attr)

    def _attribute(self, node: nodes.Attribute) -> model.AttributeRef | None:
        parts = node.parts
        if parts[:2] == ("request", "headers") and len(parts) == 3:
            parts = ("request", "headers", parts[2].lower())  # header names are not cased
        kind = model.attribute_type(parts)
        if kind is not None:
            return model.AttributeRef(parts, kind)
        help_text = "known attributes: " + ", ".join(_KNOWN_ATTRIBUTES)
        if parts[0] not in _ROOTS:
            suggestion = did_you_mean(parts[0], _ROOTS)
        else:
            suggestion = did_you_mean(node.dotted, _KNOWN_ATTRIBUTES)
        self.error(
            "unknown-attribute",
            f"unknown attribute {node.dotted!r}",
            node.span,
            suggestion=suggestion,
            help=help_text,
        )
        return None

    def _compare(self, cond: nodes.Compare, attr: model.AttributeRef) -> model.Cond | None:
        value = _plain(cond.operand)
        op = cond.op
        mismatch = model.operand_mismatch(op, attr, value)
        if mismatch is None and op == "within":
            nets = []
            for item in cast(tuple[model.Value, ...], value):
                try:
                    nets.append(str(ipaddress.ip_network(str(item), strict=True)))
                except ValueError as exc:
                    self.error("bad-cidr", f"invalid CIDR {item!r}: {exc}", cond.operand.span)
                    return None
            value = tuple(nets)
        if mismatch is not None:
            self.error("type-mismatch", mismatch, cond.span)
            return None
        if attr.parts == ("request", "host") and op in ("==", "!=", "in"):
            for host in value if isinstance(value, tuple) else (value,):
                # As for a rule's `host`; an IPv6 literal is written in brackets, [::1].
                if isinstance(host, str) and ":" in host.rsplit("]", 1)[-1]:
                    self.error(
                        "host-with-port",
                        f"host {host!r} carries a port; request.host is compared without one",
                        cond.operand.span,
                        help="compare destination.port for the port",
                    )
                    return None
        return model.Cmp(op, attr, model.canonical_operand(op, attr, value))


def _plain(lit: nodes.Literal_) -> model.Value:
    if isinstance(lit.value, tuple):
        return tuple(_plain(x) for x in lit.value)
    return lit.value
