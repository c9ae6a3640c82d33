"""The lint checks themselves (the registry, configuration and suppressions are in
:mod:`.lint`). Each check yields :class:`Diagnostic` values with the code's default
severity; :func:`.lint.lint` applies configured severities and suppressions."""

from __future__ import annotations

import difflib
import ipaddress
import itertools
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from . import model, nodes
from .conditions import Context, EvalError, compile_rule_condition
from .diagnostics import Diagnostic, Severity, Span, did_you_mean
from .identity import SpiffeIdError, parse_spiffe_id, peer_identity
from .lint import CHECKS, Inventory
from .paths import AmbiguousPathError, PathPattern, canonical_path, parse_path_pattern
from .request import host_name
from .space import build_space
from .tables import CompiledPolicy, DecisionTable, PathNode

# Past this many representative requests a condition is not proven unsatisfiable.
_CONDITION_CELL_LIMIT = 20_000


@dataclass
class LintContext:
    """Everything a check may look at."""

    policy: model.PolicySet
    files: tuple[nodes.PolicyFile, ...]
    texts: Mapping[str, str]
    compiled: CompiledPolicy
    inventory: Inventory | None
    enabled: frozenset[str]
    rules_by_id: dict[str, model.Rule] = field(default_factory=dict)
    nodes_by_span: dict[Span, tuple[nodes.Rule, nodes.PolicyFile]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rules_by_id = {r.rule_id: r for r in self.policy.rules()}
        for f in self.files:
            for block in f.services:
                for rule in block.rules:
                    self.nodes_by_span[rule.span] = (rule, f)

    def on(self, *codes: str) -> bool:
        return any(c in self.enabled for c in codes)


def finding(
    code: str,
    message: str,
    span: Span,
    *,
    suggestion: str | None = None,
    help: str | None = None,
) -> Diagnostic:
    """A diagnostic for a lint code, with the code's default severity and help."""
    check = CHECKS[code]
    return Diagnostic(
        code,
        message,
        span,
        check.severity or Severity.INFO,
        help or check.help,
        suggestion=suggestion,
    )


def run_checks(
    ctx: LintContext, progress: Callable[[int, int], None] | None = None
) -> Iterator[Diagnostic]:
    """Every enabled check over the whole policy set."""
    steps: list[Callable[[LintContext], Iterable[Diagnostic]]] = [
        _text_checks,
        _syntax_rule_checks,
        _source_checks,
        _service_checks,
        _condition_checks,
        _table_checks,
        _shadow_checks,
    ]
    for i, step in enumerate(steps):
        yield from step(ctx)
        if progress is not None:
            progress(i + 1, len(steps))


# --- confusable text -----------------------------------------------------------------

_BIDI_PATTERN = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
# Letters that render like ASCII ones (Unicode's confusables, the common subset).
_CONFUSABLES = {
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i",
    "ј": "j", "ѕ": "s", "ԁ": "d", "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w", "А": "A",
    "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C",
    "Т": "T", "Х": "X", "У": "Y", "α": "a", "ο": "o", "ν": "v", "ρ": "p", "τ": "t",
    "ι": "i", "κ": "k", "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I",
    "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    "ı": "i", "ℓ": "l", "‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-", "∕": "/",
    "⁄": "/", "．": ".", "։": ":", "\u00a0": " ", "\u200b": "", "\u200c": "", "\u200d": "",
    "\u2060": "", "\ufeff": "",
}  # fmt: skip


def _texts(f: nodes.PolicyFile) -> Iterator[tuple[str, Span, str]]:
    """Every id, name and string written in a file: (value, span, what it is)."""
    for ps in f.principal_sets:
        yield ps.name.value, ps.name.span, "principal set name"
        for term in ps.members:
            if term.value is not None:
                yield term.value, term.span, "caller"
    for block in f.services:
        yield block.name.value, block.name.span, "service name"
        for rule in block.rules:
            if rule.rule_id is not None:
                yield rule.rule_id.value, rule.rule_id.span, "rule id"
            for text in (*rule.paths, *rule.hosts):
                yield text.value, text.span, "pattern"
            for term in rule.sources:
                if term.value is not None:
                    yield term.value, term.span, "caller"
            for cond in (rule.when, rule.unless):
                if cond is not None:
                    yield from _condition_texts(cond)


def _condition_texts(cond: nodes.Condition) -> Iterator[tuple[str, Span, str]]:
    if isinstance(cond, nodes.And | nodes.Or):
        yield from _condition_texts(cond.left)
        yield from _condition_texts(cond.right)
    elif isinstance(cond, nodes.Not):
        yield from _condition_texts(cond.operand)
    else:
        for part in cond.attribute.parts:
            yield part, cond.attribute.span, "attribute"
        if isinstance(cond, nodes.Compare):
            yield from _literal_texts(cond.operand)


def _literal_texts(lit: nodes.Literal_) -> Iterator[tuple[str, Span, str]]:
    if isinstance(lit.value, tuple):
        for item in lit.value:
            yield from _literal_texts(item)
    elif isinstance(lit.value, str):
        yield lit.value, lit.span, "string"


def _script(ch: str) -> str | None:
    if not ch.isalpha():
        return None
    if ch.isascii():
        return "LATIN"
    name = unicodedata.name(ch, "")
    return name.split(" ", 1)[0] if name else None


def skeleton(text: str) -> str:
    """The text with every look-alike character replaced by the ASCII one it mimics."""
    out = []
    for ch in text:
        if ch in _CONFUSABLES:
            out.append(_CONFUSABLES[ch])
            continue
        folded = unicodedata.normalize("NFKC", ch)
        out.append(folded if folded != ch and folded.isascii() else ch)
    return "".join(out)


def _text_checks(ctx: LintContext) -> Iterator[Diagnostic]:
    if ctx.on("bidi-control"):
        for name, text in ctx.texts.items():
            for m in _BIDI_PATTERN.finditer(text):
                line_no = text.count("\n", 0, m.start()) + 1
                col = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
                ch = m.group()
                yield finding(
                    "bidi-control",
                    f"bidirectional control character U+{ord(ch):04X} "
                    f"({unicodedata.name(ch, 'unnamed')})",
                    Span(name, line_no, col, line_no, col + 1),
                )
    if not ctx.on("mixed-script", "confusable-text"):
        return
    for f in ctx.files:
        seen: set[tuple[str, Span]] = set()
        for value, span, what in _texts(f):
            if value.isascii() or (value, span) in seen:
                continue
            seen.add((value, span))
            fixed = skeleton(value)
            # Deceptive when it could pass for ASCII, or hides look-alikes among Latin
            # letters; text wholly in another script is just that script.
            latin = any(ch.isascii() and ch.isalpha() for ch in value)
            if fixed != value and (fixed.isascii() or latin):
                odd = next(ch for ch, ok in zip(value, fixed, strict=False) if ch != ok)
                yield finding(
                    "confusable-text",
                    f"{what} {value!r} contains {unicodedata.name(odd, repr(odd))}, "
                    "which looks like an ASCII character but is not",
                    span,
                    suggestion=f'"{fixed}"',
                )
                continue
            scripts = {s for s in map(_script, value) if s is not None}
            if len(scripts) > 1:
                yield finding(
                    "mixed-script",
                    f"{what} {value!r} mixes {', '.join(sorted(scripts)).lower()} letters",
                    span,
                )


# --- rule syntax: paths and ids ------------------------------------------------------


def _syntax_rule_checks(ctx: LintContext) -> Iterator[Diagnostic]:
    # The id the checker derived for each rule written without one.
    known_as = {r.span: r.rule_id for r in ctx.policy.rules()}
    for f in ctx.files:
        for block in f.services:
            for rule in block.rules:
                if ctx.on("unmatchable-path"):
                    for text in rule.paths:
                        problem = unmatchable_reason(text.value)
                        if problem is not None:
                            reason, fix = problem
                            yield finding(
                                "unmatchable-path",
                                f"path pattern {text.value} can never match: {reason}",
                                text.span,
                                suggestion=fix,
                            )
                if rule.rule_id is None and ctx.on("missing-id"):
                    yield finding(
                        "missing-id",
                        f"rule has no @id; it is known as {known_as[rule.span]!r}, which "
                        "changes when rules move",
                        rule.span,
                    )


@lru_cache(maxsize=1 << 16)
def unmatchable_reason(pattern_text: str) -> tuple[str, str | None] | None:
    """Why a path pattern matches no canonical path (and its canonical form), or None."""
    try:
        pattern = parse_path_pattern(pattern_text)
    except ValueError:
        return None  # the checker reports it
    problem: tuple[str, str | None] | None = None
    for instance in _instances(pattern):
        try:
            canonical = canonical_path(instance)
        except AmbiguousPathError as exc:
            why = f"a request path with it is ambiguous and always denied ({exc})"
            problem = problem or (why, None)
            continue
        if canonical == instance:
            return None
        why = f"requests are matched on their canonical path, and {instance} becomes {canonical}"
        problem = problem or (why, _canonical_pattern(pattern_text))
    return problem


def _instances(pattern: PathPattern) -> list[str]:
    """Concrete paths of the pattern's shape ({*} and a prefix's tail as a plain word;
    {**} as one more segment and as none)."""
    if pattern.prefix is not None:
        return [pattern.prefix + "x"]
    base = "/" + "/".join("x" if s is None else s for s in pattern.segments)
    if not pattern.rest:
        return [base]
    return ["/x" if base == "/" else base + "/x", base]


def _canonical_pattern(text: str) -> str | None:
    words = {"{*}": "\x01", "{**}": "\x02"}
    raw = text
    for word, mark in words.items():
        raw = raw.replace(word, mark)
    try:
        fixed = canonical_path(raw)
    except AmbiguousPathError:
        return None
    for word, mark in words.items():
        fixed = fixed.replace(mark, word)
    return fixed if fixed != text else None


# --- identities ----------------------------------------------------------------------


def _source_terms(f: nodes.PolicyFile) -> Iterator[nodes.SourceTerm]:
    for ps in f.principal_sets:
        yield from ps.members
    for block in f.services:
        for rule in block.rules:
            yield from rule.sources


def _source_checks(ctx: LintContext) -> Iterator[Diagnostic]:
    inventory = ctx.inventory or Inventory()
    known = set(ctx.policy.trust_domains) | set(inventory.trust_domains)
    for f in ctx.files:
        file_td = f.trust_domain.value if f.trust_domain is not None else None
        for term in _source_terms(f):
            value = term.value or ""
            td: str | None = None
            ns: str | None = None
            sa: str | None = None
            if term.kind == "id":
                if not value.startswith("spiffe://"):
                    head = value.lstrip("/").split("/")
                    if len(head) >= 3 and head[1] == "ns" and ("." in head[0] or head[0] in known):
                        if ctx.on("istio-style-principal"):
                            yield finding(
                                "istio-style-principal",
                                f'"{value}" is relative to the file\'s trust domain, so it '
                                f'means "spiffe://{file_td}/{value.lstrip("/")}"',
                                term.span,
                                suggestion=f'"spiffe://{value.lstrip("/")}"',
                            )
                        continue
                    value = f"spiffe://{file_td}/{value.lstrip('/')}"
                try:
                    ident = parse_spiffe_id(value)
                except SpiffeIdError:
                    continue
                td, ns, sa = ident.trust_domain, ident.namespace, ident.service_account
            elif term.kind == "namespace":
                td, ns = file_td, value
            elif term.kind == "sa":
                td, (ns, _, sa) = file_td, value.partition("/")
            elif term.kind == "trust_domain":
                td = value
            if td is None:
                continue
            if td not in known and ctx.on("unknown-trust-domain"):
                # Without an inventory, only a near miss of a declared trust domain is
                # reported: federated trust domains are normal, typos one letter off not.
                close = difflib.get_close_matches(td, sorted(known), n=1, cutoff=0.85)
                hint = close[0] if close else None
                if hint is not None or inventory.trust_domains:
                    yield finding(
                        "unknown-trust-domain",
                        f"trust domain {td!r} is not one of the known trust domains "
                        f"({', '.join(sorted(known)) or 'none declared'})",
                        term.span,
                        suggestion=f'"{hint}"' if hint else None,
                    )
                continue
            yield from _inventory_identity(ctx, inventory, term, ns, sa)


def _inventory_identity(
    ctx: LintContext,
    inventory: Inventory,
    term: nodes.SourceTerm,
    ns: str | None,
    sa: str | None,
) -> Iterator[Diagnostic]:
    if not inventory.namespaces or ns is None:
        return
    if ns not in inventory.namespaces:
        if ctx.on("unknown-namespace"):
            hint = did_you_mean(ns, inventory.namespaces)
            yield finding(
                "unknown-namespace",
                f"namespace {ns!r} is not in the inventory",
                term.span,
                suggestion=f'"{hint}"' if hint else None,
            )
        return
    accounts = inventory.namespaces[ns]
    if sa is not None and accounts and sa not in accounts and ctx.on("unknown-service-account"):
        hint = did_you_mean(sa, accounts)
        yield finding(
            "unknown-service-account",
            f"service account {sa!r} is not in namespace {ns!r} of the inventory",
            term.span,
            suggestion=f'"{hint}"' if hint else None,
        )


# --- services --------------------------------------------------------------------------


def _service_checks(ctx: LintContext) -> Iterator[Diagnostic]:
    inventory = ctx.inventory or Inventory()
    for f in ctx.files:
        for block in f.services:
            default = block.default
            if default is not None and default.value == "allow" and ctx.on("default-allow"):
                yield finding(
                    "default-allow",
                    f"service {block.name.value} allows every request that no deny matches",
                    default.span,
                )
            name = block.name.value
            known = inventory.services
            if known and name not in known and ctx.on("unknown-service"):
                yield finding(
                    "unknown-service",
                    f"service {name!r} is not in the inventory",
                    block.name.span,
                    suggestion=did_you_mean(name, known),
                )
    by_name: dict[str, list[model.Rule]] = defaultdict(list)
    for key, service in ctx.policy.services.items():
        by_name[key.name].extend(service.rules)
    for name, rules in sorted(by_name.items()):
        enforcing = [r for r in rules if not r.audit]
        if rules and not enforcing and ctx.on("audit-without-enforcement"):
            first = min(rules, key=lambda r: (r.span.file, r.span.line))
            yield finding(
                "audit-without-enforcement",
                f"service {name} has only audit rules; its default decides every request",
                first.span,
            )
        if ctx.on("jwt-without-issuer") and not any(_pins_issuer(r) for r in rules):
            for rule in rules:
                claims = sorted({a.dotted for a in _attributes(rule) if a.parts[0] == "jwt"})
                if claims:
                    yield finding(
                        "jwt-without-issuer",
                        f"rule {rule.rule_id} reads {', '.join(claims)}, but no rule of "
                        f"{name} requires a token issuer",
                        rule.span,
                    )
        if ctx.on("wide-rule"):
            allows = [r for r in enforcing if r.effect == "allow"]
            specific = [r for r in allows if r.methods is not None and r.paths is not None]
            for rule in allows:
                if rule.methods is None and _all_paths(rule) and len(specific) >= 2:
                    yield finding(
                        "wide-rule",
                        f"rule {rule.rule_id} allows every method on every path of {name}, "
                        f"where its {len(specific)} other allows name methods and paths",
                        rule.span,
                    )


def _all_paths(rule: model.Rule) -> bool:
    return rule.paths is None or any(
        (p.prefix == "/") or (not p.segments and p.rest) for p in rule.paths
    )


def _attributes(rule: model.Rule) -> Iterator[model.AttributeRef]:
    return (test.attribute for test in rule.tests())


def _pins_issuer(rule: model.Rule) -> bool:
    def pins(cond: model.Cond) -> bool:
        if isinstance(cond, model.AllOf):
            return any(pins(c) for c in cond.operands)
        if isinstance(cond, model.AnyOf):
            return all(pins(c) for c in cond.operands)
        return (
            isinstance(cond, model.Cmp)
            and cond.attribute.parts == ("jwt", "iss")
            and cond.op in ("==", "in")
        )

    return rule.when is not None and pins(rule.when)


# --- conditions ----------------------------------------------------------------------

# Attributes the decision tables index: a condition on them has a positive form.
_POSITIVE_FORMS = {
    ("source", "principal"): 'from "{v}"',
    ("source", "namespace"): 'from namespace "{v}"',
    ("source", "trust_domain"): 'from trust_domain "{v}"',
    ("request", "host"): 'host "{v}"',
    ("destination", "port"): "port {v}",
}
_LIST_CLAIMS = frozenset(
    {"aud", "groups", "roles", "scp", "amr", "permissions", "entitlements", "realm_roles"}
)
_ALWAYS_PRESENT = frozenset(
    {
        ("request", "method"),
        ("request", "path"),
        ("request", "host"),
        ("destination", "service"),
        ("destination", "port"),
    }
)


@dataclass(frozen=True, slots=True)
class _Atom:
    """A comparison as written, where it sits, and what guards it."""

    node: nodes.Compare
    negations: int  # `not`, `!=` and `unless` around it
    guarded: frozenset[tuple[str, ...]]


def _atoms(
    cond: nodes.Condition, negations: int, guarded: frozenset[tuple[str, ...]]
) -> Iterator[_Atom]:
    if isinstance(cond, nodes.And):
        yield from _atoms(cond.left, negations, guarded)
        yield from _atoms(cond.right, negations, guarded | _asserted(cond.left))
    elif isinstance(cond, nodes.Or):
        yield from _atoms(cond.left, negations, guarded)
        extra = _asserted(cond.left.operand) if isinstance(cond.left, nodes.Not) else frozenset()
        yield from _atoms(cond.right, negations, guarded | extra)
    elif isinstance(cond, nodes.Not):
        yield from _atoms(cond.operand, negations + 1, guarded)
    elif isinstance(cond, nodes.Compare):
        yield _Atom(cond, negations + (cond.op == "!="), guarded)


def _asserted(cond: nodes.Condition) -> frozenset[tuple[str, ...]]:
    """Attributes a condition proves present when it holds (its `has` conjuncts)."""
    if isinstance(cond, nodes.Has):
        return frozenset({_key(cond.attribute.parts)})
    if isinstance(cond, nodes.And):
        return _asserted(cond.left) | _asserted(cond.right)
    return frozenset()


def _key(parts: tuple[str, ...]) -> tuple[str, ...]:
    if parts[:2] == ("request", "headers") and len(parts) == 3:
        return ("request", "headers", parts[2].lower())
    return parts


def _condition_checks(ctx: LintContext) -> Iterator[Diagnostic]:
    contains_claims = {
        a.parts for r in ctx.policy.rules() for a in _contains_attributes(r) if a.parts[0] == "jwt"
    }
    proven: dict[tuple[object, ...], bool] = {}
    for key, service in ctx.policy.services.items():
        for rule in service.rules:
            if rule.when is None and rule.unless is None:
                continue
            located = ctx.nodes_by_span.get(rule.span)
            if located is not None:
                yield from _atom_checks(ctx, rule, located[0], contains_claims)
            if ctx.on("unsatisfiable-condition"):
                problem = _unsatisfiable(key.name, rule, proven)
                if problem is not None:
                    yield finding("unsatisfiable-condition", problem, rule.span)


def _contains_attributes(rule: model.Rule) -> Iterator[model.AttributeRef]:
    return (t.attribute for t in rule.tests() if isinstance(t, model.Cmp) and t.op == "contains")


def _atom_checks(
    ctx: LintContext,
    rule: model.Rule,
    node: nodes.Rule,
    contains_claims: set[tuple[str, ...]],
) -> Iterator[Diagnostic]:
    for cond, base, clause in ((node.when, 0, "when"), (node.unless, 1, "unless")):
        if cond is None:
            continue
        for atom in _atoms(cond, base, frozenset()):
            c = atom.node
            parts = _key(c.attribute.parts)
            dotted = c.attribute.dotted
            if (
                parts[0] == "jwt"
                and c.op in ("==", "!=", "in")
                and (parts[-1] in _LIST_CLAIMS or parts in contains_claims)
                and ctx.on("list-claim-equality")
            ):
                yield finding(
                    "list-claim-equality",
                    f"{dotted} holds a list, which `{c.op}` never accepts: the comparison "
                    "fails to evaluate",
                    c.span,
                )
            # Where a missing attribute makes the rule do the opposite of what it says:
            # a deny's `when` (it then matches) and an allow's `unless` (it then fails).
            surprising = (rule.effect == "deny") == (clause == "when")
            if surprising and parts not in atom.guarded and _may_be_missing(rule, parts):
                code = "claim-without-has" if parts[0] == "jwt" else "can-error"
                if ctx.on(code):
                    outcome = "matches" if rule.effect == "deny" else "does not allow"
                    yield finding(
                        code,
                        f"when a request has no {dotted}, this {clause} cannot be evaluated "
                        f"and the {rule.effect} {outcome}",
                        c.span,
                        suggestion=f"has {dotted} and ...",
                    )
            if rule.effect == "allow" and ctx.on("negative-allow"):
                positive = _positive_form(rule, atom)
                if positive is not None:
                    yield finding(
                        "negative-allow",
                        f"this allow is written as an exclusion (`{clause} ... {dotted} "
                        f"{c.op} ...`); a positive form exists",
                        c.span,
                        suggestion=positive,
                    )


def _positive_form(rule: model.Rule, atom: _Atom) -> str | None:
    """The positive way to write a negated comparison on an indexed attribute."""
    c = atom.node
    parts = _key(c.attribute.parts)
    value = c.operand.value
    values = [v.value for v in value] if isinstance(value, tuple) else [value]
    net_positive = atom.negations % 2 == 0 and c.op in ("==", "!=", "in")
    if parts == ("request", "method") and rule.methods is not None and not net_positive:
        kept = sorted(rule.methods - {str(v) for v in values})
        return ", ".join(kept) if kept else None
    template = _POSITIVE_FORMS.get((parts[0], parts[1]) if len(parts) == 2 else ("", ""))
    if template is None or atom.negations == 0 or not net_positive:
        return None
    if parts == ("request", "host"):  # as a rule's `host` must be written
        values = [host_name(str(v)) or v for v in values]
    return ", ".join(template.format(v=v) for v in values)


def _may_be_missing(rule: model.Rule, parts: tuple[str, ...]) -> bool:
    if parts in _ALWAYS_PRESENT:
        return False
    if parts[0] == "source" and parts[1] != "ip":
        kinds = {s.kind for s in rule.sources}
        if kinds & {"any", "unauthenticated", "cidr"}:
            return True
        if parts[1] in ("namespace", "service_account"):
            # Present only for workload IDs of the /ns/<ns>/sa/<sa> shape.
            return bool(kinds & {"authenticated", "trust_domain"}) or any(
                s.kind == "id" and _namespace_of(s.value) is None for s in rule.sources
            )
        return False
    return True


def _namespace_of(spiffe_id: str) -> str | None:
    ident = peer_identity(spiffe_id)
    return None if ident is None else ident.namespace


def _unsatisfiable(
    destination: str, rule: model.Rule, proven: dict[tuple[object, ...], bool]
) -> str | None:
    """A message when no request satisfies the rule's conditions (within its own
    methods, paths, callers, hosts and ports), else None."""
    attrs = list(_attributes(rule))
    independent = all(
        a.parts[0] == "jwt" or a.parts[:2] == ("request", "headers") or a.parts[0] == "connection"
        for a in attrs
    )
    cache_key: tuple[object, ...] = (rule.when, rule.unless) if independent else (id(rule),)
    satisfiable = proven.get(cache_key)
    if satisfiable is None:
        satisfiable = _satisfiable(destination, rule)
        proven[cache_key] = satisfiable
    if satisfiable:
        return None
    if rule.effect == "deny":
        return (
            f"the conditions of {rule.rule_id} can never hold: the deny matches only "
            "requests where they fail to evaluate"
        )
    return f"the conditions of {rule.rule_id} can never hold, so the rule never matches"


def _satisfiable(destination: str, rule: model.Rule) -> bool:
    condition = compile_rule_condition(rule)
    if condition is None:
        return True
    space = build_space(destination, [rule], rule.ports or ())
    requests = space.requests(lambda _port: [rule], rule)
    for request in itertools.islice(requests, _CONDITION_CELL_LIMIT):
        try:
            path = canonical_path(request.path)
        except AmbiguousPathError:
            continue
        ctx = Context(request, peer_identity(request.principal), path, request.host_name)
        try:
            if condition.holds(ctx):
                return True
        except EvalError:
            continue
    # Stopped at the limit with cells left: nothing is proven, so stay quiet.
    return next(requests, None) is not None


# --- decision tables: too broad --------------------------------------------------------


def _table_checks(ctx: LintContext) -> Iterator[Diagnostic]:
    if not ctx.on("allow-all", "wildcard-principal-rest"):
        return
    reported: set[tuple[str, str]] = set()
    for (name, _port), table in sorted(ctx.compiled.tables.items(), key=lambda kv: str(kv[0])):
        every_path = table.paths_any | table.path_root.rest | _root_prefix(table.path_root)
        open_callers = table.source_any | table.source_unauthenticated
        enforce_allow = sum_masks(
            1 << i for i, row in enumerate(table.rows) if row.effect == "allow" and not row.audit
        )
        allow_all = (
            enforce_allow
            & open_callers
            & table.methods_any
            & every_path
            & table.hosts_any
            & table.ports_any
        )
        wildcard = open_callers | table.source_authenticated
        for mask in table.source_trust_domains.values():
            wildcard |= mask
        rest = table.paths_any | _rest_masks(table.path_root)
        wide = enforce_allow & wildcard & rest & ~allow_all
        for code, mask in (("allow-all", allow_all), ("wildcard-principal-rest", wide)):
            if not ctx.on(code):
                continue
            for row_index in _bits(mask):
                row = table.rows[row_index]
                if row.condition is not None and code == "allow-all":
                    continue
                if (code, row.rule_id) in reported:
                    continue
                reported.add((code, row.rule_id))
                rule = ctx.rules_by_id[row.rule_id]
                yield _broad_finding(code, rule, name, table)


def _broad_finding(code: str, rule: model.Rule, name: str, table: DecisionTable) -> Diagnostic:
    who = ", ".join(s.describe() for s in rule.sources)
    if code == "allow-all":
        return finding(
            code, f"rule {rule.rule_id} allows {who} to make any request to {name}", rule.span
        )
    paths = ", ".join(p.text for p in rule.paths) if rule.paths else "every path"
    return finding(
        code, f"rule {rule.rule_id} allows {who} on {paths} of {table.destination}", rule.span
    )


def _root_prefix(root: PathNode) -> int:
    return sum_masks(mask for prefix, mask in root.prefixes if prefix == "")


def _rest_masks(root: PathNode) -> int:
    found = 0
    stack = [root]
    while stack:
        node = stack.pop()
        found |= node.rest
        found |= sum_masks(mask for _, mask in node.prefixes)
        stack.extend(node.children.values())
        if node.one is not None:
            stack.append(node.one)
    return found


def sum_masks(masks: Iterable[int]) -> int:
    """The union of bitmasks."""
    out = 0
    for m in masks:
        out |= m
    return out


def _bits(mask: int) -> Iterator[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


# --- shadowed rules ------------------------------------------------------------------


def _shadow_checks(ctx: LintContext) -> Iterator[Diagnostic]:
    codes = ("shadowed-allow", "overridden-allow", "shadowed-deny", "duplicate-rule")
    if not ctx.on(*codes):
        return
    reported: set[tuple[str, str]] = set()
    for name, port in sorted(ctx.compiled.tables, key=str):
        services = ctx.policy.policies_for(name, port)
        rules = [r for s in services for r in s.rules if not r.audit]
        # The ports each rule holds on: a block bound to a port holds there only, so a
        # rule of it covers another on that port alone.
        ports = {id(r): _rule_ports(s.key.port, r) for s in services for r in s.rules}
        order = {
            id(r): i for i, r in enumerate(sorted(rules, key=lambda r: (r.span.file, r.span.line)))
        }
        index = _CoverIndex(rules)
        for a in rules:
            for b in index.candidates(a):
                # An allow never hides a deny; skip those pairs before the cover test.
                if b is a or (b.effect == "allow" and a.effect == "deny") or not covers(b, a):
                    continue
                if not _ports_cover(ports[id(b)], ports[id(a)]):
                    continue
                same = covers(a, b) and a.effect == b.effect and ports[id(a)] == ports[id(b)]
                if same:
                    if order[id(a)] < order[id(b)]:
                        continue  # report the later copy only
                    code = "duplicate-rule"
                    message = f"rule {a.rule_id} means the same as {b.rule_id} ({b.span})"
                elif a.effect == "allow" and b.effect == "allow":
                    code = "shadowed-allow"
                    message = (
                        f"every request rule {a.rule_id} allows is already allowed by "
                        f"{b.rule_id} ({b.span})"
                    )
                elif a.effect == "allow":
                    code = "overridden-allow"
                    message = (
                        f"rule {a.rule_id} never allows anything: deny rule {b.rule_id} "
                        f"({b.span}) matches every request it matches"
                    )
                elif b.effect == "deny":
                    code = "shadowed-deny"
                    message = (
                        f"every request rule {a.rule_id} denies is already denied by "
                        f"{b.rule_id} ({b.span})"
                    )
                else:
                    continue
                if (code, a.rule_id) in reported or not ctx.on(code):
                    continue
                reported.add((code, a.rule_id))
                yield finding(code, message, a.span)


def _rule_ports(block_port: int | None, rule: model.Rule) -> frozenset[int] | None:
    """The ports a rule holds on (None: every port)."""
    if block_port is None:
        return rule.ports
    return frozenset({block_port}) if rule.ports is None else rule.ports & {block_port}


def _ports_cover(outer: frozenset[int] | None, inner: frozenset[int] | None) -> bool:
    return outer is None or (inner is not None and inner <= outer)


class _CoverIndex:
    """Rules by the literal head of their path patterns (the segments before the first
    wildcard), so a rule is compared only with rules that could cover it: a pattern
    covers another only if its head is a prefix of the other's. Among those, only rules
    holding a source that admits the rule's first source are kept (see
    :func:`_covering_source_keys`)."""

    def __init__(self, rules: list[model.Rule]):
        self.wild: list[model.Rule] = []
        self.by_head: dict[tuple[str, ...], list[model.Rule]] = defaultdict(list)
        self._cache: dict[tuple[str, ...] | None, list[model.Rule]] = {}
        self.by_source: dict[tuple[str, str], set[int]] = defaultdict(set)
        for rule in rules:
            for t in rule.sources:
                self.by_source[_source_key(t)].add(id(rule))
            if rule.paths is None or any(p.prefix is not None for p in rule.paths):
                self.wild.append(rule)
                continue
            for head in {_head(p) for p in rule.paths}:
                self.by_head[head].append(rule)

    def candidates(self, rule: model.Rule) -> list[model.Rule]:
        first = rule.paths[0] if rule.paths else None
        head = None if first is None or first.prefix is not None else _head(first)
        found = self._cache.get(head)
        if found is None:
            heads = [()] if head is None else [head[:k] for k in range(len(head) + 1)]
            found = list(self.wild)
            for h in heads:
                found.extend(self.by_head.get(h, ()))
            found = list({id(r): r for r in found}.values())
            self._cache[head] = found
        if not rule.sources:
            return found
        admitting: set[int] = set()
        for key in _covering_source_keys(rule.sources[0]):
            admitting |= self.by_source.get(key, set())
        return [r for r in found if id(r) in admitting]


def _source_key(t: model.Source) -> tuple[str, str]:
    # Every network is a candidate to hold every other: subnets are tested later.
    return (t.kind, "" if t.kind == "cidr" else t.value)


def _covering_source_keys(s: model.Source) -> list[tuple[str, str]]:
    """The keys of every source ``t`` for which :func:`source_covers` (t, s) can hold."""
    keys = [("any", ""), _source_key(s)]
    if s.kind in ("authenticated", "id", "namespace", "trust_domain"):
        keys.append(("authenticated", ""))
    if s.kind == "id":
        ident = peer_identity(s.value)
        if ident is not None:
            keys += [("trust_domain", ident.trust_domain), ("namespace", ident.namespace_key)]
    elif s.kind == "namespace":
        keys.append(("trust_domain", s.value.split("/", 1)[0]))
    return keys


def _head(pattern: PathPattern) -> tuple[str, ...]:
    out: list[str] = []
    for segment in pattern.segments:
        if segment is None:
            break
        out.append(segment)
    return tuple(out)


def covers(b: model.Rule, a: model.Rule) -> bool:
    """Does rule ``b`` match every request rule ``a`` matches? (Structural: exact for
    the indexed parts; conditions must be absent or written alike.)"""
    if b.methods is not None and (a.methods is None or not a.methods <= b.methods):
        return False
    if b.ports is not None and (a.ports is None or not a.ports <= b.ports):
        return False
    if b.paths is not None and (
        a.paths is None or not all(any(path_covers(q, p) for q in b.paths) for p in a.paths)
    ):
        return False
    if b.hosts is not None and (
        a.hosts is None or not all(any(_host_covers(q, p) for q in b.hosts) for p in a.hosts)
    ):
        return False
    if not all(_source_covered(b, a, s) for s in a.sources):
        return False
    return _conditions_cover(b, a)


def _source_covered(b: model.Rule, a: model.Rule, s: model.Source) -> bool:
    if s.kind == "cidr" and a.effect == "deny" and b.effect != "deny":
        # A deny's `ip` source also matches a source IP that is not an address; an
        # allow's never does: only `any` is sure to match there too.
        return any(t.kind == "any" for t in b.sources)
    return any(source_covers(t, s) for t in b.sources)


def _conditions_cover(b: model.Rule, a: model.Rule) -> bool:
    if a.effect == "deny":
        # A deny also matches where its condition fails to evaluate. Another deny with an
        # identical (or absent) condition matches there too; an allow fails there, so only
        # an allow without any condition is sure to match.
        if b.effect != "deny":
            return b.when is None and b.unless is None
        return (b.when is None or b.when == a.when) and (b.unless is None or b.unless == a.unless)
    when_ok = (
        b.when is None
        or b.when == a.when
        or (
            isinstance(a.when, model.AllOf)
            and all(
                c in a.when.operands
                for c in (b.when.operands if isinstance(b.when, model.AllOf) else (b.when,))
            )
        )
    )
    unless_ok = (
        b.unless is None
        or b.unless == a.unless
        or (isinstance(a.unless, model.AnyOf) and b.unless in a.unless.operands)
    )
    return when_ok and unless_ok


def _host_covers(q: model.HostPattern, p: model.HostPattern) -> bool:
    if q.text == p.text:
        return True
    return q.text.startswith("*.") and p.text.endswith(q.text[1:])


def source_covers(t: model.Source, s: model.Source) -> bool:
    """Does every caller ``s`` admits also meet ``t``?"""
    if t.kind == "any" or t == s:
        return True
    if t.kind == "authenticated":
        return s.kind in ("authenticated", "id", "namespace", "trust_domain")
    if t.kind == "cidr" and s.kind == "cidr":
        inner, outer = ipaddress.ip_network(s.value), ipaddress.ip_network(t.value)
        return inner.version == outer.version and inner.subnet_of(outer)  # type: ignore[arg-type]
    if s.kind not in ("id", "namespace"):
        return False
    if s.kind == "id":
        ident = peer_identity(s.value)
        if ident is None:
            return False
        if t.kind == "trust_domain":
            return ident.trust_domain == t.value
        return t.kind == "namespace" and ident.namespace_key == t.value
    # s is a namespace "td/ns"
    return t.kind == "trust_domain" and s.value.split("/", 1)[0] == t.value


def path_covers(q: PathPattern, p: PathPattern) -> bool:
    """Does pattern ``q`` match every path pattern ``p`` matches?"""
    if q.prefix is not None:
        if p.prefix is not None:
            return p.prefix.startswith(q.prefix)
        fixed: list[str] = []
        for segment in p.segments:
            if segment is None:
                break
            fixed.append(segment)
        # The text every path of p starts with: its literal head, and the slash before
        # a {*} that follows it.
        text = "/" + "/".join(fixed)
        if fixed and len(fixed) < len(p.segments):
            text += "/"
        return text.startswith(q.prefix)
    if p.prefix is not None:
        return not q.segments and q.rest
    if q.rest:
        if len(p.segments) < len(q.segments):
            return False
    elif p.rest or len(p.segments) != len(q.segments):
        return False
    # `{*}` is one non-empty segment: it covers another `{*}` or a literal, never the
    # empty last segment of a trailing slash (`/items/`, `/`).
    return all(
        (want is None and got != "") or want == got
        for want, got in zip(q.segments, p.segments, strict=False)
    )
