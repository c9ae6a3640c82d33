"""The access graph: edges from callers to services, as Mermaid and DOT."""

from __future__ import annotations

import textwrap

from meshward.policy import load_texts
from meshward.policy.graph import Edge, edge_changes, edges, render_dot, render_mermaid

POLICY = textwrap.dedent(
    """\
    trust_domain "cluster.local"
    service reviews.default {
      @id("read") allow GET /reviews/{*} from sa "default/web", namespace "ops"
      @id("write") allow POST /reviews from sa "default/web" when jwt.scope contains "w"
      @id("admin") deny * /admin/{**} from any
      @id("legacy") audit deny * /v1/{**} from "spiffe://partner.example/x"
    }
    """
)


def _edges() -> list[Edge]:
    return edges(load_texts({"p.policy": POLICY}).policy)


def test_edges_merge_rules_per_caller_service_and_kind() -> None:
    assert _edges() == [
        Edge("any caller", "reviews.default", "deny", "any method /admin/{**}"),
        Edge(
            "default/web",
            "reviews.default",
            "allow",
            "GET /reviews/{*}\nPOST /reviews (conditional)",
        ),
        Edge("namespace ops", "reviews.default", "allow", "GET /reviews/{*}"),
        Edge(
            "spiffe://partner.example/x",
            "reviews.default",
            "audit",
            "would deny any method /v1/{**}",
        ),
    ]


def test_mermaid_styles_edges_by_kind() -> None:
    text = render_mermaid(_edges())
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    assert '  c1["default/web"]' in lines
    assert '  s0[["reviews.default"]]' in lines
    assert '  c1 -->|"GET /reviews/{*}<br/>POST /reviews (conditional)"| s0' in lines
    assert '  c0 -.->|"deny: any method /admin/{**}"| s0' in lines
    assert "  linkStyle 0 stroke:#c62828,stroke-dasharray:6 4" in lines


def test_dot_escapes_and_styles() -> None:
    text = render_dot(_edges())
    assert text.startswith("digraph meshward {") and text.endswith("}")
    assert 'c1 -> s0 [label="GET /reviews/{*}\\nPOST /reviews (conditional)"' in text
    assert 'label="audit: would deny any method /v1/{**}", color="#888888"' in text


def test_mermaid_labels_cannot_break_out_of_quotes() -> None:
    edge = Edge('a "quoted" <caller>', "s", "allow", "GET /x")
    text = render_mermaid([edge])
    assert 'c0["a #quot;quoted#quot; #lt;caller#gt;"]' in text


def test_edge_changes_are_added_and_removed() -> None:
    old = [Edge("a", "s", "allow", "GET /x"), Edge("b", "s", "allow", "GET /y")]
    new = [Edge("a", "s", "allow", "GET /x"), Edge("c", "s", "allow", "GET /y")]
    changed, kinds = edge_changes(old, new)
    assert list(zip(changed, kinds, strict=True)) == [
        (Edge("c", "s", "allow", "GET /y"), "added"),
        (Edge("b", "s", "allow", "GET /y"), "removed"),
    ]


def test_two_callers_never_share_a_node_and_audit_lines_say_their_effect() -> None:
    policy = load_texts(
        {
            "p.policy": 'trust_domain "default"\nservice s {\n'
            '  allow GET /a from sa "default/web"\n'  # spiffe://default/ns/default/sa/web
            '  deny GET /b from "spiffe://default/web"\n'
            "  audit allow GET /c from any\n  audit deny GET /d from any\n}\n"
        }
    ).policy
    found = {(e.caller, e.kind): e.label for e in edges(policy)}
    assert found[("default/web", "allow")] == "GET /a"
    assert found[("spiffe://default/web", "deny")] == "GET /b"
    assert found[("any caller", "audit")] == "would allow GET /c\nwould deny GET /d"
