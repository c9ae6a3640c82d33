"""A policy diff for people: plain text for a terminal, Markdown for a pull-request
comment (with a Mermaid graph of the access edges added and removed), JSON for tools."""

from __future__ import annotations

import json
from collections.abc import Sequence

from .diff import Change, DestinationDiff, PolicyDiff
from .graph import Edge, edge_changes, render_mermaid
from .request import Request

_STATUS_WORDS = {
    "unchanged": "unchanged",
    "narrower": "narrower (some requests lose access)",
    "wider": "WIDER (some requests gain access)",
    "both": "WIDER and narrower",
}


def render_json(diff: PolicyDiff) -> str:
    return json.dumps(diff.to_json(), indent=2)


def describe_request(request: Request) -> str:
    """One line: method, path, destination, and whatever else the request carries."""
    parts = [f"{request.method} {request.path} -> {request.destination}"]
    if request.port is not None:
        parts[0] += f":{request.port}"
    parts.append(f"from {request.principal}" if request.principal else "unauthenticated")
    if request.source_ip:
        parts.append(f"ip {request.source_ip}")
    if request.host:
        parts.append(f"host {request.host}")
    if request.headers:
        parts.append("headers " + json.dumps(dict(request.headers), sort_keys=True))
    if request.jwt is not None:
        parts.append("jwt " + json.dumps(dict(request.jwt), sort_keys=True))
    if request.sni:
        parts.append(f"sni {request.sni}")
    return ", ".join(parts)


def _decided(rules: tuple[str, ...], reason: str) -> str:
    return ", ".join(rules) if rules else reason


def _change_line(change: Change) -> str:
    verb = "now ALLOWED" if change.direction == "wider" else "now denied"
    cells = f"{change.count} kind{'s' if change.count != 1 else ''} of request"
    return (
        f"{cells} {verb}: before {_decided(change.before_rules, change.before_reason)}; "
        f"after {_decided(change.after_rules, change.after_reason)}"
    )


def render_human(diff: PolicyDiff) -> str:
    """Changed destinations with their flips and example requests; a summary line."""
    lines = []
    for d in diff.destinations:
        if d.status == "unchanged" and d.complete:
            continue
        lines.append(f"{d.destination}: {_STATUS_WORDS[d.status]}")
        lines.extend(_rule_changes(d, "  "))
        for change in d.changes:
            lines.append("  " + _change_line(change))
            lines.extend(f"    e.g. {describe_request(r)}" for r in change.examples)
        if not d.complete:
            lines.append("  (incomplete: the request space was larger than the cell limit)")
        lines.append("")
    unchanged = len(diff.destinations) - len(diff.changed)
    lines.append(
        f"{len(diff.changed)} destination{'s' if len(diff.changed) != 1 else ''} changed, "
        f"{unchanged} unchanged" + ("; access WIDENS" if diff.wider else "")
    )
    return "\n".join(lines)


def _rule_changes(d: DestinationDiff, indent: str) -> list[str]:
    changed = [r for r in d.removed_rules if r in d.added_rules]
    removed = [r for r in d.removed_rules if r not in changed]
    added = [r for r in d.added_rules if r not in changed]
    out = []
    for word, ids in (("changed", changed), ("removed", removed), ("added", added)):
        if ids:
            out.append(f"{indent}rules {word}: {', '.join(ids)}")
    return out


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(
    diff: PolicyDiff, old_edges: Sequence[Edge] = (), new_edges: Sequence[Edge] = ()
) -> str:
    """A pull-request comment: a summary table, each change with example requests, and
    a Mermaid graph of the access edges added and removed."""
    lines = ["## meshward policy diff", ""]
    if not diff.changed:
        lines.append("No request changes its decision.")
    else:
        verdict = (
            "**Access widens**: review before merging." if diff.wider else "Access narrows only."
        )
        lines += [
            verdict,
            "",
            "| destination | change | kinds of request flipped |",
            "| --- | --- | --- |",
        ]
        for d in diff.changed:
            flipped = sum(c.count for c in d.changes)
            lines.append(f"| `{d.destination}` | {_STATUS_WORDS[d.status]} | {flipped} |")
        unchanged = len(diff.destinations) - len(diff.changed)
        lines += ["", f"{unchanged} other destination{'s' if unchanged != 1 else ''} unchanged."]
        for d in diff.changed:
            lines += ["", f"### `{d.destination}` — {_STATUS_WORDS[d.status]}", ""]
            lines += [f"- {line.strip()}" for line in _rule_changes(d, "")]
            for change in d.changes:
                icon = "🟢" if change.direction == "wider" else "🔴"
                lines += ["", f"{icon} {_md(_change_line(change))}", ""]
                lines += ["| example request | before | after |", "| --- | --- | --- |"]
                before = "allow" if change.direction == "narrower" else "deny"
                after = "deny" if change.direction == "narrower" else "allow"
                for r in change.examples:
                    lines.append(f"| `{_md(describe_request(r))}` | {before} | {after} |")
            if not d.complete:
                lines += ["", "_Incomplete: the request space was larger than the cell limit._"]
    changed_edges, kinds = edge_changes(old_edges, new_edges)
    if changed_edges:
        lines += [
            "",
            "<details><summary>Access edges added and removed</summary>",
            "",
            "```mermaid",
            render_mermaid(changed_edges, kinds),
            "```",
            "",
            "</details>",
        ]
    return "\n".join(lines)
