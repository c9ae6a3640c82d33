from __future__ import annotations

import textwrap

from meshward.policy.diagnostics import SourceSet, render_human
from meshward.policy.parser import parse


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
