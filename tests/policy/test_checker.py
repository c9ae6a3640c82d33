from __future__ import annotations

import textwrap

import pytest

from meshward.policy import PolicyError, load_texts


def check_errors(*texts: str) -> list:
    return diagnostics_of({f"f{i}.policy": textwrap.dedent(t) for i, t in enumerate(texts)})


def diagnostics_of(texts: dict[str, str]) -> list:
    with pytest.raises(PolicyError) as info:
        load_texts(texts)
    return list(info.value.diagnostics)


def only(diags: list, code: str):
    found = [d for d in diags if d.code == code]
    assert found, f"no {code} in {[d.code for d in diags]}"
    return found[0]


def test_unknown_set_suggests_the_closest_name():
    d = only(
        check_errors(
            """
            trust_domain "cluster.local"
            principals frontends = ["ns/a/sa/b"]
            service s { allow GET /x from frontend }
            """
        ),
        "unknown-set",
    )
    assert d.suggestion == "frontends"
    assert (d.span.line, d.span.column) == (4, 31)


def test_duplicate_id_points_at_the_first_use_across_files():
    d = only(
        check_errors(
            'service a { @id("x") allow GET /a }',
            'service b { @id("x") allow GET /b }',
        ),
        "duplicate-id",
    )
    assert "f0.policy:1:17" in d.message and d.span.file == "f1.policy"


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ('"spiffe://Cluster.local/ns/a"', "lower-case"),
        ('"spiffe://td/ns//sa"', "empty"),
        ('"spiffe://td/ns/a/"', "end with '/'"),
        ('"spiffe://td/a%20b"', "percent"),
        ('"spiffe://td/a?x=1"', "query"),
        ('"spiffe://td:8080/a"', "port"),
        ('"spiffe://user@td/a"', "userinfo"),
        ('"spiffe://td/a/../b"', "'..'"),
        ('"spiffe://td"', "whole trust domain"),
        ('"spiffe://spiffe://td/a"', "twice"),
    ],
)
def test_malformed_spiffe_ids_name_the_broken_rule(source, fragment):
    d = only(check_errors(f"service s {{ allow GET /x from {source} }}"), "bad-spiffe-id")
    assert fragment in d.message


def test_relative_id_needs_a_trust_domain():
    diags = check_errors('service s { allow GET /x from "ns/a/sa/b", namespace "a" }')
    assert [d.code for d in diags] == ["no-trust-domain", "no-trust-domain"]
    assert "trust_domain" in (diags[0].help or "")


def test_every_semantic_error_is_reported_together_and_nothing_compiles():
    diags = check_errors(
        """
        trust_domain "td"
        service s:70000 { allow GET /x }
        service t {
          allow GET /a/{**}/b from any
          allow GET /x when source.namspace == "a"
          allow GET /x when jwt.exp contains "x"
          allow GET /x from ip "10.0.0.1/8"
          allow GET /x when source.ip within ["300.0.0.0/8"]
          allow GET /x host "a.com:80"
          allow GET /x when jwt.a == ["a"]
          allow GET /x when destination.port == "80"
        }
        """
    )
    codes = [d.code for d in diags]
    assert codes.count("type-mismatch") == 3
    for code in ("bad-port", "bad-path", "unknown-attribute", "bad-cidr", "host-with-port"):
        assert code in codes
    assert only(diags, "unknown-attribute").suggestion == "source.namespace"
    assert only(diags, "bad-cidr").suggestion == "10.0.0.0/8"
    assert "{**}" in only(diags, "bad-path").message


def test_type_mismatch_names_the_types():
    d = only(check_errors('service s { allow GET /x when jwt.exp contains "x" }'), "type-mismatch")
    assert "jwt.exp is a number" in d.message


def test_default_is_refused_when_a_service_is_extended_across_files():
    diags = check_errors(
        "service s { default allow\n allow GET /a }",
        "service s { allow GET /b }",
    )
    assert only(diags, "default-in-extended-service").span.file == "f0.policy"


def test_each_port_may_have_its_default_where_one_block_decides_it(policy):
    # Blocks on different ports share no request: each sets its own port's default.
    p = policy(
        "service s:8080 { default allow\n deny GET /admin }",
        "service s:9090 { allow GET /b }",
    )
    assert p.decide("s", path="/x", port=8080).allowed
    assert not p.decide("s", path="/admin", port=8080).allowed
    assert not p.decide("s", path="/x", port=9090).allowed
    # A block on every port shares port 8080's requests: its rules would be decided under
    # a default another file set.
    diags = check_errors("service s:8080 { default allow }", "service s { allow GET /b }")
    d = only(diags, "default-in-extended-service")
    assert d.span.file == "f0.policy" and "on port 8080 is written in 2 blocks" in d.message


def test_principal_set_cycles_and_reserved_names():
    diags = check_errors(
        """
        principals a = [b]
        principals b = [a]
        principals any = ["spiffe://td/x"]
        """
    )
    assert "set-cycle" in [d.code for d in diags]
    assert "reserved-name" in [d.code for d in diags]


def test_derived_rule_ids_are_stable_and_file_based():
    loaded = load_texts(
        {"dir/a.policy": "# c\nservice s {\n allow GET /a\n # moved\n allow GET /b\n}\n"}
    )
    assert [r.rule_id for r in loaded.policy.rules()] == ["a.policy:s:1", "a.policy:s:2"]


def test_derived_rule_ids_count_per_destination_and_file_and_name_the_port():
    loaded = load_texts(
        {
            "a.policy": "service s { allow GET /a }\nservice s:8080 { allow GET /b }\n"
            "service s { allow GET /c }\n",
            "b.policy": "service s { allow GET /d }\n",
        }
    )
    by_path = {r.paths[0].text: r.rule_id for r in loaded.policy.rules()}
    assert by_path == {
        "/a": "a.policy:s:1",
        "/b": "a.policy:s:8080:1",
        "/c": "a.policy:s:2",
        "/d": "b.policy:s:1",
    }


def test_derived_ids_that_would_collide_are_an_error_whatever_the_file_order():
    texts = {
        "one/r.policy": "service x { allow GET /a }",
        "two/r.policy": "service x { deny GET /a }",
    }
    for order in (texts, dict(reversed(texts.items()))):
        (d,) = diagnostics_of(order)
        assert d.code == "duplicate-id" and "'r.policy:x:1'" in d.message
        assert "give one of them an @id" in (d.help or "")


def test_a_written_id_equal_to_a_derived_one_is_an_error_whatever_the_order():
    derived = "service x { allow GET /a }"
    written = 'service y { @id("a.policy:x:1") allow GET /b }'
    for texts in (
        {"a.policy": derived, "b.policy": written},
        {"b.policy": written, "a.policy": derived},
    ):
        (d,) = diagnostics_of(texts)
        assert d.code == "duplicate-id" and d.span.file == "b.policy"


@pytest.mark.parametrize("name", ["td/ns/prod", "TD", "td:443", "", "a b"])
def test_a_trust_domain_is_a_name_not_an_id(name):
    declared = check_errors(f'trust_domain "{name}"\nservice s {{ allow GET /a }}')
    assert only(declared, "bad-trust-domain").span.line == 1
    used = check_errors(f'service s {{ allow GET /a from trust_domain "{name}" }}')
    assert only(used, "bad-trust-domain").span.line == 1


@pytest.mark.parametrize("rule_id", ["a\\nb", "a\\u0000", "tab\\there", "x\\u2028y"])
def test_a_rule_id_holds_no_control_characters(rule_id):
    diags = check_errors(f'service s {{ @id("{rule_id}") allow GET /a }}')
    assert "control characters" in only(diags, "bad-id").message


def test_a_host_compared_in_a_condition_carries_no_port():
    diags = check_errors('service s { allow GET /a when request.host == "admin.local:8080" }')
    assert "request.host is compared without one" in only(diags, "host-with-port").message
    load_texts({"a.policy": 'service s { allow GET /a when request.host == "[::1]" }'})


def test_ports_of_any_length_and_path_patterns_of_too_many_segments_are_errors():
    from meshward.policy.paths import MAX_PATTERN_SEGMENTS

    # Thousands of digits: int() alone refuses them with a traceback.
    diags = check_errors(
        f"service s:{'9' * 5_000} {{ allow GET /x }}\n"
        f"service t {{ allow GET /x port 0{'0' * 4_999}, 065535, 8{'0' * 20} }}\n"
    )
    ports = [d.message for d in diags if d.code == "bad-port"]
    assert ports == [
        "port 999999999999… (5000 digits) is outside 1..65535",
        "port 0 is outside 1..65535",
        "port 800000000000… (21 digits) is outside 1..65535",
    ]
    longest = "/a" * MAX_PATTERN_SEGMENTS
    load_texts({"ok.policy": f"service s {{ allow GET {longest}, /b{longest[4:]}/{{**}} }}"})
    for pattern in (longest + "/a", "/b" + longest + "*"):
        d = only(check_errors(f"service s {{ allow GET {pattern} }}"), "bad-path")
        assert f"at most {MAX_PATTERN_SEGMENTS} segments" in d.message
