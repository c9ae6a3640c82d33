"""The formatter: one canonical layout, comments kept, idempotent, meaning unchanged."""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshward.policy import PolicyError, load_texts
from meshward.policy.formatter import format_text
from meshward.policy.parser import parse

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "policies").rglob("*.policy"))


def _comments(text: str, name: str = "p.policy") -> Counter[str]:
    result = parse(text, name)
    assert result.file is not None, result.diagnostics
    return Counter(c.text.rstrip() for c in result.file.comments)


def _check_formatting(texts: dict[str, str], meaning: Any) -> None:
    formatted = {name: format_text(text, name) for name, text in texts.items()}
    for name, text in texts.items():
        assert format_text(formatted[name], name) == formatted[name], "not idempotent"
        assert _comments(formatted[name], name) == _comments(text, name), "comments lost"
    assert meaning(load_texts(formatted).policy) == meaning(load_texts(texts).policy)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_format_idempotently_to_the_same_meaning(path: Path, meaning: Any) -> None:
    # The examples form one policy set: principal sets are shared across files.
    texts = {str(p): p.read_text(encoding="utf-8") for p in EXAMPLES if p.parent == path.parent}
    _check_formatting(texts, meaning)


@st.composite
def _with_comments(draw: st.DrawFn, texts: dict[str, str]) -> dict[str, str]:
    """Sprinkle comments on their own lines and behind code."""
    out = {}
    for name, text in texts.items():
        lines = []
        for i, line in enumerate(text.splitlines()):
            where = draw(st.integers(0, 5))
            if where == 0:
                lines.append(f"# above {i}")
            if where == 1 and line.strip():
                line = f"{line}  # behind {i}"
            lines.append(line)
            if where == 2:
                lines.append("")
        out[name] = "\n".join(lines) + "\n"
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_policies_format_idempotently_to_the_same_meaning(
    data: st.DataObject, gen: Any, meaning: Any
) -> None:
    texts = data.draw(gen.policy_texts)
    texts = data.draw(_with_comments(texts))
    _check_formatting(texts, meaning)


def test_canonical_layout() -> None:
    messy = textwrap.dedent(
        """\
        # Reviews.
        trust_domain   "cluster.local"
        principals readers=[ "ns/default/sa/web",namespace "ops" ]
        service reviews.default:9080{ default deny
        @id( "read" ) allow GET,HEAD /reviews/{*} from readers when
           jwt.scope contains "read" and (has jwt.a or not jwt.b==1)
        deny  *  /admin/{**}   unless source.namespace=="ops"   # ops only
        }
        """
    )
    assert format_text(messy) == textwrap.dedent(
        """\
        # Reviews.
        trust_domain "cluster.local"

        principals readers = ["ns/default/sa/web", namespace "ops"]

        service reviews.default:9080 {
          default deny

          @id("read")
          allow GET, HEAD /reviews/{*} from readers
            when jwt.scope contains "read" and (has jwt.a or not jwt.b == 1)

          deny * /admin/{**}
            unless source.namespace == "ops"  # ops only
        }
        """
    )


def test_long_rules_and_sets_wrap() -> None:
    principals = ", ".join(f'"ns/team-{i}/sa/worker-{i}"' for i in range(6))
    text = f'trust_domain "t"\nprincipals many = [{principals}]\nservice s.x {{\n'
    text += (
        f"  allow GET /a/very/long/path/{{**}}, /another/long/path/{{*}} from {principals}\n}}\n"
    )
    out = format_text(text)
    assert '\n  "ns/team-0/sa/worker-0",\n' in out
    assert "\n    from " in out
    assert all(len(line) <= 100 or "from" in line for line in out.splitlines())
    assert format_text(out) == out


def test_comments_inside_a_set_and_a_rule_stay_with_them() -> None:
    text = textwrap.dedent(
        """\
        trust_domain "t"
        principals a = [
          "ns/x/sa/y",  # the batch job
          # the gateway
          namespace "gw",
        ]
        service s.x {
          allow GET /a from a
            # only in business hours
            when jwt.hours == "office"
        }
        """
    )
    out = format_text(text)
    assert '  "ns/x/sa/y",  # the batch job\n  # the gateway\n  namespace "gw",\n' in out
    assert "  allow GET /a from a\n    # only in business hours\n    when jwt" in out


def test_a_keyword_or_dashed_attribute_part_is_quoted() -> None:
    out = format_text("service s.x {\n allow GET /a when jwt.in == 1 and jwt.x-y == 2\n}\n")
    assert 'jwt["in"] == 1 and jwt["x-y"] == 2' in out


def test_syntax_errors_are_reported_not_formatted() -> None:
    with pytest.raises(PolicyError) as raised:
        format_text("service s.x {\n  allow GET /a from\n}\n", "bad.policy")
    assert raised.value.diagnostics[0].span.file == "bad.policy"


def test_a_comment_behind_a_one_line_block_stays_with_what_the_block_holds() -> None:
    # A lint suppression written behind `service x { default allow }` must still sit on
    # the `default allow` line once the block is laid out on several lines.
    text = (
        "service status.web { default allow }  # meshward: ignore[default-allow] status page\n"
        "service b.web { allow GET /a }  # about a\n"
        "service c.web { }  # empty\n"
    )
    assert format_text(text) == (
        "service status.web {\n"
        "  default allow  # meshward: ignore[default-allow] status page\n"
        "}\n\n"
        "service b.web {\n"
        "  allow GET /a  # about a\n"
        "}\n\n"
        "service c.web {}  # empty\n"
    )
