"""``meshward lint``: checks on the checked model and the compiled decision tables.

Every check has a stable code, a default severity, a one-line summary and a help text
with an example fix (:data:`CHECKS`). Severities are configurable per code
(:class:`LintConfig`); a finding is silenced in the source with a comment that names
the code and says why::

    # meshward: ignore[default-allow] status pages are public by design
    service status.web { default allow ... }

A suppression applies to the line it is on (or, alone on its line, to the next line)
and to the whole rule that line belongs to. A suppression without a reason, naming an
unknown code, or silencing nothing is itself a finding.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import nodes
from .compiler import compile_policy
from .diagnostics import Diagnostic, Severity, Span, did_you_mean
from .gc_pause import paused_gc
from .loader import LoadedPolicy


@dataclass(frozen=True, slots=True)
class Check:
    """What a lint code means: its area, default severity, summary and fix."""

    code: str
    area: str
    severity: Severity | None  # None: off unless configured
    summary: str
    help: str


def _checks(*items: Check) -> dict[str, Check]:
    return {c.code: c for c in items}


E, W, N = Severity.ERROR, Severity.WARNING, Severity.INFO

CHECKS: dict[str, Check] = _checks(
    # never matches
    Check(
        "unmatchable-path",
        "never matches",
        E,
        "a path pattern that no canonical request path can match",
        "requests are matched on their canonical path (no '//', '.', '..', no escaped "
        "unreserved bytes; an encoded '/' is always denied): write /api/v1/items "
        "instead of /api//v1/./items",
    ),
    Check(
        "unsatisfiable-condition",
        "never matches",
        E,
        "a when/unless condition that no request can satisfy",
        'remove the contradiction: `when jwt.tier == "gold" and jwt.tier == "silver"` '
        'never holds; did you mean `jwt.tier in ["gold", "silver"]`?',
    ),
    # shadowed
    Check(
        "shadowed-allow",
        "shadowed",
        W,
        "an allow rule whose every request another allow rule already allows",
        "delete the narrower rule, or narrow the wider one: `allow GET /items/{*}` is "
        "redundant next to `allow GET /items/{**}` from the same callers",
    ),
    Check(
        "overridden-allow",
        "shadowed",
        W,
        "an allow rule that a deny rule overrides for every request it matches",
        "the allow can never grant anything: narrow the deny (e.g. add `unless "
        'source.namespace == "ops"`) or delete the allow',
    ),
    Check(
        "shadowed-deny",
        "shadowed",
        W,
        "a deny rule whose every request another deny rule already denies",
        "delete the narrower deny: `deny * /admin/users` adds nothing next to `deny * /admin/{**}`",
    ),
    Check(
        "duplicate-rule",
        "shadowed",
        W,
        "a rule that means exactly the same as another rule",
        "delete one copy (rule ids aside, both match the same requests the same way)",
    ),
    # too broad
    Check(
        "allow-all",
        "too broad",
        W,
        "an allow from any caller (or unauthenticated callers) to every method and path",
        "name the callers and the operations: `allow GET /public/{**} from any` "
        "instead of `allow * from any`",
    ),
    Check(
        "wildcard-principal-rest",
        "too broad",
        W,
        "an allow with a wildcard caller (any, authenticated, a whole trust domain) on a "
        "{**} or unrestricted path",
        'name the callers: `from sa "default/web"` or `from namespace "web"` instead of '
        "`from authenticated`, or list the paths",
    ),
    Check(
        "default-allow",
        "too broad",
        W,
        "a service whose default is allow: every request no deny matches passes",
        "prefer `default deny` (the default) and allow what callers need; if the service "
        "is public by design, say so with `# meshward: ignore[default-allow] reason`",
    ),
    Check(
        "wide-rule",
        "too broad",
        N,
        "an allow of every method on every path where the service's other allows are specific",
        "list the methods and paths this caller needs, as the other rules of the "
        "service do: `allow GET, POST /orders/{**} from ...`",
    ),
    # identity mistakes
    Check(
        "unknown-trust-domain",
        "identity",
        W,
        "a caller outside every known trust domain",
        "fix the trust domain's spelling, or list it in the inventory's trust_domains "
        "when it is a federated one",
    ),
    Check(
        "istio-style-principal",
        "identity",
        W,
        "a relative ID that looks like an Istio principal written without spiffe://",
        'write "spiffe://cluster.local/ns/default/sa/web" (or "ns/default/sa/web", '
        'relative to the file\'s trust domain) instead of "cluster.local/ns/default/sa/web"',
    ),
    Check(
        "unknown-namespace",
        "identity",
        W,
        "a namespace that the inventory does not list",
        "fix the spelling, or add the namespace to the inventory file",
    ),
    Check(
        "unknown-service-account",
        "identity",
        W,
        "a service account that the inventory does not list for its namespace",
        "fix the spelling, or add the account under its namespace in the inventory file",
    ),
    Check(
        "unknown-service",
        "identity",
        W,
        "a destination service that the inventory does not list",
        "fix the service name, or add it to the inventory's services",
    ),
    # claims
    Check(
        "jwt-without-issuer",
        "claims",
        None,
        "a JWT claim condition on a service where no rule pins the token issuer",
        'add `jwt.iss == "https://issuer.example"` to the condition, so a token from '
        "another trusted issuer cannot carry the claim",
    ),
    Check(
        "claim-without-has",
        "claims",
        W,
        "an optional claim read where its absence makes the rule do the opposite of what it says",
        "guard it: `unless has jwt.banned and jwt.banned == true`; a missing claim is "
        "an evaluation error, which makes a deny match and an allow fail",
    ),
    Check(
        "list-claim-equality",
        "claims",
        W,
        "a list claim compared with == or in",
        "a list never equals a string (and the comparison fails): write `jwt.groups "
        'contains "admins"` instead of `jwt.groups == "admins"`',
    ),
    # hygiene
    Check(
        "missing-id",
        "hygiene",
        N,
        "a rule without @id: its id changes when rules move",
        'add `@id("service-purpose")` above the rule; ids travel into decisions, logs, '
        "lint findings and diffs",
    ),
    Check(
        "negative-allow",
        "hygiene",
        N,
        "an allow built on a negative match where a positive form exists",
        'write the positive form: `allow GET ... from namespace "web"` instead of '
        '`allow GET ... from authenticated unless source.namespace != "web"`',
    ),
    Check(
        "audit-without-enforcement",
        "hygiene",
        W,
        "an audit rule on a service that has no enforcing rule",
        "audit rules only report; the service decides by its default alone. Add the "
        "enforcing rules, or drop `audit` once the dry run is over",
    ),
    Check(
        "can-error",
        "hygiene",
        W,
        "a condition that fails to evaluate for some requests, flipping what the rule says",
        'guard the attribute: `when has request.headers["x-tenant"] and '
        'request.headers["x-tenant"] == "a"`',
    ),
    # confusable text
    Check(
        "bidi-control",
        "confusable text",
        E,
        "a bidirectional control character: the text reads differently than it runs",
        "delete the invisible character (U+202A-U+202E, U+2066-U+2069, U+200E/F, U+061C)",
    ),
    Check(
        "mixed-script",
        "confusable text",
        W,
        "an id, name or string mixing letters of several scripts",
        "retype it in one script; a Cyrillic 'а' in \"pаyments\" is not a Latin 'a'",
    ),
    Check(
        "confusable-text",
        "confusable text",
        W,
        "a character that looks like an ASCII one but is not",
        "retype it with the ASCII character the suggestion shows",
    ),
    # suppressions
    Check(
        "bad-suppression",
        "suppressions",
        E,
        "a suppression comment without a reason or naming an unknown code",
        "write `# meshward: ignore[CODE] why this is fine`",
    ),
    Check(
        "unused-suppression",
        "suppressions",
        W,
        "a suppression comment that silences nothing",
        "delete the comment: the finding it was written for is gone",
    ),
)


def describe(code: str) -> Check:
    """The check behind a code; checker errors (which stop linting) get a generic one."""
    check = CHECKS.get(code)
    if check is not None:
        return check
    return Check(
        code,
        "policy errors",
        E,
        f"the policy does not check ({code})",
        "fix the error: nothing is linted, compiled or served until the policy checks",
    )


# --- configuration -------------------------------------------------------------------


class LintConfigError(ValueError):
    """A lint configuration or inventory with a mistake; the message says which."""


@dataclass(frozen=True, slots=True)
class Inventory:
    """What the mesh really has: trust domains, namespaces with their service
    accounts, and services. Identity checks compare policies against it."""

    trust_domains: frozenset[str] = frozenset()
    namespaces: Mapping[str, frozenset[str]] = field(default_factory=dict)
    services: frozenset[str] = frozenset()

    @classmethod
    def from_json(cls, doc: Any) -> Inventory:
        """From ``{"trust_domains": [...], "namespaces": {ns: [sa, ...]}, "services":
        [...]}`` (every key optional; a namespace may map to null: accounts unknown)."""
        if not isinstance(doc, dict):
            raise LintConfigError(
                "an inventory is a mapping with trust_domains, namespaces, services"
            )
        unknown = set(doc) - {"trust_domains", "namespaces", "services"}
        if unknown:
            raise LintConfigError(f"unknown inventory keys: {', '.join(sorted(unknown))}")
        namespaces = doc.get("namespaces") or {}
        if not isinstance(namespaces, dict):
            raise LintConfigError("inventory `namespaces` maps each namespace to its accounts")
        return cls(
            trust_domains=frozenset(_strings(doc.get("trust_domains"), "trust_domains")),
            namespaces={
                str(ns): frozenset(_strings(accounts, f"namespaces.{ns}"))
                for ns, accounts in namespaces.items()
            },
            services=frozenset(_strings(doc.get("services"), "services")),
        )


def _strings(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise LintConfigError(f"inventory `{what}` is a list of strings")
    return list(value)


_SEVERITY_WORDS = {"error": E, "warning": W, "info": N, "off": None}


@dataclass(frozen=True, slots=True)
class LintConfig:
    """Severity overrides per code (None: off) and the optional inventory."""

    severities: Mapping[str, Severity | None] = field(default_factory=dict)
    inventory: Inventory | None = None

    def severity(self, code: str) -> Severity | None:
        if code in self.severities:
            return self.severities[code]
        return describe(code).severity

    @classmethod
    def from_table(cls, table: Mapping[str, Any], inventory: Inventory | None = None) -> LintConfig:
        """From the ``[tool.meshward.lint]`` (pyproject.toml) or ``[lint]`` (meshward.toml)
        table: ``severity = {code = "error" | "warning" | "info" | "off"}``. (The
        table's ``inventory`` path is read by the caller, which knows where it is.)"""
        unknown = set(table) - {"severity", "inventory"}
        if unknown:
            raise LintConfigError(f"unknown lint settings: {', '.join(sorted(unknown))}")
        raw = table.get("severity") or {}
        if not isinstance(raw, Mapping):
            raise LintConfigError('`severity` maps codes to "error", "warning", "info" or "off"')
        severities: dict[str, Severity | None] = {}
        for code, word in raw.items():
            if code not in CHECKS:
                hint = did_you_mean(code, CHECKS)
                raise LintConfigError(
                    f"unknown lint code {code!r}" + (f"; did you mean {hint!r}?" if hint else "")
                )
            if word not in _SEVERITY_WORDS:
                raise LintConfigError(
                    f'severity of {code} is {word!r}; use "error", "warning", "info" or "off"'
                )
            severities[code] = _SEVERITY_WORDS[word]
        return cls(severities, inventory)


# --- running -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LintResult:
    """Findings in file order, and how many suppressions silenced one."""

    findings: tuple[Diagnostic, ...]
    suppressed: int


_RANK = {N: 0, W: 1, E: 2}


def severity_rank(severity: Severity) -> int:
    """Order of severities: info < warning < error."""
    return _RANK[severity]


@paused_gc()
def lint(
    loaded: LoadedPolicy,
    config: LintConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> LintResult:
    """Run every enabled check on a loaded policy set."""
    from .lint_checks import LintContext, run_checks

    config = config or LintConfig()
    context = LintContext(
        loaded.policy,
        loaded.files,
        loaded.sources.texts,
        compile_policy(loaded.policy),
        config.inventory,
        frozenset(code for code in CHECKS if config.severity(code) is not None),
    )
    raw = list(run_checks(context, progress))
    findings = []
    for d in raw:
        severity = config.severity(d.code)
        if severity is not None:
            findings.append(_with_severity(d, severity))
    return apply_suppressions(findings, loaded.files, config)


def _with_severity(d: Diagnostic, severity: Severity) -> Diagnostic:
    if d.severity == severity:
        return d
    return Diagnostic(d.code, d.message, d.span, severity, d.help, d.expected, d.suggestion)


# --- suppressions --------------------------------------------------------------------

_SUPPRESSION = re.compile(r"#\s*meshward:\s*ignore\b(?:\[([^\]]*)\])?\s*(.*)")


@dataclass(frozen=True, slots=True)
class Suppression:
    """A ``# meshward: ignore[CODE] reason`` comment and the lines it covers."""

    codes: tuple[str, ...]
    reason: str
    span: Span
    first_line: int
    last_line: int


def suppressions(files: Iterable[nodes.PolicyFile]) -> tuple[list[Suppression], list[Diagnostic]]:
    """The suppression comments of some files, and the findings about malformed ones."""
    found: list[Suppression] = []
    problems: list[Diagnostic] = []
    for f in files:
        rule_lines = [(r.span.line, r.span.end_line) for s in f.services for r in s.rules]
        code_lines = _code_lines(f)
        for comment in f.comments:
            m = _SUPPRESSION.match(comment.text)
            if m is None:
                continue
            codes = tuple(c.strip() for c in (m.group(1) or "").split(",") if c.strip())
            reason = m.group(2).strip()
            check = CHECKS["bad-suppression"]
            if not codes:
                problems.append(
                    Diagnostic(
                        check.code,
                        "a suppression names the codes it silences",
                        comment.span,
                        check.severity or E,
                        check.help,
                    )
                )
                continue
            bad = [c for c in codes if c not in CHECKS]
            for code in bad:
                hint = did_you_mean(code, CHECKS)
                problems.append(
                    Diagnostic(
                        check.code,
                        f"unknown lint code {code!r} in a suppression",
                        comment.span,
                        check.severity or E,
                        check.help,
                        suggestion=hint,
                    )
                )
            if not reason:
                problems.append(
                    Diagnostic(
                        check.code,
                        "a suppression needs a reason: say why the finding is fine here",
                        comment.span,
                        check.severity or E,
                        f"write `# meshward: ignore[{', '.join(codes)}] why this is fine`",
                    )
                )
            if bad or not reason:
                continue
            line = comment.span.line
            if line not in code_lines:  # alone on its line: it covers the next code line
                line = min((x for x in code_lines if x > line), default=line)
            first, last = line, line
            for start, end in rule_lines:
                if start <= line <= end:
                    first, last = start, end
                    break
            found.append(Suppression(codes, reason, comment.span, first, last))
    return found, problems


def _code_lines(f: nodes.PolicyFile) -> set[int]:
    """Lines holding code (not only a comment): where statements and rules start and end."""
    lines: set[int] = set()
    if f.trust_domain is not None:
        lines.add(f.trust_domain.span.line)
    for ps in f.principal_sets:
        lines.update(range(ps.span.line, ps.span.end_line + 1))
    for s in f.services:
        lines.update((s.span.line, s.span.end_line))
        if s.default is not None:
            lines.add(s.default.span.line)
        for r in s.rules:
            lines.update(range(r.span.line, r.span.end_line + 1))
    return lines


def apply_suppressions(
    findings: Iterable[Diagnostic], files: Iterable[nodes.PolicyFile], config: LintConfig
) -> LintResult:
    """Drop suppressed findings; add findings for malformed and unused suppressions."""
    files = list(files)
    found, problems = suppressions(files)
    by_file: dict[str, list[Suppression]] = {}
    for s in found:
        by_file.setdefault(s.span.file, []).append(s)
    used: set[tuple[int, str]] = set()
    kept: list[Diagnostic] = []
    suppressed = 0
    for d in findings:
        match = _matching(d, by_file.get(d.span.file, ()))
        if match is None:
            kept.append(d)
        else:
            used.add((id(match), d.code))
            suppressed += 1
    unused_severity = config.severity("unused-suppression")
    for s in found:
        for code in s.codes:
            if (
                (id(s), code) not in used
                and unused_severity is not None
                and config.severity(code) is not None
            ):
                kept.append(
                    Diagnostic(
                        "unused-suppression",
                        f"the suppression of {code} silences nothing",
                        s.span,
                        unused_severity,
                        CHECKS["unused-suppression"].help,
                    )
                )
    bad_severity = config.severity("bad-suppression")
    if bad_severity is not None:
        kept.extend(_with_severity(p, bad_severity) for p in problems)
    kept.sort(key=lambda d: (d.span.file, d.span.line, d.span.column, d.code))
    return LintResult(tuple(kept), suppressed)


def _matching(d: Diagnostic, candidates: Iterable[Suppression]) -> Suppression | None:
    for s in candidates:
        if d.code in s.codes and s.first_line <= d.span.line <= s.last_line:
            return s
    return None
