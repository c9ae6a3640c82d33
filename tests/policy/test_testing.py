"""Policy test files: reading them, running cases, coverage, JUnit XML."""

from __future__ import annotations

import textwrap
from pathlib import Path
from xml.etree import ElementTree

import pytest

from meshward.policy import load_texts
from meshward.policy.testing import (
    PolicyTestError,
    find_test_files,
    read_cases,
    render_junit,
    render_trace,
    run_cases,
)
from meshward.testing import configmap

POLICY = textwrap.dedent(
    """\
    trust_domain "cluster.local"
    service reviews.default {
      @id("reviews-read")
      allow GET /reviews/{*} from sa "default/web"

      @id("reviews-admin")
      deny * /admin/{**} unless source.namespace == "ops"

      @id("reviews-legacy")
      audit deny * /v1/{**} from any
    }
    """
)

CASES = textwrap.dedent(
    """\
    cases:
      - name: web reads a review
        request:
          destination: reviews.default
          method: GET
          path: /reviews/1
          source: {principal: spiffe://cluster.local/ns/default/sa/web}
        expect: allow
        rule: reviews-read
      - name: nobody else
        request: {destination: reviews.default, method: GET, path: /reviews/1}
        expect: deny
        rule: null
    """
)


def _policy():  # type: ignore[no-untyped-def]
    return load_texts({"reviews.policy": POLICY}).policy


def test_cases_pass_and_coverage_counts_matched_rules() -> None:
    cases = read_cases(CASES, "reviews.policytest.yaml")
    assert [c.line for c in cases] == [2, 10]
    report = run_cases(_policy(), cases)
    assert report.failed == []
    assert report.uncovered == ["reviews-admin", "reviews-legacy"]
    assert report.coverage == pytest.approx(100 / 3)


def test_failure_says_what_was_expected_and_what_happened() -> None:
    text = CASES.replace("expect: allow", "expect: deny").replace(
        "rule: null", "rule: reviews-read"
    )
    report = run_cases(_policy(), read_cases(text, "t.policytest.yaml"))
    first, second = report.failed
    assert first.failures == ("expected deny, got allow (allowed by rule reviews-read)",)
    assert second.failures == ("expected rule reviews-read to decide, but no rule decided",)
    trace = render_trace(first.explanation)
    assert trace[0] == "canonical path: /reviews/1"
    assert any(line.startswith("[matched] reviews-read (allow") for line in trace)
    assert any("[no match] reviews-admin" in line for line in trace)


def test_audit_expectations() -> None:
    text = textwrap.dedent(
        """\
        - name: legacy path is audited
          request: {destination: reviews.default, method: GET, path: /v1/x}
          expect: deny
          audit: [reviews-legacy]
        - name: wrongly expected audit
          request: {destination: reviews.default, method: GET, path: /v2/x}
          expect: deny
          audit: [reviews-legacy]
        """
    )
    report = run_cases(_policy(), read_cases(text, "t.json"))
    (failed,) = report.failed
    assert failed.case.name == "wrongly expected audit"
    assert failed.failures == ("expected audit rules [reviews-legacy], matched []",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cases: 3", "expected a list of cases"),
        ("- {request: {destination: a, method: GET, path: /}, expect: maybe}", "allow or deny"),
        ("- {request: {destination: a, method: GET}, expect: allow}", "'path' is required"),
        ("- {request: {destination: a, method: GET, path: /}, expect: allow, rul: x}", "rul"),
        ("[", "not valid YAML"),
    ],
)
def test_bad_test_files_are_explained(text: str, message: str) -> None:
    with pytest.raises(PolicyTestError, match=message):
        read_cases(text, "bad.policytest.yaml")


def test_junit_xml_has_one_testcase_per_case_and_failure_details() -> None:
    text = CASES.replace("expect: allow", "expect: deny")
    report = run_cases(_policy(), read_cases(text, "t.policytest.yaml"))
    root = ElementTree.fromstring(render_junit(report, 0.5))
    assert root.get("tests") == "2" and root.get("failures") == "1"
    (suite,) = root
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["web reads a review", "nobody else"]
    failure = cases[0].find("failure")
    assert failure is not None and "expected deny" in (failure.get("message") or "")
    assert "[matched] reviews-read" in (failure.text or "")


def test_test_files_are_found_by_suffix(tmp_path: Path) -> None:
    (tmp_path / "a.policytest.yaml").write_text("[]")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.policytest.json").write_text("[]")
    (tmp_path / "requests.json").write_text("[]")
    found = [p.relative_to(tmp_path).as_posix() for p in find_test_files([tmp_path])]
    assert found == ["a.policytest.yaml", "sub/b.policytest.json"]


def test_a_json_file_indented_with_tabs_is_read() -> None:
    # JSON allows tabs between tokens; the YAML reader (which reads JSON too) does not.
    request = '{"destination": "reviews.default", "method": "GET", "path": "/x"}'
    text = '{\n\t"cases": [\n\t\t{\n\t\t\t"name": "tab\\there",\n'
    text += f'\t\t\t"request": {request},\n\t\t\t"expect": "deny"\n\t\t}}\n\t]\n}}\n'
    (case,) = read_cases(text, "t.policytest.json")
    assert case.name == "tab\there" and case.line == 3


def test_test_files_are_searched_as_policies_are(tmp_path: Path) -> None:
    # A ConfigMap volume: the kubelet's hidden copy is not found a second time.
    configmap.publish(tmp_path, {"a.policytest.yaml": CASES}, "2026_11_28_1")
    found = [p.relative_to(tmp_path).as_posix() for p in find_test_files([tmp_path])]
    assert found == ["a.policytest.yaml"]
