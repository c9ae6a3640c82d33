"""Decide a request against compiled decision tables. Pure, and closed on failure."""

from __future__ import annotations

from .conditions import Context
from .decision import Decision, Matches, RuleError, ambiguous_path, no_policy
from .identity import Identity, peer_identity
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
        table = policy.tables.get((request.destination, request.port))
        if table is None:
            table = policy.tables.get((request.destination, None))
            if table is None:
                return no_policy(request.destination)
        try:
            path = canonical_path(request.path)
        except AmbiguousPathError as exc:
            return ambiguous_path(str(exc))
        identity = peer_identity(request.principal)
        hits = table.candidates(
            request.method, path, request.host, request.port, identity, request.source_ip
        )
        if not hits:
            return table.no_match
        if not hits & table.slow and not hits & (hits - 1):
            # One unconditional, enforcing row: its decision was built at compile time.
            return table.rows[hits.bit_length() - 1].alone
        return _decide_rows(table, request, path, identity, hits)
    except Exception as exc:  # fail closed, whatever went wrong
        return Decision(False, (), f"denied: internal error ({type(exc).__name__})")


def _decide_rows(
    table: DecisionTable, request: Request, path: str, identity: Identity | None, hits: int
) -> Decision:
    """Run the candidate rows' conditions and combine every match."""
    matches = Matches()
    ctx = Context(request, identity, path, request.host_name)
    rows = table.rows
    while hits:
        low = hits & -hits
        hits ^= low
        row = rows[low.bit_length() - 1]
        if row.condition is not None:
            matched, error = row.condition.verdict(ctx, row.effect)
            if error is not None:
                matches.errors.append(RuleError(row.rule_id, error))
            if not matched:
                continue
        matches.add(row.rule_id, row.effect, row.audit)
    return matches.decision(table.destination, table.default)
