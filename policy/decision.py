"""What the evaluator answers: allowed or not, which rules decided, and why.

The answer types are named tuples: some are built on every request, and a named tuple
costs a fraction of a frozen dataclass to build.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple


class AuditOutcome(NamedTuple):
    """A dry-run rule that matched: what it would have done."""

    rule_id: str
    effect: Literal["allow", "deny"]

    def __str__(self) -> str:
        return f"would {self.effect} ({self.rule_id})"


class RuleError(NamedTuple):
    """A rule whose conditions could not be evaluated (it failed closed)."""

    rule_id: str
    message: str


class Decision(NamedTuple):
    """The answer. ``rule_ids`` name the rules that decided (sorted; empty when the
    service default or the absence of any policy decided); ``reason`` is a stable string."""

    allowed: bool
    rule_ids: tuple[str, ...]
    reason: str
    audit: tuple[AuditOutcome, ...] = ()
    errors: tuple[RuleError, ...] = ()

    @property
    def rule_id(self) -> str | None:
        """The first deciding rule, for headers and logs that carry one id."""
        return self.rule_ids[0] if self.rule_ids else None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "allowed": self.allowed,
            "decision": "allow" if self.allowed else "deny",
            "rules": list(self.rule_ids),
            "reason": self.reason,
        }
        if self.audit:
            out["audit"] = [{"rule": a.rule_id, "would": a.effect} for a in self.audit]
        if self.errors:
            out["errors"] = [{"rule": e.rule_id, "error": e.message} for e in self.errors]
        return out


@dataclass(slots=True)
class Matches:
    """The rules that matched one request, collected in any order, and how they combine:
    deny wins, then allow, then the default. The decision tables and the reference
    interpreter both end here, so the combining semantics live in one place."""

    denies: list[str] = field(default_factory=list)
    allows: list[str] = field(default_factory=list)
    audit: list[AuditOutcome] = field(default_factory=list)
    errors: list[RuleError] = field(default_factory=list)

    def add(self, rule_id: str, effect: Literal["allow", "deny"], audit: bool) -> None:
        if audit:
            self.audit.append(AuditOutcome(rule_id, effect))
        elif effect == "deny":
            self.denies.append(rule_id)
        else:
            self.allows.append(rule_id)

    def decision(self, destination: str, default: Literal["allow", "deny"]) -> Decision:
        audit = tuple(sorted(self.audit, key=_rule_of)) if self.audit else ()
        errors = tuple(sorted(self.errors, key=_rule_of)) if self.errors else ()
        if self.denies:
            return by_rules(False, tuple(sorted(self.denies)), audit, errors)
        if self.allows:
            return by_rules(True, tuple(sorted(self.allows)), audit, errors)
        if default == "allow":
            return Decision(True, (), f"allowed by the default of {destination}", audit, errors)
        return Decision(False, (), f"denied: no rule of {destination} allows", audit, errors)


def _rule_of(item: AuditOutcome | RuleError) -> str:
    return item.rule_id


def by_rules(
    allowed: bool,
    rule_ids: tuple[str, ...],
    audit: tuple[AuditOutcome, ...] = (),
    errors: tuple[RuleError, ...] = (),
) -> Decision:
    """The decision of the rules that decided (``rule_ids``: sorted, not empty; all deny
    when not ``allowed``, else all allow)."""
    verb = "allowed" if allowed else "denied"
    return Decision(allowed, rule_ids, f"{verb} by rule {rule_ids[0]}", audit, errors)


def no_policy(destination: str) -> Decision:
    return Decision(False, (), f"denied: no policy for destination {destination}")


def unknown_port(destination: str) -> Decision:
    return Decision(
        False,
        (),
        f"denied: the destination port is unknown, and {destination} has deny rules for "
        "some ports only",
    )


def ambiguous_path(reason: str) -> Decision:
    return Decision(False, (), f"denied: ambiguous path ({reason})")
