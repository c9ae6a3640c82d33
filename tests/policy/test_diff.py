"""Policy diff: exact (every request whose decision flips is of a kind the diff lists,
with the same deciding rules), sound (every listed example really flips), and readable."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshward.policy import Request, load_texts, reference_decide
from meshward.policy.diff import PolicyDiff, diff_policies
from meshward.policy.diff_report import render_human, render_json, render_markdown
from meshward.policy.graph import edges


def _policy(body: str) -> Any:
    return load_texts({"p.policy": 'trust_domain "td"\n' + textwrap.dedent(body)}).policy


def _kinds(diff: PolicyDiff) -> set[tuple[str, str, tuple[str, ...], tuple[str, ...]]]:
    return {
        (d.destination, c.direction, c.before_rules, c.after_rules)
        for d in diff.destinations
        for c in d.changes
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_request_the_diff_does_not_list_decides_the_same(
    data: st.DataObject, gen: Any
) -> None:
    old_texts, new_texts = data.draw(gen.versions)
    old = load_texts(old_texts).policy
    new = load_texts(new_texts).policy
    diff = diff_policies(old, new, max_examples=2)
    assert diff.complete
    kinds = _kinds(diff)
    # Sound: every example flips, and the reference interpreter agrees on the rules.
    for d in diff.destinations:
        for c in d.changes:
            for example in c.examples:
                before, after = reference_decide(old, example), reference_decide(new, example)
                assert before.allowed == (c.direction == "narrower")
                assert after.allowed == (c.direction == "wider")
                assert (before.rule_ids, after.rule_ids) == (c.before_rules, c.after_rules)
    # Exact: a request that flips is of a kind the diff lists.
    for request in data.draw(st.lists(gen.requests, min_size=20, max_size=40)):
        before, after = reference_decide(old, request), reference_decide(new, request)
        if before.allowed == after.allowed:
            continue
        kind = (
            request.destination,
            "wider" if after.allowed else "narrower",
            before.rule_ids,
            after.rule_ids,
        )
        assert kind in kinds, (request, sorted(kinds))


def test_identical_policies_are_unchanged_even_when_rules_move_and_ids_change() -> None:
    old = _policy(
        """
        service s.x {
          @id("a") allow GET /a from namespace "web"
          @id("b") deny * /admin/{**} from any
        }"""
    )
    new = _policy(
        """
        service s.x {
          @id("deny-admin") deny * /admin/{**} from any
          @id("read-a") allow GET /a from namespace "web"
        }"""
    )
    diff = diff_policies(old, new)
    assert [d.status for d in diff.destinations] == ["unchanged"]
    assert diff.destinations[0].requests_checked == 0


def test_a_condition_change_is_found_with_its_example() -> None:
    old = _policy(
        """
        service pay.x {
          @id("refund-mfa") deny POST /refunds/{**} unless jwt.acr == "mfa"
          @id("refund") allow POST /refunds/{**} from namespace "checkout"
        }"""
    )
    new = _policy(
        """
        service pay.x {
          @id("refund-mfa") deny POST /refunds/{**} unless jwt.acr in ["mfa", "otp"]
          @id("refund") allow POST /refunds/{**} from namespace "checkout"
        }"""
    )
    (d,) = diff_policies(old, new).changed
    assert d.status == "wider"
    (change,) = d.changes
    assert (change.before_rules, change.after_rules) == (("refund-mfa",), ("refund",))
    example = change.examples[0]
    assert example.jwt == {"acr": "otp"}
    assert example.principal is not None and "/ns/checkout/" in example.principal


def test_a_service_account_condition_change_is_found() -> None:
    rule = 'service s.x {{ @id("a") allow GET /a from authenticated when {} }}'
    old = _policy(rule.format('source.service_account == "web"'))
    new = _policy(rule.format('source.service_account == "api"'))
    (d,) = diff_policies(old, new).changed
    flips = {(c.direction, c.examples[0].principal.rsplit("/", 1)[-1]) for c in d.changes}
    assert flips == {("narrower", "web"), ("wider", "api")}


def test_a_list_claim_of_another_kind_is_its_own_kind_of_request() -> None:
    # `jwt.g contains "a"` cannot be evaluated on [1]: the new deny matches there.
    old = _policy('service s.x { @id("a") allow * from any when not (jwt.g contains 3) }')
    new = _policy(
        'service s.x {\n @id("a") allow * from any when not (jwt.g contains 3)\n'
        ' @id("d") deny * when jwt.g contains "a"\n}'
    )
    (d,) = diff_policies(old, new).changed
    (change,) = d.changes
    assert (change.direction, change.after_rules) == ("narrower", ("d",))
    example = change.examples[0]
    assert example.jwt is not None and not any(isinstance(v, str) for v in example.jwt["g"])


def test_narrower_and_wider_at_once() -> None:
    old = _policy(
        """
        service s.x {
          @id("r") allow GET /a from namespace "web"
        }"""
    )
    new = _policy(
        """
        service s.x {
          @id("r") allow GET /a from namespace "ops"
        }"""
    )
    (d,) = diff_policies(old, new).changed
    assert d.status == "both"
    assert {c.direction for c in d.changes} == {"wider", "narrower"}


def test_a_new_destination_and_a_changed_default() -> None:
    old = _policy(
        """
        service s.x {
          @id("r") allow GET /a from any
        }"""
    )
    new = _policy(
        """
        service s.x {
          default allow
          @id("r") allow GET /a from any
        }
        service t.x {
          @id("t") allow GET /t from any
        }"""
    )
    diff = diff_policies(old, new)
    status = {d.destination: d.status for d in diff.destinations}
    assert status == {"s.x": "wider", "t.x": "wider"}
    (s,) = [d for d in diff.destinations if d.destination == "s.x"]
    assert s.changes[0].after_rules == ()  # the default decides now
    assert diff.wider


def test_reports_in_every_format() -> None:
    old = _policy(
        """
        service s.x {
          @id("r") allow GET /a from namespace "web"
        }"""
    )
    new = _policy(
        """
        service s.x {
          @id("r") allow GET, DELETE /a from namespace "web"
        }"""
    )
    diff = diff_policies(old, new)
    human = render_human(diff)
    assert "s.x: WIDER" in human and "DELETE /a -> s.x" in human
    doc = json.loads(render_json(diff))
    assert doc["wider"] is True
    example = doc["destinations"][0]["changes"][0]["examples"][0]
    assert Request.from_json(example).method == "DELETE"
    markdown = render_markdown(diff, edges(old, merge=False), edges(new, merge=False))
    assert "| `s.x` |" in markdown
    assert "```mermaid" in markdown and "added DELETE,GET /a" in markdown
    assert "removed GET /a" in markdown


def test_unchanged_markdown_says_so() -> None:
    policy = _policy('service s.x {\n  @id("r") allow GET /a from any\n}')
    assert "No request changes its decision." in render_markdown(diff_policies(policy, policy))


def test_cell_limit_makes_the_result_incomplete() -> None:
    old = _policy('service s.x {\n  @id("r") allow GET /a from any\n}')
    new = _policy('service s.x {\n  @id("r") allow GET /a, /b from any\n}')
    diff = diff_policies(old, new, cell_limit=1)
    assert not diff.complete
    assert "incomplete" in render_human(diff)


_CONDITIONS = [
    'jwt.realm.roles contains "x"',
    "has jwt.realm",
    'jwt.realm == "y"',
    "has jwt.realm.roles",
    'not jwt.realm.roles contains "z"',
    'request.host matches "*.ex.com"',
    'source.principal matches "spiffe://td/ns/a/*"',
    'connection.sni == "s1"',
    "destination.port == 8080",
]
_rule = st.builds(
    lambda effect, cond, method: f"{effect} {method} /p from any when {cond}",
    st.sampled_from(["allow", "deny"]),
    st.sampled_from(_CONDITIONS),
    st.sampled_from(["GET", "*"]),
)
_request = st.builds(
    Request,
    destination=st.just("s.x"),
    method=st.sampled_from(["GET", "POST"]),
    path=st.just("/p"),
    port=st.sampled_from([None, 8080, 9]),
    host=st.sampled_from([None, "a.ex.com", "ex.com", "b.c"]),
    sni=st.sampled_from([None, "s1", "s2"]),
    principal=st.sampled_from([None, "spiffe://td/ns/a/sa/b", "spiffe://td/ns/c/sa/b"]),
    jwt=st.sampled_from(
        [
            None,
            {},
            {"realm": "y"},
            {"realm": {}},
            {"realm": {"roles": ["x"]}},
            {"realm": {"roles": ["z", "x"]}},
            {"realm": {"roles": "x"}},
            {"realm": 5},
        ]
    ),
)


def _service(rules: list[str]) -> Any:
    body = "\n".join(f'  @id("r{i}") {r}' for i, r in enumerate(rules))
    return load_texts({"a.policy": f'trust_domain "td"\nservice s.x {{\n{body}\n}}\n'}).policy


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_rule, max_size=2),
    st.lists(_rule, max_size=2),
    st.lists(_rule, max_size=2),
    st.lists(_request, min_size=20, max_size=20),
)
def test_nested_claims_globs_sni_and_port_conditions_are_exact(
    shared: list[str], old_only: list[str], new_only: list[str], requests: list[Request]
) -> None:
    old, new = _service(shared + old_only), _service(shared + new_only)
    kinds = _kinds(diff_policies(old, new))
    for request in requests:
        before, after = reference_decide(old, request), reference_decide(new, request)
        if before.allowed != after.allowed:
            direction = "wider" if after.allowed else "narrower"
            assert ("s.x", direction, before.rule_ids, after.rule_ids) in kinds, request


def _flips(old_body: str, new_body: str, requests: list[Request]) -> None:
    """Every request whose decision flips is of a kind the diff lists."""
    old, new = _policy(old_body), _policy(new_body)
    kinds = _kinds(diff_policies(old, new))
    flipped = 0
    for request in requests:
        before, after = reference_decide(old, request), reference_decide(new, request)
        if before.allowed != after.allowed:
            flipped += 1
            direction = "wider" if after.allowed else "narrower"
            kind = (request.destination, direction, before.rule_ids, after.rule_ids)
            assert kind in kinds, request
    assert flipped  # the case is a real flip


def test_an_address_outside_a_claims_network_is_its_own_kind() -> None:
    _flips(
        'service s.web { @id("office") allow * when jwt.client_ip within ["10.0.0.0/8"] }',
        'service s.web { @id("office") allow * unless jwt.client_ip within ["10.0.0.0/8"] }',
        [Request("s.web", "GET", "/", jwt={"client_ip": "192.0.2.1"})],
    )


def test_a_glob_meeting_a_wildcard_path_or_host_is_its_own_kind() -> None:
    _flips(
        """service s.web {
          @id("api") allow * when request.path matches "/api/*"
          @id("no-b") deny POST /{*}/b
        }""",
        'service s.web { @id("api") allow * when request.path matches "/api/*" }',
        [Request("s.web", "POST", "/api/b")],
    )
    _flips(
        """service s.web {
          @id("api") allow * when request.host matches "api*"
          @id("ex") deny * host "*.example.com"
        }""",
        'service s.web { @id("api") allow * when request.host matches "api*" }',
        [Request("s.web", "GET", "/", host="api.example.com")],
    )


def test_a_source_ip_that_is_not_an_address_is_its_own_kind() -> None:
    _flips(
        """service s.web {
          @id("d1") deny POST from ip "10.0.0.0/8"
          @id("d2") deny POST from ip "192.168.0.0/16"
          @id("a") allow * from any
        }""",
        'service s.web { @id("a") allow * from any }',
        [Request("s.web", "POST", "/", source_ip=ip) for ip in ("garbage", "10.0.0.1")],
    )


def test_a_request_without_a_port_flips_when_port_bound_denies_come_or_go() -> None:
    no_port = [Request("s.web", "GET", path) for path in ("/other", "/admin")]
    port_bound = """service s.web {
          default allow
          @id("no-admin") deny GET /admin port 8443
        }"""
    everywhere = """service s.web {
          default allow
          @id("no-admin") deny GET /admin
        }"""
    _flips(port_bound, everywhere, no_port)  # /other: denied (port unknown), now allowed
    _flips(everywhere, port_bound, no_port)
    audit = port_bound.replace('@id("no-admin") deny', '@id("no-admin") audit deny')
    _flips(port_bound, audit, no_port)
