"""The benchmark workload and its translations: every engine must decide as meshward does.

Correctness only; nothing here measures time.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from bench import engines, workload
from bench.__main__ import main, run_suite, write_section
from bench.workload import Access, generate_mesh, generate_requests
from meshward.policy import Request, compile_policy, evaluate, load_texts, reference_decide

SIZE = 400
N_REQUESTS = 1_500


@pytest.fixture(scope="module")
def mesh() -> workload.Mesh:
    return generate_mesh(SIZE, seed=3)


@pytest.fixture(scope="module")
def requests(mesh: workload.Mesh) -> list[Access]:
    return generate_requests(mesh, N_REQUESTS, seed=4)


@pytest.fixture(scope="module")
def meshward_decisions(mesh: workload.Mesh, requests: list[Access]) -> list[bool]:
    engine = engines.MeshwardEngine(mesh)
    return [engine.decide(a) for a in requests]


# --- the generator -------------------------------------------------------------------


def test_same_seed_same_workload() -> None:
    assert generate_mesh(150, seed=5) == generate_mesh(150, seed=5)
    assert generate_mesh(150, seed=5) != generate_mesh(150, seed=6)
    mesh = generate_mesh(150, seed=5)
    assert generate_requests(mesh, 50, seed=1) == generate_requests(mesh, 50, seed=1)


@pytest.mark.parametrize("size", [1, 10, 100, 1_000])
def test_exact_rule_count_and_shape(size: int) -> None:
    mesh = generate_mesh(size)
    assert len(mesh.rules) == size
    assert len({r.rule_id for r in mesh.rules}) == size
    assert {s.namespace for s in mesh.services} <= set(workload.NAMESPACES)
    assert sum(len(v) for v in mesh.rules_by_service().values()) == size
    for rule in mesh.rules:
        assert rule.paths and rule.sources
        assert rule.effect == "allow" or rule.claim is None  # only allows carry conditions


def test_mix_of_rule_kinds() -> None:
    mesh = generate_mesh(1_000)
    rules = mesh.rules
    assert len(mesh.services) == workload.SERVICES
    assert {s.namespace for s in mesh.services} == set(workload.NAMESPACES)
    assert 0.05 < sum(r.effect == "deny" for r in rules) / len(rules) < 0.2
    assert any(r.claim is not None and r.claim.op == "contains" for r in rules)
    assert any(r.claim is not None and r.claim.op == "==" for r in rules)
    assert any(s.kind == "namespace" for r in rules for s in r.sources)
    assert any(s.kind == "principal" for r in rules for s in r.sources)
    assert any(r.methods is None for r in rules)
    templates = {p for r in rules for p in r.paths}
    assert any("{*}" in p for p in templates) and any(p.endswith("{**}") for p in templates)


def test_about_half_the_stream_is_allowed(mesh: workload.Mesh, requests: list[Access]) -> None:
    assert 0.4 < workload.allowed_fraction(workload.NaiveScan(mesh), requests) < 0.65
    assert any(a.principal is None for a in requests)
    assert any(a.claims is None for a in requests)
    assert any(a.destination not in mesh.rules_by_service() for a in requests)


@pytest.mark.parametrize(
    ("template", "path", "matches"),
    [
        ("/api/v1/orders", "/api/v1/orders", True),
        ("/api/v1/orders", "/api/v1/orders/1", False),
        ("/api/v1/orders/{*}", "/api/v1/orders/1", True),
        ("/api/v1/orders/{*}", "/api/v1/orders/", False),
        ("/api/v1/orders/{*}", "/api/v1/orders/1/2", False),
        ("/api/v1/orders/{*}/items", "/api/v1/orders/1/items", True),
        ("/api/v1/orders/{**}", "/api/v1/orders", True),
        ("/api/v1/orders/{**}", "/api/v1/orders/1/2/3", True),
        ("/api/v1/orders/{**}", "/api/v1/ordersx", False),
        ("/internal/{*}/{**}", "/internal/a", True),
        ("/internal/{*}/{**}", "/internal", False),
    ],
)
def test_path_templates(template: str, path: str, matches: bool) -> None:
    from meshward.policy.paths import parse_path_pattern

    assert (re.match(workload.path_regex(template), path) is not None) == matches
    assert parse_path_pattern(template).matches(path) == matches


# --- meshward and the reference semantics ---------------------------------------------


def test_rendered_text_is_valid_meshward(mesh: workload.Mesh) -> None:
    loaded = load_texts(workload.render_meshward(mesh))
    assert len(loaded.policy.rules()) == SIZE
    assert {r.rule_id for r in loaded.policy.rules()} == {r.rule_id for r in mesh.rules}


def test_meshward_agrees_with_the_workload_semantics(
    mesh: workload.Mesh, requests: list[Access], meshward_decisions: list[bool]
) -> None:
    naive = workload.NaiveScan(mesh)
    assert meshward_decisions == [naive.decide(a) for a in requests]


def test_tables_agree_with_the_reference_interpreter(
    mesh: workload.Mesh, requests: list[Access]
) -> None:
    policy = load_texts(workload.render_meshward(mesh)).policy
    compiled = compile_policy(policy)
    for a in requests[:500]:
        request = Request(a.destination, a.method, a.path, principal=a.principal, jwt=a.claims)
        assert evaluate(compiled, request).allowed == reference_decide(policy, request).allowed


# --- peers: the same decisions on every request ---------------------------------------


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("cedar", "cedarpy"),
        ("cedar-caller", "cedarpy"),
        ("rego", "regorus"),
        ("rego-dst", "regorus"),
        ("casbin", "casbin"),
    ],
)
def test_peer_decides_as_meshward(
    name: str,
    module: str,
    mesh: workload.Mesh,
    requests: list[Access],
    meshward_decisions: list[bool],
) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (the bench extra)")
    peer = engines.PEERS[name](mesh)
    got = [peer.decide(a) for a in requests]
    differ = [a for a, x, y in zip(requests, got, meshward_decisions, strict=True) if x != y]
    assert not differ, f"{name} differs on {len(differ)} requests, e.g. {differ[0]}"


def test_source_row_runs_the_sources_and_decides_as_the_compiled_build(
    mesh: workload.Mesh, requests: list[Access], meshward_decisions: list[bool]
) -> None:
    """The bench's `meshward (source)` row: under a compiled install, the same package
    loaded again from its Python sources, deciding every request alike (in the source tree
    there is nothing to compare, and no such row)."""
    from meshward.policy import hot_path_compiled

    source = engines.source_policy_package()
    if not hot_path_compiled():
        assert source is None
        return
    assert source is not None
    assert not source.hot_path_compiled()
    assert source.evaluator.__file__.endswith(".py")
    plain = engines.MeshwardEngine(mesh, source)
    assert [plain.decide(a) for a in requests] == meshward_decisions


def test_rego_module_has_no_every() -> None:
    # regorus 0.13's RVM mis-evaluates `every` over a multi-clause function; the
    # translation must keep avoiding it.
    assert "every " not in engines.REGO_MODULE
    assert "every " not in engines.REGO_MODULE_BY_CALLER


def test_rego_data_by_caller_lists_a_rule_under_each_source() -> None:
    rule = workload.RuleSpec(
        "r0",
        "svc-0.ops",
        "deny",
        None,
        ("/a",),
        (workload.Source("principal", "spiffe://x/ns/a/sa/b"), workload.Source("namespace", "a")),
    )
    service = workload.Service("svc-0.ops", "ops", ("orders",))
    mesh = workload.Mesh(1, workload.TRUST_DOMAIN, workload.NAMESPACES, (service,), (), (rule,))
    slot = engines.rego_data_by_caller(mesh)["services"]["svc-0.ops"]
    by_principal = slot["principals"]["spiffe://x/ns/a/sa/b"]
    assert list(by_principal) == ["*"]  # the rule names no method
    assert by_principal["*"]["deny"] == slot["namespaces"]["a"]["*"]["deny"]
    assert slot["namespaces"]["a"]["*"]["allow"] == []


def test_rego_data_by_caller_lists_a_rule_under_each_method() -> None:
    rule = workload.RuleSpec(
        "r0",
        "svc-0.ops",
        "allow",
        ("GET", "HEAD"),
        ("/a",),
        (workload.Source("namespace", "a"),),
    )
    service = workload.Service("svc-0.ops", "ops", ("orders",))
    mesh = workload.Mesh(1, workload.TRUST_DOMAIN, workload.NAMESPACES, (service,), (), (rule,))
    by_method = engines.rego_data_by_caller(mesh)["services"]["svc-0.ops"]["namespaces"]["a"]
    assert sorted(by_method) == ["GET", "HEAD"]
    assert by_method["GET"]["allow"] == by_method["HEAD"]["allow"] != []


def test_cedar_policy_text() -> None:
    rule = workload.RuleSpec(
        "r1",
        "svc-1.ops",
        "deny",
        ("DELETE",),
        ("/admin/{**}", "/api/v1/orders/{*}"),
        (workload.Source("namespace", "ops"),),
    )
    text = engines.cedar_policy(rule)
    assert text.startswith('@id("r1")\nforbid (principal in Namespace::"ops"')
    assert 'action in [Action::"DELETE"]' in text
    assert "context.n >= 1" in text and 'context.seg.s3 != ""' in text


def test_casbin_lines_expand_sources_and_paths() -> None:
    mesh = workload.Mesh(
        1,
        workload.TRUST_DOMAIN,
        workload.NAMESPACES,
        (workload.Service("svc-0.ops", "ops", ("orders",)),),
        (),
        (
            workload.RuleSpec(
                "r0",
                "svc-0.ops",
                "allow",
                None,
                ("/a", "/b/{*}"),
                (
                    workload.Source("principal", "spiffe://x/ns/a/sa/b"),
                    workload.Source("namespace", "a"),
                ),
            ),
        ),
    )
    lines = engines.casbin_lines(mesh)
    assert len(lines) == 4
    assert ["svc-0.ops", "ns:a", "*", "^/b/[^/]+$", "", "allow"] in lines


# --- the command ----------------------------------------------------------------------


def test_results_section_replaced_and_others_kept(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## CA issuance\n\nfast\n")
    write_section("## Policy engine\n\nfirst\n", results)
    write_section("## Policy engine\n\nsecond\n", results)
    text = results.read_text()
    assert "## CA issuance\n\nfast" in text
    assert "second" in text and "first" not in text
    assert text.count("## Policy engine") == 1


def test_absent_suite_is_reported_not_fatal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench import __main__ as cli

    monkeypatch.setitem(cli.SUITES, "ca", "bench.no_such_suite_module")
    assert run_suite("ca", []) == 0
    assert "not available" in capsys.readouterr().out


def test_unknown_suite_is_a_usage_error() -> None:
    assert main(["nonsense"]) == 2
