"""Compare two versions of a policy set: which requests change their decision.

For every destination the result says unchanged, narrower (some requests allowed
before are denied now), wider (some denied before are allowed now) or both, and lists
concrete requests that flip, grouped by the rules that decided them before and after.

The requests are not sampled. A rule that is the same in both versions (same effect,
source, request pattern and conditions, whatever its id or position) matches the same
requests in both, so a decision can only flip where a rule that changed matches — or
everywhere, when a destination's default changed. Within those regions the request
space is cut into cells by every atom of both versions (:mod:`.space`), and one request
per cell is decided by the real evaluator under each version.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from . import model
from .compiler import compile_policy
from .evaluator import evaluate
from .gc_pause import paused_gc
from .request import Request
from .space import build_space
from .tables import CompiledPolicy

Status = Literal["unchanged", "narrower", "wider", "both"]
Direction = Literal["wider", "narrower"]
DEFAULT_CELL_LIMIT = 2_000_000


@dataclass(frozen=True, slots=True)
class Change:
    """One kind of flip: every request in it was decided by ``before`` and is now
    decided by ``after`` (rule ids; empty means the default or no policy decided)."""

    direction: Direction
    before_rules: tuple[str, ...]
    before_reason: str
    after_rules: tuple[str, ...]
    after_reason: str
    examples: tuple[Request, ...]
    count: int  # cells of the request space that flip this way

    def to_json(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "before": {
                "allowed": self.direction == "narrower",
                "rules": list(self.before_rules),
                "reason": self.before_reason,
            },
            "after": {
                "allowed": self.direction == "wider",
                "rules": list(self.after_rules),
                "reason": self.after_reason,
            },
            "cells": self.count,
            "examples": [r.to_json() for r in self.examples],
        }


@dataclass(frozen=True, slots=True)
class DestinationDiff:
    """How one destination (a service name, on all its ports) changed."""

    destination: str
    status: Status
    changes: tuple[Change, ...]
    added_rules: tuple[str, ...]
    removed_rules: tuple[str, ...]
    requests_checked: int
    complete: bool = True  # False: the cell limit cut the comparison short

    def to_json(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "status": self.status,
            "added_rules": list(self.added_rules),
            "removed_rules": list(self.removed_rules),
            "requests_checked": self.requests_checked,
            "complete": self.complete,
            "changes": [c.to_json() for c in self.changes],
        }


@dataclass(frozen=True, slots=True)
class PolicyDiff:
    """Every destination of either version, in name order."""

    destinations: tuple[DestinationDiff, ...]

    @property
    def changed(self) -> tuple[DestinationDiff, ...]:
        return tuple(d for d in self.destinations if d.status != "unchanged")

    @property
    def wider(self) -> bool:
        """Does any request gain access?"""
        return any(d.status in ("wider", "both") for d in self.destinations)

    @property
    def complete(self) -> bool:
        return all(d.complete for d in self.destinations)

    def to_json(self) -> dict[str, Any]:
        return {
            "wider": self.wider,
            "complete": self.complete,
            "destinations": [d.to_json() for d in self.destinations],
        }


@paused_gc()
def diff_policies(
    old: model.PolicySet,
    new: model.PolicySet,
    *,
    max_examples: int = 3,
    cell_limit: int = DEFAULT_CELL_LIMIT,
    progress: Callable[[int, int], None] | None = None,
) -> PolicyDiff:
    """Compare two checked policy sets, destination by destination."""
    old_compiled, new_compiled = compile_policy(old), compile_policy(new)
    names = sorted({k.name for k in old.services} | {k.name for k in new.services})
    out = []
    for done, name in enumerate(names, start=1):
        out.append(
            _diff_destination(name, old, new, old_compiled, new_compiled, max_examples, cell_limit)
        )
        if progress is not None:
            progress(done, len(names))
    return PolicyDiff(tuple(out))


def rule_meaning(rule: model.Rule, port: int | None) -> tuple[Any, ...]:
    """Everything about a rule that decides which requests it matches and how —
    not its id, not where it is written."""
    return (
        port,
        rule.effect,
        rule.audit,
        rule.methods,
        rule.paths,
        rule.hosts,
        rule.ports,
        frozenset(rule.sources),
        rule.when,
        rule.unless,
    )


def _rules_of(policy: model.PolicySet, name: str) -> list[tuple[int | None, model.Rule]]:
    return [
        (key.port, rule)
        for key, service in policy.services.items()
        if key.name == name
        for rule in service.rules
    ]


def _defaults(policy: model.PolicySet, name: str, ports: Iterable[int | None]) -> list[str]:
    out = []
    for port in ports:
        services = policy.policies_for(name, port)
        if not services:
            out.append("none")
        else:
            out.append("allow" if any(s.default == "allow" for s in services) else "deny")
    return out


def _diff_destination(
    name: str,
    old: model.PolicySet,
    new: model.PolicySet,
    old_compiled: CompiledPolicy,
    new_compiled: CompiledPolicy,
    max_examples: int,
    cell_limit: int,
) -> DestinationDiff:
    old_rules, new_rules = _rules_of(old, name), _rules_of(new, name)
    old_count = Counter(rule_meaning(r, p) for p, r in old_rules)
    new_count = Counter(rule_meaning(r, p) for p, r in new_rules)
    removed = _unmatched(old_rules, new_count)
    added = _unmatched(new_rules, old_count)
    ports = {k.port for k in old.services if k.name == name}
    ports |= {k.port for k in new.services if k.name == name}
    ports.add(None)
    # A port no block names behaves like None; one more stands for all of them.
    probe_ports = sorted(p for p in ports if p is not None)
    probe_ports_all: list[int | None] = [None, *probe_ports]
    if probe_ports:
        probe_ports_all.append(max(probe_ports) + 1)
    default_changed = _defaults(old, name, probe_ports_all) != _defaults(new, name, probe_ports_all)
    # Whether a request without a port is decided at all (see needs_port) works like
    # a default: when it changes, every request without a port may flip.
    default_changed |= (name in old_compiled.needs_port) != (name in new_compiled.needs_port)
    # Audit rules never decide: a change in them cannot flip a decision.
    regions = [r for _, r in (*removed, *added) if not r.audit]
    ids_added = tuple(r.rule_id for _, r in added)
    ids_removed = tuple(r.rule_id for _, r in removed)
    if not default_changed and not regions:
        return DestinationDiff(name, "unchanged", (), ids_added, ids_removed, 0)

    space = build_space(name, [r for _, r in (*old_rules, *new_rules)], ports)

    def rules_at(port: int | None) -> list[model.Rule]:
        """The rules of either version that decide requests on a port."""
        services = [*old.policies_for(name, port), *new.policies_for(name, port)]
        return [r for s in services for r in s.rules if not r.audit]

    within: list[tuple[int | None, model.Rule] | None]
    within = [None] if default_changed else [(p, r) for p, r in (*removed, *added) if not r.audit]
    seen: set[str] = set()
    flips: dict[tuple[Any, ...], list[Request]] = {}
    reasons: dict[tuple[Any, ...], tuple[str, str]] = {}
    checked = 0
    complete = True
    for region in within:
        rule, port = (region[1], region[0]) if region is not None else (None, None)
        for request in space.requests(rules_at, rule, port):
            if checked >= cell_limit:
                complete = False
                break
            key = json.dumps(request.to_json(), sort_keys=True)
            if key in seen:
                continue
            seen.add(key)
            checked += 1
            before = evaluate(old_compiled, request)
            after = evaluate(new_compiled, request)
            if before.allowed == after.allowed:
                continue
            direction: Direction = "wider" if after.allowed else "narrower"
            group = (direction, before.rule_ids, after.rule_ids)
            flips.setdefault(group, []).append(request)
            reasons.setdefault(group, (before.reason, after.reason))
    changes = []
    for group, requests in sorted(flips.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        direction, before_ids, after_ids = group
        examples = _varied(sorted(requests, key=_simplicity), max_examples)
        before_reason, after_reason = reasons[group]
        changes.append(
            Change(
                direction,
                before_ids,
                before_reason,
                after_ids,
                after_reason,
                tuple(examples),
                len(requests),
            )
        )
    directions = {c.direction for c in changes}
    status: Status = (
        "both" if len(directions) == 2 else directions.pop() if directions else "unchanged"
    )
    return DestinationDiff(name, status, tuple(changes), ids_added, ids_removed, checked, complete)


def _unmatched(
    rules: list[tuple[int | None, model.Rule]], other: Counter[tuple[Any, ...]]
) -> list[tuple[int | None, model.Rule]]:
    """Rules with no same-meaning counterpart in the other version (as a multiset)."""
    remaining = Counter(other)
    out = []
    for port, rule in rules:
        key = rule_meaning(rule, port)
        if remaining[key] > 0:
            remaining[key] -= 1
        else:
            out.append((port, rule))
    return out


def _varied(requests: list[Request], n: int) -> list[Request]:
    """The simplest requests, preferring ones that differ in method, then in path."""
    picked: list[Request] = []
    for distinct in (lambda r: r.method, lambda r: r.path, lambda r: None):
        seen = {distinct(r) for r in picked}
        for r in requests:
            if len(picked) >= n:
                return picked
            key = distinct(r)
            if r not in picked and (key is None or key not in seen):
                picked.append(r)
                seen.add(key)
    return picked


def _simplicity(request: Request) -> tuple[int, int]:
    """Examples people read first: fewest attributes set, then shortest."""
    doc = request.to_json()
    return (len(json.dumps(doc)) // 40 + len(doc), len(json.dumps(doc)))
