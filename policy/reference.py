"""The reference interpreter: decide by walking the checked model rule by rule.

It shares no index with the decision tables, so property tests can prove that the
tables decide exactly as the language says. It is also the engine of ``explain``: for
each rule it says, in words, why the rule did or did not match.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from . import model
from .conditions import Context, compile_rule_condition
from .decision import Decision, Matches, RuleError, ambiguous_path, no_policy, unknown_port
from .identity import Identity, peer_identity
from .paths import AmbiguousPathError, canonical_path
from .request import Request, source_address


@dataclass(frozen=True, slots=True)
class RuleTrace:
    """One rule's verdict for a request: matched or not, and why."""

    rule_id: str
    effect: str
    audit: bool
    matched: bool
    reasons: tuple[str, ...]
    span: str


@dataclass(frozen=True, slots=True)
class Explanation:
    decision: Decision
    destination: str
    canonical_path: str | None
    traces: tuple[RuleTrace, ...]


def reference_decide(policy: model.PolicySet, request: Request) -> Decision:
    """The decision the language defines, computed the slow, obvious way."""
    return explain(policy, request).decision


def explain(policy: model.PolicySet, request: Request) -> Explanation:
    """Decide and record, for every rule of the destination, why it (did not) match."""
    if request.port is None and policy.needs_port(request.destination):
        return Explanation(unknown_port(request.destination), request.destination, None, ())
    services = policy.policies_for(request.destination, request.port)
    if not services:
        return Explanation(no_policy(request.destination), request.destination, None, ())
    try:
        path = canonical_path(request.path)
    except AmbiguousPathError as exc:
        return Explanation(ambiguous_path(str(exc)), request.destination, None, ())
    identity = peer_identity(request.principal)
    ctx = Context(request, identity, path, request.host_name)
    matches = Matches()
    traces = []
    for service in services:
        for rule in service.rules:
            reasons = _mismatches(rule, ctx)
            matched = not reasons
            condition = compile_rule_condition(rule)
            if matched and condition is not None:
                matched, error = condition.verdict(ctx, rule.effect)
                if error is not None:
                    matches.errors.append(RuleError(rule.rule_id, error))
                    reasons.append(
                        f"its condition could not be evaluated ({error}); "
                        + ("a deny fails closed: it matches" if matched else "an allow fails")
                    )
                elif not matched:
                    reasons.append("its when/unless conditions do not hold")
            if matched:
                matches.add(rule.rule_id, rule.effect, rule.audit)
            traces.append(
                RuleTrace(
                    rule.rule_id,
                    rule.effect,
                    rule.audit,
                    matched,
                    tuple(reasons) or ("every part matches",),
                    str(rule.span),
                )
            )
    default: model.Effect = "allow" if any(s.default == "allow" for s in services) else "deny"
    decision = matches.decision(request.destination, default)
    return Explanation(decision, request.destination, path, tuple(traces))


def _mismatches(rule: model.Rule, ctx: Context) -> list[str]:
    """Why the rule's indexed parts do not accept the request (empty: they all do)."""
    request = ctx.request
    reasons = []
    if rule.methods is not None and request.method not in rule.methods:
        reasons.append(f"method {request.method} is not one of {', '.join(sorted(rule.methods))}")
    ip = request.source_ip
    if not any(source_matches(s, ctx.identity, ip, rule.effect) for s in rule.sources):
        who = ctx.identity.spiffe_id if ctx.identity else "unauthenticated"
        if any(s.kind == "cidr" for s in rule.sources):
            who += f", at {ip}" if ip else ", at no known IP"
        wanted = ", ".join(s.describe() for s in rule.sources)
        reasons.append(f"caller {who} is not {wanted}")
    if rule.paths is not None and not any(p.matches(ctx.path) for p in rule.paths):
        reasons.append(f"path {ctx.path} does not match {', '.join(p.text for p in rule.paths)}")
    if rule.hosts is not None and not (
        ctx.host is not None and any(h.matches(ctx.host) for h in rule.hosts)
    ):
        reasons.append(f"host {ctx.host} is not {', '.join(h.text for h in rule.hosts)}")
    if rule.ports is not None and request.port not in rule.ports:
        reasons.append(f"port {request.port} is not {', '.join(map(str, sorted(rule.ports)))}")
    return reasons


def source_matches(
    source: model.Source, identity: Identity | None, ip: str | None, effect: str = "allow"
) -> bool:
    """Does a caller (its identity, or None, and its IP) match one source of a rule?
    A source IP that is not an address cannot be evaluated: the `ip` source of a deny
    rule matches it, that of an allow rule does not."""
    kind = source.kind
    if kind == "any":
        return True
    if kind == "cidr":
        if not ip:
            return False
        try:
            return source_address(ip) in ipaddress.ip_network(source.value)
        except ValueError:
            return effect == "deny"
    if identity is None:
        return kind == "unauthenticated"
    if kind == "authenticated":
        return True
    if kind == "id":
        return identity.spiffe_id == source.value
    if kind == "namespace":
        td, ns = source.value.split("/", 1)
        return identity.trust_domain == td and identity.namespace == ns
    if kind == "trust_domain":
        return identity.trust_domain == source.value
    return False
