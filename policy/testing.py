"""``meshward test``: policy test files, run against a policy set, with rule coverage.

A test file sits next to the policies it tests and is named ``*.policytest.yaml``
(``.yml`` and ``.json`` work too)::

    cases:
      - name: productpage reads reviews
        request:                       # the documented Request JSON shape
          destination: reviews.default
          method: GET
          path: /reviews/1
          source: {principal: spiffe://cluster.local/ns/default/sa/productpage}
        expect: allow                  # or deny
        rule: reviews-read             # optional: a rule that must decide it (null: none)
        audit: [reviews-legacy-v1]     # optional: the audit rules that must match

A bare list of cases is accepted as well. Decisions come from the compiled tables, as
in production; the reference interpreter's ``explain`` supplies the trace of a failure
and the coverage (a rule is covered when it matched in at least one case).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import yaml

from . import model
from .compiler import compile_policy
from .decision import Decision
from .evaluator import evaluate
from .loader import search
from .reference import Explanation, explain
from .request import Request, RequestError

TEST_SUFFIXES = (".policytest.yaml", ".policytest.yml", ".policytest.json")


class PolicyTestError(ValueError):
    """A test file that cannot be read; the message names the file and the case."""


@dataclass(frozen=True, slots=True)
class Case:
    """One named expectation: this request is allowed (or denied), maybe by this rule."""

    name: str
    request: Request
    expect: bool  # True: allow
    rule: str | None  # the rule that must decide; None: no rule may decide
    checks_rule: bool  # False: the case says nothing about the deciding rule
    audit: tuple[str, ...] | None  # audit rules that must match (None: not checked)
    file: str
    line: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """A case's result: the actual decision, and the trace when it failed."""

    case: Case
    decision: Decision
    explanation: Explanation
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass(frozen=True, slots=True)
class Report:
    """Every outcome, and which rules no case exercised."""

    outcomes: tuple[Outcome, ...]
    rules: tuple[str, ...]
    covered: frozenset[str]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.passed]

    @property
    def uncovered(self) -> list[str]:
        return [r for r in self.rules if r not in self.covered]

    @property
    def coverage(self) -> float:
        """Percentage of rules that matched in at least one case (100 with no rules)."""
        if not self.rules:
            return 100.0
        return 100.0 * len([r for r in self.rules if r in self.covered]) / len(self.rules)


def find_test_files(paths: Iterable[str | Path]) -> list[Path]:
    """Test files named by ``paths``: files as given, directories searched recursively."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(search(p, TEST_SUFFIXES))
        elif p.name.endswith(TEST_SUFFIXES):
            out.append(p)
    return list(dict.fromkeys(out))


def read_cases(text: str, file: str) -> list[Case]:
    """Parse one test file's text (YAML, or JSON which is YAML too)."""
    if file.endswith(".json"):
        # JSON may indent with tabs, YAML may not. In valid JSON a raw tab is only ever
        # whitespace (inside strings it is written \t): a space reads the same.
        text = text.replace("\t", " ")
    try:
        root = yaml.compose(text)
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyTestError(f"{file}: not valid YAML/JSON: {exc}") from None
    items_node = root
    if isinstance(doc, dict):
        unknown = set(doc) - {"cases"}
        if unknown:
            raise PolicyTestError(f"{file}: unknown keys {', '.join(sorted(unknown))}")
        doc = doc.get("cases")
        items_node = _mapping_value(root, "cases")
    if not isinstance(doc, list):
        raise PolicyTestError(f"{file}: expected a list of cases (or `cases:` with one)")
    lines = [n.start_mark.line + 1 for n in getattr(items_node, "value", [])]
    cases = []
    for i, item in enumerate(doc):
        line = lines[i] if i < len(lines) else 0
        cases.append(_case(item, file, line, i + 1))
    return cases


def _mapping_value(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if getattr(k, "value", None) == key and isinstance(v, yaml.Node):
                return v
    return None


def _case(item: Any, file: str, line: int, number: int) -> Case:
    where = f"{file}:{line}"
    if not isinstance(item, dict):
        raise PolicyTestError(f"{where}: case {number} is not a mapping")
    unknown = set(item) - {"name", "request", "expect", "rule", "audit"}
    if unknown:
        raise PolicyTestError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    name = item.get("name") or f"case {number}"
    expect = item.get("expect")
    if expect not in ("allow", "deny"):
        raise PolicyTestError(f"{where}: `expect` is allow or deny, not {expect!r}")
    try:
        request = Request.from_json(item.get("request"))
    except RequestError as exc:
        raise PolicyTestError(f"{where}: {name}: {exc}") from None
    rule = item.get("rule")
    if rule is not None and not isinstance(rule, str):
        raise PolicyTestError(f"{where}: `rule` is a rule id or null")
    audit = item.get("audit")
    if audit is not None and (
        not isinstance(audit, list) or not all(isinstance(a, str) for a in audit)
    ):
        raise PolicyTestError(f"{where}: `audit` is a list of rule ids")
    return Case(
        str(name),
        request,
        expect == "allow",
        rule,
        "rule" in item,
        tuple(sorted(audit)) if audit is not None else None,
        file,
        line,
    )


def run_cases(policy: model.PolicySet, cases: Sequence[Case]) -> Report:
    """Decide every case and compare with what it expects."""
    compiled = compile_policy(policy)
    outcomes = []
    covered: set[str] = set()
    for case in cases:
        decision = evaluate(compiled, case.request)
        explanation = explain(policy, case.request)
        covered.update(t.rule_id for t in explanation.traces if t.matched)
        failures = []
        if decision.allowed != case.expect:
            failures.append(
                f"expected {'allow' if case.expect else 'deny'}, got "
                f"{'allow' if decision.allowed else 'deny'} ({decision.reason})"
            )
        if case.checks_rule:
            if case.rule is None and decision.rule_ids:
                failures.append(f"expected no rule to decide, but {_ids(decision)} decided")
            elif case.rule is not None and case.rule not in decision.rule_ids:
                failures.append(
                    f"expected rule {case.rule} to decide, but "
                    + (f"{_ids(decision)} decided" if decision.rule_ids else "no rule decided")
                )
        if case.audit is not None:
            matched = tuple(sorted(a.rule_id for a in decision.audit))
            if matched != case.audit:
                failures.append(
                    f"expected audit rules [{', '.join(case.audit)}], "
                    f"matched [{', '.join(matched)}]"
                )
        outcomes.append(Outcome(case, decision, explanation, tuple(failures)))
    rules = tuple(r.rule_id for r in policy.rules())
    return Report(tuple(outcomes), rules, frozenset(covered))


def _ids(decision: Decision) -> str:
    return ", ".join(decision.rule_ids)


def render_trace(explanation: Explanation) -> list[str]:
    """Each rule of the destination: matched or not, and why."""
    lines = []
    if explanation.canonical_path is not None:
        lines.append(f"canonical path: {explanation.canonical_path}")
    for t in explanation.traces:
        mark = "matched" if t.matched else "no match"
        kind = ("audit " if t.audit else "") + t.effect
        lines.append(f"[{mark}] {t.rule_id} ({kind}, {t.span}): {'; '.join(t.reasons)}")
    if not explanation.traces:
        lines.append(explanation.decision.reason)
    return lines


def render_junit(report: Report, duration: float = 0.0) -> str:
    """JUnit XML: one test suite per test file, one test case per case."""
    suites = ElementTree.Element("testsuites", name="meshward policy tests")
    by_file: dict[str, list[Outcome]] = {}
    for o in report.outcomes:
        by_file.setdefault(o.case.file, []).append(o)
    total_failures = 0
    for file, outcomes in by_file.items():
        failures = [o for o in outcomes if not o.passed]
        total_failures += len(failures)
        suite = ElementTree.SubElement(
            suites,
            "testsuite",
            name=file,
            tests=str(len(outcomes)),
            failures=str(len(failures)),
            errors="0",
        )
        for o in outcomes:
            case = ElementTree.SubElement(
                suite,
                "testcase",
                name=o.case.name,
                classname=file,
                file=file,
                line=str(o.case.line),
            )
            if not o.passed:
                failure = ElementTree.SubElement(case, "failure", message="; ".join(o.failures))
                failure.text = "\n".join(
                    [
                        *o.failures,
                        "request: " + json.dumps(o.case.request.to_json()),
                        *render_trace(o.explanation),
                    ]
                )
    suites.set("tests", str(len(report.outcomes)))
    suites.set("failures", str(total_failures))
    suites.set("time", f"{duration:.3f}")
    ElementTree.indent(suites)
    return ElementTree.tostring(suites, encoding="unicode", xml_declaration=True)
