from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshward.policy import parser
from meshward.policy.diagnostics import SourceSet, render_human
from meshward.policy.parser import parse

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"


def errors(text: str):
    result = parse(textwrap.dedent(text), "p.policy")
    assert result.file is None
    return result.diagnostics


def test_parses_the_whole_language():
    result = parse(
        textwrap.dedent(
            """
            trust_domain "cluster.local"  # trailing comment
            principals web = ["ns/web/sa/web", namespace "ops", sa "a/b", trust_domain "x.org"]
            audit service reviews.default:9080 {
              @id("r1")
              allow GET, HEAD /reviews/{*}, /api* host "a.b" port 80, 81
                from web, any, ip "10.0.0.0/8"
                when (jwt.a == 1 or jwt["b-c"] != true) and not has request.headers["X-A"]
                unless source.ip within ["10.0.0.0/8"] or jwt.x matches "a*" or jwt.y in ["a", 2.5]
              deny * from unauthenticated, authenticated
            }
            """
        ),
        "p.policy",
    )
    assert result.diagnostics == ()
    f = result.file
    assert f is not None and f.trust_domain is not None
    assert f.trust_domain.value == "cluster.local"
    service = f.services[0]
    assert service.audit and service.port is not None and service.port.value == "9080"
    rule = service.rules[0]
    assert rule.rule_id is not None and rule.rule_id.value == "r1"
    assert [m.value for m in rule.methods or ()] == ["GET", "HEAD"]
    assert [p.value for p in rule.paths] == ["/reviews/{*}", "/api*"]
    assert [s.kind for s in rule.sources] == ["set", "any", "cidr"]
    assert service.rules[1].methods is None
    assert [c.text for c in f.comments] == ["# trailing comment"]
    assert f.comments[0].span.line == 2


def test_syntax_error_has_position_caret_expected_words_and_suggestion():
    (d,) = errors(
        """
        service reviews {
          alow GET /x from any
        }
        """
    )
    assert (d.span.file, d.span.line, d.span.column) == ("p.policy", 3, 3)
    assert "`allow` or `deny`" in d.expected and all(not w.isupper() for w in d.expected)
    assert d.suggestion == "`allow`"
    text = render_human(
        [d],
        SourceSet(
            {"p.policy": textwrap.dedent("\nservice reviews {\n  alow GET /x from any\n}\n")}
        ),
    )
    assert "p.policy:3:3" in text
    assert "  alow GET /x from any" in text
    assert "\n         ^^^^" in text
    assert "did you mean `allow`?" in text


def test_expected_tokens_are_words_not_token_names():
    (d,) = errors("service s {\n  allow get /x\n}\n")
    assert d.span.line == 2 and d.span.column == 9
    assert "a method like GET" in d.expected and "`*`" in d.expected


def test_all_syntax_errors_of_a_file_are_reported():
    ds = errors(
        """
        service a {
          alow GET /x
          allow get /y
          allow GET /ok from any
          deny POST /z when jwt.a ==
        }
        service b {
          allow GET /q from
        }
        """
    )
    assert [d.span.line for d in ds] == [3, 4, 7, 10]


def test_unterminated_block_reports_end_of_file():
    (d,) = errors("service a {\n  allow GET /x\n")
    assert d.message == "unexpected end of file"
    assert "`}`" in d.expected


def test_invalid_string_escape_is_a_syntax_error():
    (d,) = errors('trust_domain "a\\qb"\n')
    assert d.message == "invalid escape in string"
    assert d.span.line == 1


def test_a_malformed_id_annotation_says_how_to_write_one():
    (d,) = errors("service a {\n  @id(r7)\n  allow *\n}\n")
    assert (d.span.line, d.span.column) == (2, 3)
    assert '@id("rule-id")' in d.message


def test_an_id_annotation_spans_its_string_and_the_rule_starts_at_the_annotation():
    result = parse('service a {\n  @id ( "r1" )  allow *\n}\n', "p.policy")
    assert result.file is not None
    rule = result.file.services[0].rules[0]
    assert rule.rule_id is not None and rule.rule_id.value == "r1"
    assert (rule.rule_id.span.line, rule.rule_id.span.column) == (2, 9)
    assert rule.rule_id.span.end_column == 13
    assert (rule.span.line, rule.span.column) == (2, 3)


def test_a_bad_escape_after_a_syntax_error_reports_the_syntax_error():
    (d,) = errors('service a {\n  alow *\n  allow * from "\\q"\n}\n')
    assert d.message == "unexpected `alow`"


def test_parenthesised_conditions_count_for_the_span_of_what_holds_them():
    result = parse('service a {\n  allow * when (jwt.a == "b")\n}\n', "p.policy")
    assert result.file is not None
    rule = result.file.services[0].rules[0]
    assert rule.when is not None and rule.when.span.column == 17  # inside the parentheses
    assert rule.span.end_column == 30  # after the closing one


plain_and_compiled = pytest.mark.skipif(
    parser._compiled_node_parser() is None, reason="lark-cython is not installed here"
)


@plain_and_compiled
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_compiled_plugin_builds_exactly_what_plain_lark_builds(
    data: st.DataObject, gen: Any
) -> None:
    texts = data.draw(gen.policy_texts)
    compiled = parser._compiled_node_parser()
    assert compiled is not None
    for name, text in texts.items():
        assert parser._build(compiled, text, name) == parser._build(
            parser._node_parser(), text, name
        )


@plain_and_compiled
def test_the_compiled_plugin_builds_the_examples_exactly_as_plain_lark() -> None:
    compiled = parser._compiled_node_parser()
    assert compiled is not None
    paths = sorted(EXAMPLES.rglob("*.policy"))
    assert paths
    for path in paths:
        text = path.read_text(encoding="utf-8")
        assert parser._build(compiled, text, str(path)) == parser._build(
            parser._node_parser(), text, str(path)
        )


def test_a_fault_in_the_compiled_plugin_falls_back_to_plain_lark(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Broken:
        class options:  # like Lark.options
            transformer = parser._NodeBuilder()

        def parse(self, text: str) -> None:
            raise RuntimeError("plugin fault")

    monkeypatch.setattr(parser, "_compiled_node_parser", lambda: Broken())
    result = parse("service a {\n  allow GET /x\n}\n", "p.policy")
    assert result.diagnostics == () and result.file is not None
    assert result.file.services[0].rules[0].paths[0].value == "/x"


def test_a_second_id_on_a_rule_is_an_error():
    (d,) = errors('service a {\n  @id("x") @id("y")\n  allow *\n}\n')
    assert d.message == "a rule has one @id; this is a second one"
    assert (d.span.line, d.span.column) == (2, 12)


def test_a_second_default_in_a_block_is_an_error_not_the_last_one_winning():
    (d,) = errors("service a {\n  default deny\n  allow GET /a\n  default allow\n}\n")
    assert d.message == "a service has one `default`; this is a second one"
    assert (d.span.line, d.span.column) == (4, 3)


def test_every_token_error_of_a_file_is_reported_in_source_order():
    text = 'service a {\n  @id("x") @id("y") allow *\n  default deny\n  default allow\n}\n'
    text += 'trust_domain "a\\qb"\n'
    found = errors(text)
    assert [(d.span.line, d.message) for d in found] == [
        (2, "a rule has one @id; this is a second one"),
        (4, "a service has one `default`; this is a second one"),
        (6, "invalid escape in string"),
    ]


def _nested(depth: int) -> str:
    """A comparison inside ``depth`` nested `not`, `or` and `and`."""
    cond = 'jwt.x == "1"'
    for i in range(depth):
        cond = ("not ({})", '(jwt.y == "2" or {})', '(jwt.z == "3" and {})')[i % 3].format(cond)
    return cond


def test_conditions_deeper_than_the_limit_are_a_syntax_error_not_a_crash():
    from meshward.policy.nodes import MAX_CONDITION_DEPTH

    deepest = f"service s {{\n  allow GET /a when {_nested(MAX_CONDITION_DEPTH)}\n}}\n"
    assert parse(deepest, "p.policy").file is not None
    (d,) = errors(f"service s {{\n  allow GET /a when {_nested(MAX_CONDITION_DEPTH + 1)}\n}}\n")
    assert d.span.line == 2 and f"more than {MAX_CONDITION_DEPTH} levels" in d.message
    assert "in [...]" in (d.help or "")
    chain = " or ".join(f'jwt.x == "{i}"' for i in range(MAX_CONDITION_DEPTH + 1))
    assert parse(f"service s {{\n  deny * unless {chain}\n}}\n", "p.policy").file is not None
    chain += ' or jwt.x == "last"'  # one `or` too many
    (d,) = errors(f"service s {{\n  deny * unless {chain}\n}}\n")
    assert "levels deep" in d.message
    assert len(errors(f"service s {{ deny * when {_nested(10_000)} }}")) == 1  # no recursion


def test_lists_nested_deeper_than_the_limit_are_a_syntax_error_not_a_crash():
    from meshward.policy.nodes import MAX_LIST_DEPTH

    def rule(depth: int) -> str:
        return f"service s {{\n  allow GET /a when jwt.x in {'[' * depth}1{']' * depth}\n}}\n"

    assert parse(rule(MAX_LIST_DEPTH), "p.policy").file is not None
    (d,) = errors(rule(MAX_LIST_DEPTH + 1))
    assert d.span.line == 2 and f"more than {MAX_LIST_DEPTH} levels" in d.message
    assert len(errors(rule(5_000))) == 1


def test_numbers_too_long_for_a_claim_are_a_syntax_error_not_a_crash():
    from meshward.policy.nodes import MAX_NUMBER_DIGITS

    longest = "9" * MAX_NUMBER_DIGITS
    assert parse(f"service s {{ allow * when jwt.n == {longest} }}", "p.policy").file
    # 5,000 digits: int() refuses them; 400 and a fraction: a float would be infinite.
    for number in ("1" * 5_000, "1" + "0" * 400 + ".5", f"-{longest}1"):
        (d,) = errors(f"service s {{\n  allow * when jwt.n == {number}\n}}\n")
        assert (d.span.line, d.span.column) == (2, 25)
        assert d.message == f"a number has at most {MAX_NUMBER_DIGITS} digits"


def test_recovery_keeps_a_misspelt_statement_after_a_broken_one():
    found = errors(
        'service x {\n  allow GET /c when jwt.a = "b"\n  alow GET /d\n  allow GET /e\n}\n'
    )
    assert [(d.span.line, d.message) for d in found] == [
        (2, "unexpected `=`"),
        (3, "unexpected `alow`"),
    ]
    assert found[1].suggestion == "`allow`"


def test_a_misspelt_source_keyword_is_named_where_its_string_is_unexpected():
    (d,) = errors('service x {\n  allow GET /b from nmespace "x"\n}\n')
    assert d.message == 'unexpected string "x" after `nmespace`'
    assert d.suggestion == "`namespace`"
    (d,) = errors('service x {\n  allow GET /b from "ns/a/sa/b" "x"\n}\n')
    assert (d.message, d.suggestion) == ('unexpected string "x"', None)


def test_the_quoted_line_is_the_line_reported_even_after_a_unicode_line_separator():
    from meshward.policy.diagnostics import SourceSet

    text = "# a comment with \u2028 and \f in it\nservice x {\n  alow GET /a\n}\n"
    (d,) = errors(text)
    assert d.span.line == 3
    assert SourceSet({"p.policy": text}).line("p.policy", 3) == "  alow GET /a"


def test_an_unexpected_character_lists_the_keywords_that_could_follow():
    (d,) = errors("service x {\n  allow GET /b from $\n}\n")
    assert d.message == "unexpected character '$'"
    for word in ("`namespace`", "`sa`", "`any`", "`ip`", "a name"):
        assert word in d.expected


def test_a_path_pattern_holds_no_quote_so_comments_after_it_stay_comments():
    # `"` is never a raw URL character; taken into a path it made the comment scanner
    # (and so fmt and lint suppressions) read strings and comments out of step.
    (d,) = errors('service s {\n  allow GET /a" from any  # keep me "\n}\n')
    assert d.message.startswith("unexpected string") and d.suggestion is None


def test_recovery_does_not_take_an_attribute_for_a_misspelt_statement():
    # `source` is close to `service`, but `source.namespace` continues the condition.
    found = errors(
        'service x {\n  allow GET /c when jwt.a = "b"\n    and source.namespace == "x"\n}\n'
    )
    assert [(d.span.line, d.message) for d in found] == [(2, "unexpected `=`")]
    found = errors('service x {\n  allow GET /c when jwt.a = "b"\n    or\n  source.ip == "x"\n}\n')
    assert [d.span.line for d in found] == [2]


def test_the_end_of_file_is_placed_as_lark_counts_lines():
    (d,) = errors("# a \u2028 comment\nservice x {\n  allow GET /a")
    assert (d.span.line, d.message) == (3, "unexpected end of file")
    (d,) = errors("service x {\n  allow GET /a\n")
    assert (d.span.line, d.span.column) == (2, 15)
