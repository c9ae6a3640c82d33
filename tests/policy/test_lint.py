"""Every lint code fires on a policy that has the problem and stays quiet on its fix;
configuration, inventories and suppressions work as documented."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshward.policy import Request, explain, load_paths, load_texts
from meshward.policy.diagnostics import Diagnostic, Severity
from meshward.policy.lint import CHECKS, Inventory, LintConfig, LintConfigError, lint
from meshward.policy.lint_checks import covers, unmatchable_reason

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"


def findings(
    body: str, config: LintConfig | None = None, header: str = 'trust_domain "cluster.local"\n'
) -> list[Diagnostic]:
    text = header + textwrap.dedent(body)
    return list(lint(load_texts({"p.policy": text}), config).findings)


def codes(body: str, config: LintConfig | None = None) -> set[str]:
    return {f.code for f in findings(body, config)}


INVENTORY = Inventory(
    trust_domains=frozenset({"cluster.local"}),
    namespaces={"default": frozenset({"web", "api"}), "ops": frozenset()},
    services=frozenset({"web.default", "api.default"}),
)
ALL_ON = LintConfig({code: Severity.WARNING for code in CHECKS}, INVENTORY)

# code -> (a policy with the problem, the same policy fixed)
CASES: dict[str, tuple[str, str]] = {
    "unmatchable-path": (
        """
        service web.default {
          @id("a") allow GET /api//v1/items from any
        }""",
        """
        service web.default {
          @id("a") allow GET /api/v1/items from any
        }""",
    ),
    "unsatisfiable-condition": (
        """
        service web.default {
          @id("a") allow GET /x from any when jwt.tier == "gold" and jwt.tier == "silver"
        }""",
        """
        service web.default {
          @id("a") allow GET /x from any when jwt.tier in ["gold", "silver"]
        }""",
    ),
    "shadowed-allow": (
        """
        service web.default {
          @id("narrow") allow GET /items/{*} from namespace "web"
          @id("wide") allow GET, POST /items/{**} from namespace "web", namespace "api"
        }""",
        """
        service web.default {
          @id("narrow") allow GET /items/{*} from namespace "web"
          @id("wide") allow POST /items/{**} from namespace "web", namespace "api"
        }""",
    ),
    "overridden-allow": (
        """
        service web.default {
          @id("allow-admin") allow GET /admin/users from namespace "ops"
          @id("deny-admin") deny * /admin/{**} from any
        }""",
        """
        service web.default {
          @id("allow-admin") allow GET /admin/users from namespace "ops"
          @id("deny-admin") deny * /admin/{**} unless source.namespace == "ops"
        }""",
    ),
    "shadowed-deny": (
        """
        service web.default {
          @id("d1") deny * /admin/users from any
          @id("d2") deny * /admin/{**} from any
        }""",
        """
        service web.default {
          @id("d1") deny * /internal/users from any
          @id("d2") deny * /admin/{**} from any
        }""",
    ),
    "duplicate-rule": (
        """
        service web.default {
          @id("one") allow GET /x from namespace "web"
          @id("two") allow GET /x from namespace "web"
        }""",
        """
        service web.default {
          @id("one") allow GET /x from namespace "web"
          @id("two") allow POST /x from namespace "web"
        }""",
    ),
    "allow-all": (
        """
        service web.default {
          @id("open") allow * from any
        }""",
        """
        service web.default {
          @id("open") allow GET /public from any
        }""",
    ),
    "wildcard-principal-rest": (
        """
        service web.default {
          @id("api") allow GET /api/{**} from authenticated
        }""",
        """
        service web.default {
          @id("api") allow GET /api/{**} from sa "default/web"
        }""",
    ),
    "default-allow": (
        """
        service web.default {
          default allow
        }""",
        """
        service web.default {
          default deny
        }""",
    ),
    "wide-rule": (
        """
        service web.default {
          @id("a") allow GET /a from namespace "web"
          @id("b") allow POST /b from namespace "web"
          @id("everything") allow * /{**} from namespace "ops"
        }""",
        """
        service web.default {
          @id("a") allow GET /a from namespace "web"
          @id("b") allow POST /b from namespace "web"
          @id("everything") allow GET, POST /ops/{**} from namespace "ops"
        }""",
    ),
    "unknown-trust-domain": (
        """
        service web.default {
          @id("a") allow GET /x from "spiffe://cluster.locl/ns/default/sa/web"
        }""",
        """
        service web.default {
          @id("a") allow GET /x from "spiffe://cluster.local/ns/default/sa/web"
        }""",
    ),
    "istio-style-principal": (
        """
        service web.default {
          @id("a") allow GET /x from "cluster.local/ns/default/sa/web"
        }""",
        """
        service web.default {
          @id("a") allow GET /x from "ns/default/sa/web"
        }""",
    ),
    "unknown-namespace": (
        """
        service web.default {
          @id("a") allow GET /x from namespace "defualt"
        }""",
        """
        service web.default {
          @id("a") allow GET /x from namespace "default"
        }""",
    ),
    "unknown-service-account": (
        """
        service web.default {
          @id("a") allow GET /x from sa "default/wbe"
        }""",
        """
        service web.default {
          @id("a") allow GET /x from sa "default/web"
        }""",
    ),
    "unknown-service": (
        """
        service wbe.default {
          @id("a") allow GET /x from sa "default/web"
        }""",
        """
        service web.default {
          @id("a") allow GET /x from sa "default/web"
        }""",
    ),
    "jwt-without-issuer": (
        """
        service web.default {
          @id("a") allow GET /x from sa "default/web" when jwt.scope contains "read"
        }""",
        """
        service web.default {
          @id("a") allow GET /x from sa "default/web"
            when jwt.iss == "https://id.example" and jwt.scope contains "read"
        }""",
    ),
    "claim-without-has": (
        """
        service web.default {
          @id("a") deny * /x from any when jwt.tier == "free"
        }""",
        """
        service web.default {
          @id("a") deny * /x from any when has jwt.tier and jwt.tier == "free"
        }""",
    ),
    "list-claim-equality": (
        """
        service web.default {
          @id("a") allow GET /x from sa "default/web" when jwt.groups == "admins"
        }""",
        """
        service web.default {
          @id("a") allow GET /x from sa "default/web" when jwt.groups contains "admins"
        }""",
    ),
    "missing-id": (
        """
        service web.default {
          allow GET /x from sa "default/web"
        }""",
        """
        service web.default {
          @id("a") allow GET /x from sa "default/web"
        }""",
    ),
    "negative-allow": (
        """
        service web.default {
          @id("a") allow GET /x from authenticated unless source.namespace != "default"
        }""",
        """
        service web.default {
          @id("a") allow GET /x from namespace "default"
        }""",
    ),
    "audit-without-enforcement": (
        """
        service web.default {
          @id("a") audit deny * /x from any
        }""",
        """
        service web.default {
          @id("a") audit deny * /x from any
          @id("b") allow GET /y from sa "default/web"
        }""",
    ),
    "can-error": (
        """
        service web.default {
          @id("a") deny * /x from any when request.headers["x-debug"] == "1"
        }""",
        """
        service web.default {
          @id("a") deny * /x from any
            when has request.headers["x-debug"] and request.headers["x-debug"] == "1"
        }""",
    ),
    "bidi-control": (
        """
        # access for the \u202eadmins\u202c team
        service web.default {
          @id("a") allow GET /x from sa "default/web"
        }""",
        """
        # access for the admins team
        service web.default {
          @id("a") allow GET /x from sa "default/web"
        }""",
    ),
    "mixed-script": (
        """
        service web.default {
          @id("readф") allow GET /x from sa "default/web"
        }""",
        """
        service web.default {
          @id("read") allow GET /x from sa "default/web"
        }""",
    ),
    "confusable-text": (
        """
        service web.default {
          @id("pаyments") allow GET /x from sa "default/web"
        }""",
        """
        service web.default {
          @id("payments") allow GET /x from sa "default/web"
        }""",
    ),
    "bad-suppression": (
        """
        service web.default {
          default allow  # meshward: ignore[default-allow]
        }""",
        """
        service web.default {
          default allow  # meshward: ignore[default-allow] the status page is public
        }""",
    ),
    "unused-suppression": (
        """
        service web.default {
          # meshward: ignore[default-allow] left over from when this was public
          @id("a") allow GET /x from sa "default/web"
        }""",
        """
        service web.default {
          @id("a") allow GET /x from sa "default/web"
        }""",
    ),
}


def test_every_code_has_a_case() -> None:
    assert set(CASES) == set(CHECKS)


@pytest.mark.parametrize("code", sorted(CASES))
def test_code_fires_on_the_problem_and_not_on_the_fix(code: str) -> None:
    bad, good = CASES[code]
    assert code in codes(bad, ALL_ON), f"{code} did not fire on:\n{bad}"
    assert code not in codes(good, ALL_ON), f"{code} fired on the fix:\n{good}"


@pytest.mark.parametrize("code", sorted(CASES))
def test_every_finding_has_a_location_message_and_help(code: str) -> None:
    for f in findings(CASES[code][0], ALL_ON):
        assert f.span.file == "p.policy" and f.span.line >= 1 and f.span.column >= 1
        assert f.message and f.help


def test_every_check_documents_a_fix() -> None:
    for check in CHECKS.values():
        assert check.summary and check.help and check.area


def test_examples_lint_without_errors_or_warnings() -> None:
    result = lint(load_paths([EXAMPLES]))
    loud = [f for f in result.findings if f.severity != Severity.INFO]
    assert loud == [], [f"{f.span} {f.code}: {f.message}" for f in loud]


def test_finding_points_at_the_offending_text() -> None:
    (f,) = [f for f in findings(CASES["unmatchable-path"][0]) if f.code == "unmatchable-path"]
    assert (f.span.line, f.span.column) == (4, 22)
    assert f.suggestion == "/api/v1/items"
    assert f.severity == Severity.ERROR


@pytest.mark.parametrize("pattern", ["/{**}", "/", "/{*}", "/a/", "/a/{**}", "/a*", "/a//{**}"])
def test_patterns_some_canonical_path_matches_are_fine(pattern: str) -> None:
    # /a//{**} matches the canonical path /a/ (an empty last segment, nothing after it).
    assert unmatchable_reason(pattern) is None


def test_encoded_slash_in_a_pattern_never_matches() -> None:
    (f,) = [
        f
        for f in findings('service w.x {\n @id("a") allow GET /a%2Fb from any\n}')
        if f.code == "unmatchable-path"
    ]
    assert "ambiguous" in f.message


def test_a_method_excluded_by_the_condition_leaves_nothing() -> None:
    body = """
    service web.default {
      @id("a") allow GET /x from any when request.method != "GET"
    }"""
    assert "unsatisfiable-condition" in codes(body)


def test_deny_with_contradiction_says_it_matches_only_on_errors() -> None:
    body = """
    service web.default {
      @id("d") deny * /x from any when jwt.a == "1" and not jwt.a == "1"
    }"""
    (f,) = [f for f in findings(body) if f.code == "unsatisfiable-condition"]
    assert "fail to evaluate" in f.message


def test_a_conditional_allow_is_not_shadowed_by_a_narrower_condition() -> None:
    body = """
    service web.default {
      @id("a") allow GET /x from any when jwt.tier == "gold"
      @id("b") allow GET /x from any when jwt.tier == "gold" and jwt.scope contains "x"
    }"""
    result = findings(body)
    shadowed = [f for f in result if f.code == "shadowed-allow"]
    assert [f.message.split()[3] for f in shadowed] == ["b"]


def test_a_port_block_rule_is_shadowed_by_an_any_port_rule() -> None:
    body = """
    service web.default {
      @id("any-port") allow GET /x/{**} from any
    }
    service web.default:8080 {
      @id("on-port") allow GET /x/y from any
    }"""
    assert "shadowed-allow" in codes(body)


def test_a_rule_of_a_port_block_never_hides_a_rule_of_every_port() -> None:
    # Deleting the any-port rule as advised would open /old and /admin on other ports.
    body = """
    service web.default:8080 {
      @id("old-8080") deny * /old/{**}
      @id("admin-8080") deny * /admin/{**}
      @id("open-8080") allow GET /open/x from any
    }
    service web.default {
      @id("block-old") deny * /old/{**}
      @id("admin-get") deny GET /admin/{**}
      @id("open") allow GET /open/{*} from any
    }"""
    # (code, the rule a finding is about: the first one its message names)
    about = {(f.code, f.message.split("rule ", 1)[1].split()[0]) for f in findings(body)}
    for rule in ("block-old", "admin-get", "open"):
        assert not {c for c, r in about if r == rule} & {
            "duplicate-rule",
            "shadowed-deny",
            "shadowed-allow",
            "overridden-allow",
        }, rule
    # The other way round stays a finding: the any-port rules hold on 8080 too.
    assert ("duplicate-rule", "old-8080") in about or ("shadowed-deny", "old-8080") in about
    assert ("shadowed-allow", "open-8080") in about


def test_one_segment_never_covers_a_trailing_slash_or_the_root() -> None:
    body = """
    service web.default {
      @id("items") allow GET /items/{*} from any
      @id("items-slash") allow GET /items/ from any
      @id("top") allow GET /{*} from any
      @id("root") allow GET / from any
    }"""
    shadowed = {f.message.split()[3] for f in findings(body) if f.code == "shadowed-allow"}
    assert not shadowed & {"items-slash", "root"}


def test_a_condition_on_the_service_account_alone_is_satisfiable() -> None:
    for effect in ("allow", "deny"):
        body = f"""
        service web.default {{
          @id("a") {effect} GET /a from authenticated when source.service_account == "web"
          @id("b") {effect} GET /b from authenticated when source.service_account matches "w*"
        }}"""
        assert "unsatisfiable-condition" not in codes(body), effect


def test_negative_method_condition_suggests_the_method_list() -> None:
    body = """
    service web.default {
      @id("a") allow GET, POST /x from sa "default/web" when request.method != "POST"
    }"""
    (f,) = [f for f in findings(body) if f.code == "negative-allow"]
    assert f.suggestion == "GET"


def test_negative_host_condition_suggests_a_host_the_checker_accepts() -> None:
    body = """
    service web.default {
      @id("a") allow GET /x from any unless request.host != "Admin.Local."
    }"""
    (f,) = [f for f in findings(body) if f.code == "negative-allow"]
    assert f.suggestion == 'host "admin.local"'


def test_source_attribute_of_authenticated_workloads_cannot_error() -> None:
    body = """
    service web.default {
      @id("a") deny * /x from sa "default/web" when source.namespace == "default"
    }"""
    assert "can-error" not in codes(body)


def test_confusable_text_suggests_the_ascii_spelling() -> None:
    (f,) = [f for f in findings(CASES["confusable-text"][0]) if f.code == "confusable-text"]
    assert f.suggestion == '"payments"'


def test_text_wholly_in_another_script_is_not_confusable() -> None:
    body = """
    service web.default {
      @id("оплата") allow GET /x from sa "default/web"
    }"""
    assert not codes(body, ALL_ON) & {"confusable-text", "mixed-script"}
    assert "confusable-text" in codes(body.replace("оплата", "рау"), ALL_ON)


def test_inventory_did_you_mean() -> None:
    config = LintConfig({}, INVENTORY)
    (f,) = [f for f in findings(CASES["unknown-namespace"][0], config)]
    assert f.suggestion == '"default"'


def test_federated_trust_domain_is_fine_without_an_inventory() -> None:
    body = """
    service web.default {
      @id("a") allow GET /x from "spiffe://partners.example/ns/acme/sa/orders"
    }"""
    assert "unknown-trust-domain" not in codes(body)
    with_inventory = LintConfig({}, INVENTORY)
    assert "unknown-trust-domain" in codes(body, with_inventory)


# --- configuration -------------------------------------------------------------------


def test_severity_can_be_raised_and_turned_off() -> None:
    bad = CASES["default-allow"][0]
    raised = LintConfig.from_table({"severity": {"default-allow": "error"}})
    assert [f.severity for f in findings(bad, raised)] == [Severity.ERROR]
    off = LintConfig.from_table({"severity": {"default-allow": "off"}})
    assert findings(bad, off) == []


def test_off_by_default_checks_stay_quiet_until_enabled() -> None:
    bad = CASES["jwt-without-issuer"][0]
    assert "jwt-without-issuer" not in codes(bad)
    on = LintConfig.from_table({"severity": {"jwt-without-issuer": "warning"}})
    assert "jwt-without-issuer" in codes(bad, on)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"severity": {"shadowed-alow": "error"}}, "did you mean 'shadowed-allow'"),
        ({"severity": {"shadowed-allow": "fatal"}}, '"error", "warning", "info" or "off"'),
        ({"severty": {}}, "unknown lint settings"),
    ],
)
def test_bad_configuration_is_explained(table: dict[str, object], message: str) -> None:
    with pytest.raises(LintConfigError, match=message):
        LintConfig.from_table(table)


def test_inventory_from_json_rejects_wrong_shapes() -> None:
    with pytest.raises(LintConfigError, match="list of strings"):
        Inventory.from_json({"services": "web"})
    inventory = Inventory.from_json({"namespaces": {"default": ["web"], "ops": None}})
    assert inventory.namespaces == {"default": frozenset({"web"}), "ops": frozenset()}


# --- suppressions --------------------------------------------------------------------


def test_suppression_on_its_own_line_covers_the_whole_next_rule() -> None:
    body = """
    service web.default {
      # meshward: ignore[unmatchable-path] kept for a legacy client that sends //
      @id("a")
      allow GET /api//v1 from any
    }"""
    result = lint(load_texts({"p.policy": 'trust_domain "t"\n' + textwrap.dedent(body)}))
    assert [f.code for f in result.findings] == []
    assert result.suppressed == 1


def test_suppression_of_one_code_leaves_the_others() -> None:
    body = """
    service web.default {
      @id("a") allow GET /api//v1 from any  # meshward: ignore[missing-id] not this one
    }"""
    assert codes(body) == {"unmatchable-path", "unused-suppression"}


def test_suppression_with_an_unknown_code_is_reported_with_a_suggestion() -> None:
    body = """
    service web.default {
      default allow  # meshward: ignore[default-alow] public
    }"""
    bad = [f for f in findings(body) if f.code == "bad-suppression"]
    assert bad and bad[0].suggestion == "default-allow"
    assert "default-allow" in codes(body)  # not silenced by a misspelt suppression


def test_suppressing_a_disabled_check_is_not_unused() -> None:
    body = """
    service web.default {
      default allow  # meshward: ignore[default-allow] public
    }"""
    off = LintConfig.from_table({"severity": {"default-allow": "off"}})
    assert codes(body, off) == set()


# --- the cover test behind the shadow checks -------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_covering_rule_matches_every_request_the_covered_rule_matches(
    data: st.DataObject, gen: Any
) -> None:
    policy = load_texts(data.draw(gen.policy_texts)).policy
    pairs = [
        (a, b)
        for service in policy.services.values()
        for a in service.rules
        for b in service.rules
        if a is not b and covers(b, a)
    ]
    for request in data.draw(st.lists(gen.requests, min_size=10, max_size=30)):
        matched = {t.rule_id for t in explain(policy, request).traces if t.matched}
        for a, b in pairs:
            if a.rule_id in matched:
                assert b.rule_id in matched, (a, b, request)


def test_an_allow_with_the_deny_s_condition_does_not_cover_it() -> None:
    # Without a JWT the condition cannot be evaluated: the deny matches, the allow fails.
    policy = load_texts(
        {
            "p.policy": 'trust_domain "td"\nservice s {\n'
            '  @id("d") deny * unless jwt.role == "admin"\n'
            '  @id("a") allow * unless jwt.role == "admin"\n'
            '  @id("any") allow *\n}\n'
        }
    ).policy
    deny, allow, unconditional = policy.services[next(iter(policy.services))].rules
    assert not covers(allow, deny)
    assert covers(unconditional, deny)
    matched = {t.rule_id for t in explain(policy, Request("s", "GET", "/")).traces if t.matched}
    assert matched == {"d", "any"}


def test_an_allow_from_a_network_does_not_cover_a_deny_from_it() -> None:
    # A source IP that is not an address: the deny's `ip` source matches, the allow's not.
    policy = load_texts(
        {
            "p.policy": 'service s {\n  @id("d") deny * from ip "10.0.0.0/8"\n'
            '  @id("a") allow * from ip "10.0.0.0/8"\n  @id("any") allow * from any\n}\n'
        }
    ).policy
    deny, allow, anyone = policy.services[next(iter(policy.services))].rules
    assert not covers(allow, deny)
    assert covers(anyone, deny)
    traces = explain(policy, Request("s", "GET", "/", source_ip="10.0.0.1:443")).traces
    assert {t.rule_id for t in traces if t.matched} == {"d", "any"}
