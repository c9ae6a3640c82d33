"""Decide a request against compiled decision tables. Pure, and closed on failure."""

from __future__ import annotations

from .conditions import Context
from .decision import Decision, RuleError, ambiguous_path, no_policy, unknown_port
from .identity import peer_identity
from .paths import AmbiguousPathError, canonical_path
from .request import Request
from .tables import CompiledPolicy, DecisionTable


def evaluate(policy: CompiledPolicy, request: Request) -> Decision:
    """The decision for one request.

    Default deny (also for a destination no policy names); any matching deny wins; else
    any matching allow allows; audit rows are reported, never decide; a row whose
    condition cannot be evaluated matches if it denies and fails if it allows.
    Any unexpected failure is a deny that says so.
    """
    try:
        port = request.port
        if port is None and request.destination in policy.needs_port:
            return unknown_port(request.destination)
        table = policy.table_for(request.destination, port)
        if table is None:
            return no_policy(request.destination)
        try:
            path = canonical_path(request.path)
        except AmbiguousPathError as refused:
            # Not `exc`: compiled, a name keeps the type of its first binding, and `exc`
            # below must hold any exception.
            return ambiguous_path(str(refused))
        hits = table.candidates(
            request.method, path, request.host, request.port, request.principal, request.source_ip
        )
        if not hits:
            return table.no_match
        conditional = hits & table.slow
        if not conditional:
            return table.decision_for(hits)
        return _with_conditions(table, request, path, hits, conditional)
    except Exception as exc:  # fail closed, whatever went wrong
        return Decision(False, (), f"denied: internal error ({type(exc).__name__})")


def _with_conditions(
    table: DecisionTable,
    request: Request,
    path: str,
    hits: int,
    conditional: int,
) -> Decision:
    """Run the candidate rows' conditions, then decide on the rows that matched."""
    ctx = Context(request, peer_identity(request.principal), path, request.host_name)
    matched = hits ^ conditional
    errors: list[RuleError] = []
    rows = table.rows
    while conditional:
        low = conditional & -conditional
        conditional ^= low
        row = rows[low.bit_length() - 1]
        if row.condition is None:  # an unconditional audit row
            matched |= low
            continue
        ok, error = row.condition.verdict(ctx, row.effect)
        if error is not None:
            errors.append(RuleError(row.rule_id, error))
        if ok:
            matched |= low
    decision = table.decision_for(matched) if matched else table.no_match
    if errors:
        if len(errors) > 1:
            errors.sort(key=lambda e: e.rule_id)
        d = decision
        decision = Decision(d.allowed, d.rule_ids, d.reason, d.audit, tuple(errors))
    return decision
