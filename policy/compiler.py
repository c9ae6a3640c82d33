"""Checked model to decision tables: build each destination's indexes once per change."""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Sequence

from . import model
from .conditions import compile_rule_condition
from .decision import Decision, Matches, by_rules
from .gc_pause import paused_gc
from .tables import CompiledPolicy, DecisionTable, PathNode, Row


@paused_gc()
def compile_policy(policy: model.PolicySet, fingerprint: str = "") -> CompiledPolicy:
    """Compile every destination of a checked policy set into its decision table.

    A service block bound to a port adds its rules to that port only; a block without a
    port applies to every port, so the (service, port) table holds both.
    """
    ports_of: dict[str, set[int | None]] = defaultdict(set)
    for key in policy.services:
        ports_of[key.name].add(key.port)
    tables: dict[tuple[str, int | None], DecisionTable] = {}
    for name, ports in ports_of.items():
        for port in ports:
            services = policy.policies_for(name, port)
            rules = [r for s in services for r in s.rules]
            default = "allow" if any(s.default == "allow" for s in services) else "deny"
            tables[(name, port)] = build_table(name, default, rules)
    rule_count = sum(len(t.rows) for t in tables.values())
    return CompiledPolicy(tables, rule_count, policy, fingerprint)


def build_table(destination: str, default: str, rules: Sequence[model.Rule]) -> DecisionTable:
    """Index one destination's rules. Rows are in rule id order, whatever the order of
    the rules: a set of matched rows then lists its rule ids sorted, as a decision
    names them, by walking its bits upwards."""
    effective_default: model.Effect = "allow" if default == "allow" else "deny"
    rules = sorted(rules, key=_rule_id)
    slow = denies = audits = 0
    source_any = source_authn = source_unauthn = 0
    ids: dict[str, int] = defaultdict(int)
    namespaces: dict[str, int] = defaultdict(int)
    trust_domains: dict[str, int] = defaultdict(int)
    networks: dict[str, int] = defaultdict(int)
    network_denies = 0
    method_sets: list[tuple[frozenset[str], int]] = []
    methods_any = 0
    root = PathNode()
    paths_any = 0
    hosts: dict[str, int] = defaultdict(int)
    suffixes: dict[str, int] = defaultdict(int)
    hosts_any = 0
    ports: dict[int, int] = defaultdict(int)
    ports_any = 0
    rows = []
    for index, rule in enumerate(rules):
        bit = 1 << index
        condition = compile_rule_condition(rule)
        rows.append(Row(rule.rule_id, rule.effect, rule.audit, condition))
        if rule.audit or condition is not None:
            slow |= bit
        if rule.audit:
            audits |= bit
        elif rule.effect == "deny":
            denies |= bit
        for source in rule.sources:
            if source.kind == "any":
                source_any |= bit
            elif source.kind == "authenticated":
                source_authn |= bit
            elif source.kind == "unauthenticated":
                source_unauthn |= bit
            elif source.kind == "id":
                ids[source.value] |= bit
            elif source.kind == "namespace":
                namespaces[source.value] |= bit
            elif source.kind == "trust_domain":
                trust_domains[source.value] |= bit
            else:
                networks[source.value] |= bit
                if rule.effect == "deny":
                    network_denies |= bit
        if rule.methods is None:
            methods_any |= bit
        else:
            method_sets.append((rule.methods, bit))
        if rule.paths is None:
            paths_any |= bit
        else:
            for pattern in rule.paths:
                if pattern.prefix is not None:
                    *whole, partial = pattern.prefix.split("/")[1:]
                    node = _walk(root, whole)
                    node.prefixes += ((partial, bit),)
                    continue
                node = _walk(root, pattern.segments)
                if pattern.rest:
                    node.rest |= bit
                else:
                    node.end |= bit
        if rule.hosts is None:
            hosts_any |= bit
        else:
            for host in rule.hosts:
                if host.text.startswith("*."):
                    suffixes[host.text[1:]] |= bit
                else:
                    hosts[host.text] |= bit
        if rule.ports is None:
            ports_any |= bit
        else:
            for port in rule.ports:
                ports[port] |= bit
    _merge_prefixes(root)
    methods = _method_index(method_sets, methods_any)
    return DecisionTable(
        destination=destination,
        default=effective_default,
        rows=tuple(rows),
        no_match=Matches().decision(destination, effective_default),
        row_decisions=tuple(_alone(row) for row in rows),
        slow=slow,
        denies=denies,
        audits=audits,
        source_any=source_any,
        source_authenticated=source_authn,
        source_unauthenticated=source_unauthn,
        source_ids=dict(ids),
        source_namespaces=dict(namespaces),
        source_trust_domains=dict(trust_domains),
        source_networks=tuple((ipaddress.ip_network(n), m) for n, m in networks.items()),
        source_network_denies=network_denies,
        methods=methods,
        methods_any=methods_any,
        path_root=root,
        paths_any=paths_any,
        paths_bound=_all_rows(len(rows)) & ~paths_any,
        hosts=dict(hosts),
        host_suffixes=tuple(suffixes.items()),
        hosts_any=hosts_any,
        hosts_bound=_all_rows(len(rows)) & ~hosts_any,
        ports=dict(ports),
        ports_any=ports_any,
        ports_bound=_all_rows(len(rows)) & ~ports_any,
    )


def _rule_id(rule: model.Rule) -> str:
    return rule.rule_id


def _alone(row: Row) -> Decision:
    """The decision when this row is the only one deciding (for an audit row, never
    used: audit rows do not decide)."""
    return by_rules(row.effect == "allow", (row.rule_id,))


def _walk(root: PathNode, segments: Iterable[str | None]) -> PathNode:
    node = root
    for segment in segments:
        node = node.child(segment)
    return node


def _merge_prefixes(node: PathNode) -> None:
    """One entry per distinct prefix text, so a lookup tests each prefix once."""
    if len(node.prefixes) > 1:
        merged: dict[str, int] = defaultdict(int)
        for prefix, mask in node.prefixes:
            merged[prefix] |= mask
        node.prefixes = tuple(merged.items())
    for child in node.children.values():
        _merge_prefixes(child)
    if node.one is not None:
        _merge_prefixes(node.one)


def _method_index(sets: list[tuple[frozenset[str], int]], any_mask: int) -> dict[str, int]:
    """Method to mask, with the any-method rows folded into every entry."""
    index: dict[str, int] = defaultdict(lambda: any_mask)
    for methods, bit in sets:
        for method in methods:
            index[method] |= bit
    return dict(index)


def _all_rows(n: int) -> int:
    return (1 << n) - 1
