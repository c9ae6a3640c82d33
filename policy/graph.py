"""``meshward graph``: who may call whom, as Mermaid or Graphviz DOT.

Callers and services are nodes; each rule draws an edge from each caller it names to
its service, labelled with its methods and paths. Allow edges are solid, deny edges
red and dashed, audit (dry-run) edges grey and dotted. Edges of one caller, service
and kind are merged into one edge with one label line per rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from . import model
from .identity import peer_identity

EdgeKind = Literal["allow", "deny", "audit"]
Change = Literal["added", "removed"]


@dataclass(frozen=True, slots=True)
class Edge:
    """Calls a rule lets (or stops) one caller make to one service."""

    caller: str
    destination: str
    kind: EdgeKind
    label: str


def edges(policy: model.PolicySet, merge: bool = True) -> list[Edge]:
    """Every edge of a policy set in a stable order; with ``merge``, one edge per
    caller, service and kind (else one per distinct operation, for comparing)."""
    single_td = next(iter(policy.trust_domains)) if len(policy.trust_domains) == 1 else None
    labels: dict[tuple[str, str, EdgeKind], list[str]] = {}
    for key, service in policy.services.items():
        for rule in service.rules:
            kind: EdgeKind = "audit" if rule.audit else rule.effect
            # An audit edge may hold both effects: each line says which it would have.
            label = f"would {rule.effect} {_operation(rule)}" if rule.audit else _operation(rule)
            for source in rule.sources:
                group = labels.setdefault((caller_name(source, single_td), str(key), kind), [])
                if label not in group:
                    group.append(label)
    out = []
    for (caller, destination, kind), ls in sorted(labels.items()):
        if merge:
            out.append(Edge(caller, destination, kind, "\n".join(sorted(ls))))
        else:
            out.extend(Edge(caller, destination, kind, label) for label in sorted(ls))
    return out


def caller_name(source: model.Source, trust_domain: str | None = None) -> str:
    """A short name for a caller: ``ns/sa`` for a workload of the only trust domain."""
    if source.kind == "any":
        return "any caller"
    if source.kind == "authenticated":
        return "any authenticated caller"
    if source.kind == "unauthenticated":
        return "unauthenticated callers"
    if source.kind == "trust_domain":
        return f"trust domain {source.value}"
    if source.kind == "cidr":
        return f"ip {source.value}"
    if source.kind == "namespace":
        td, ns = source.value.split("/", 1)
        return f"namespace {ns}" if td == trust_domain else f"namespace {ns} ({td})"
    ident = peer_identity(source.value)
    if ident is not None and ident.namespace is not None and ident.trust_domain == trust_domain:
        return f"{ident.namespace}/{ident.service_account}"
    # Whole: shortened, spiffe://default/web would be the workload default/web above.
    return source.value


def _operation(rule: model.Rule) -> str:
    methods = "any method" if rule.methods is None else ",".join(sorted(rule.methods))
    paths = "any path" if rule.paths is None else ", ".join(p.text for p in rule.paths)
    text = f"{methods} {paths}"
    if rule.hosts is not None:
        text += " host " + ",".join(h.text for h in rule.hosts)
    if rule.ports is not None:
        text += " port " + ",".join(map(str, sorted(rule.ports)))
    if rule.when is not None or rule.unless is not None:
        text += " (conditional)"
    return text


def _ids(edge_list: Iterable[Edge]) -> tuple[dict[str, str], dict[str, str]]:
    callers: dict[str, str] = {}
    services: dict[str, str] = {}
    for e in edge_list:
        callers.setdefault(e.caller, f"c{len(callers)}")
        services.setdefault(e.destination, f"s{len(services)}")
    return callers, services


_MERMAID_STYLE = {
    "allow": "stroke:#2b7a2b",
    "deny": "stroke:#c62828,stroke-dasharray:6 4",
    "audit": "stroke:#888888,stroke-dasharray:2 3",
}
_CHANGE_STYLE = {
    "added": "stroke:#2e7d32,stroke-width:3px",
    "removed": "stroke:#c62828,stroke-width:3px,stroke-dasharray:6 4",
}


def _mermaid_text(text: str) -> str:
    escaped = text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;")
    return escaped.replace(">", "#gt;").replace("\n", "<br/>")


def render_mermaid(edge_list: Sequence[Edge], changes: Sequence[Change] | None = None) -> str:
    """A Mermaid flowchart (renders in GitHub markdown). With ``changes`` (one per edge),
    the edges are styled as added or removed instead of by kind."""
    callers, services = _ids(edge_list)
    lines = ["flowchart LR"]
    for name, node in callers.items():
        lines.append(f'  {node}["{_mermaid_text(name)}"]')
    for name, node in services.items():
        lines.append(f'  {node}[["{_mermaid_text(name)}"]]')
    styles = []
    for i, e in enumerate(edge_list):
        arrow = "-->" if e.kind == "allow" else "-.->"
        label = e.kind + ": " + e.label if e.kind != "allow" else e.label
        if changes is not None:
            label = f"{changes[i]} {label}"
        lines.append(
            f'  {callers[e.caller]} {arrow}|"{_mermaid_text(label)}"| {services[e.destination]}'
        )
        style = _CHANGE_STYLE[changes[i]] if changes is not None else _MERMAID_STYLE[e.kind]
        styles.append(f"  linkStyle {i} {style}")
    return "\n".join(lines + styles)


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


_DOT_STYLE = {
    "allow": 'color="#2b7a2b"',
    "deny": 'color="#c62828", fontcolor="#c62828", style=dashed',
    "audit": 'color="#888888", fontcolor="#888888", style=dotted',
}


def render_dot(edge_list: Sequence[Edge]) -> str:
    """A Graphviz DOT digraph (``dot -Tsvg`` draws it)."""
    callers, services = _ids(edge_list)
    lines = [
        "digraph meshward {",
        "  rankdir=LR;",
        '  node [shape=box, style=rounded, fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    for name, node in callers.items():
        lines.append(f'  {node} [label="{_dot_text(name)}"];')
    for name, node in services.items():
        lines.append(f'  {node} [label="{_dot_text(name)}", shape=component, style=""];')
    for e in edge_list:
        label = e.label if e.kind == "allow" else f"{e.kind}: {e.label}"
        lines.append(
            f"  {callers[e.caller]} -> {services[e.destination]} "
            f'[label="{_dot_text(label)}", {_DOT_STYLE[e.kind]}];'
        )
    lines.append("}")
    return "\n".join(lines)


def edge_changes(old: Sequence[Edge], new: Sequence[Edge]) -> tuple[list[Edge], list[Change]]:
    """Edges only in ``new`` (added) and only in ``old`` (removed)."""
    old_set, new_set = set(old), set(new)
    out: list[Edge] = []
    kinds: list[Change] = []
    for e in new:
        if e not in old_set:
            out.append(e)
            kinds.append("added")
    for e in old:
        if e not in new_set:
            out.append(e)
            kinds.append("removed")
    return out, kinds
