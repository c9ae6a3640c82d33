"""`meshward lint | fmt | test | diff | graph`: policy tooling for people and CI."""

from __future__ import annotations

import argparse
import difflib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from meshward.ca.fsio import replace_file
from meshward.policy import PolicyError, diff_report, load_paths, load_texts
from meshward.policy.diagnostics import Diagnostic, Severity, SourceSet, render_human
from meshward.policy.diff import diff_policies
from meshward.policy.formatter import format_text
from meshward.policy.gc_pause import paused_gc
from meshward.policy.graph import edges, render_dot, render_mermaid
from meshward.policy.lint import (
    Inventory,
    LintConfig,
    LintConfigError,
    LintResult,
    lint,
    severity_rank,
)
from meshward.policy.lint_output import counts, render_github, render_json, render_sarif
from meshward.policy.loader import (
    POLICY_SUFFIX,
    LoadedPolicy,
    NotPolicySource,
    policy_files,
    read_policy_text,
)
from meshward.policy.testing import (
    PolicyTestError,
    find_test_files,
    read_cases,
    render_junit,
    render_trace,
    run_cases,
)

from .loading import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, load_or_report

_FAIL_ON = {"error": Severity.ERROR, "warning": Severity.WARNING, "info": Severity.INFO}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "lint",
        help="find policy mistakes and risks (SARIF and GitHub annotations for CI)",
        description="Lint policies. Exit 0 clean, 1 findings at or above --fail-on, "
        "2 usage or internal error. Severities: [tool.meshward.lint] in pyproject.toml "
        "or [lint] in meshward.toml; silence one finding with "
        "`# meshward: ignore[CODE] reason`.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="policy files or directories")
    p.add_argument("--format", choices=("human", "json", "sarif", "github"), default="human")
    p.add_argument(
        "--fail-on",
        choices=("error", "warning", "info", "never"),
        default="error",
        help="lowest severity that makes the exit code 1 (default: error)",
    )
    p.add_argument("--config", help="meshward.toml or pyproject.toml (default: searched upward)")
    p.add_argument(
        "--inventory", help="YAML/JSON file of known trust domains, namespaces, services"
    )
    p.add_argument("-o", "--output", help="write the report to this file instead of stdout")
    p.add_argument(
        "--repo-root", help="paths in SARIF and annotations are relative to it (default: git root)"
    )
    p.set_defaults(func=cmd_lint)

    p = sub.add_parser(
        "fmt",
        help="rewrite policy files in the canonical layout (comments kept)",
        description="Format policy files in place. --check: exit 1 when a file would "
        "change; --diff: print the changes instead of writing them (exit 1 if any).",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="policy files or directories")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="only report files that would change")
    mode.add_argument("--diff", action="store_true", help="print a unified diff, write nothing")
    p.set_defaults(func=cmd_fmt)

    p = sub.add_parser(
        "test",
        help="run policy test files (*.policytest.yaml) against the policies",
        description="Load the policies under PATH and run every *.policytest.yaml, "
        ".yml or .json file there. Exit 1 when a case fails or coverage is below "
        "--threshold.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="policy and test files or directories")
    p.add_argument("--coverage", action="store_true", help="list the rules no case exercised")
    p.add_argument("--threshold", type=float, metavar="N", help="fail below N %% rule coverage")
    p.add_argument("--junit-xml", metavar="FILE", help="also write a JUnit XML report")
    p.set_defaults(func=cmd_test)

    p = sub.add_parser(
        "diff",
        help="which requests change their decision between two policy versions",
        description="Compare two policy sets: `meshward diff OLD NEW` (files or "
        "directories) or `meshward diff REV1..REV2 PATH` (two git revisions of PATH; "
        "an empty REV2 is HEAD). Every kind of request whose decision flips is found, "
        "not sampled.",
    )
    p.add_argument("old", help="old policies (path), or REV1..REV2")
    p.add_argument("new", help="new policies (path), or the path to read from git")
    p.add_argument("--format", choices=("human", "json", "markdown"), default="human")
    p.add_argument("--examples", type=int, default=3, help="example requests per change")
    p.add_argument(
        "--fail-on-wider", action="store_true", help="exit 1 when any request gains access"
    )
    p.add_argument("-o", "--output", help="write the report to this file instead of stdout")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("graph", help="who may call whom: Mermaid, Graphviz DOT or SVG")
    p.add_argument("paths", nargs="+", metavar="PATH", help="policy files or directories")
    p.add_argument("--format", choices=("mermaid", "dot", "svg"), default="mermaid")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.set_defaults(func=cmd_graph)


# --- shared helpers ------------------------------------------------------------------


_PROGRESS_AFTER_S = 0.5


def _progress(label: str) -> Callable[[int, int], None] | None:
    """A progress line on a terminal once a run takes more than a moment; nothing in
    CI (no TTY)."""
    if not sys.stderr.isatty():
        return None
    started = time.monotonic()
    shown = False

    def report(done: int, total: int) -> None:
        nonlocal shown
        if not shown and time.monotonic() - started < _PROGRESS_AFTER_S:
            return
        shown = True
        end = "\n" if done >= total else ""
        print(f"\r{label}: {done}/{total}", end=end, file=sys.stderr, flush=True)

    return report


def _write(text: str, output: str | None) -> None:
    if output is None:
        print(text)
    else:
        Path(output).write_text(text + "\n", encoding="utf-8")


def repo_root(explicit: str | None) -> Path:
    """The directory report paths are relative to: given, else the git work tree, else
    the current directory."""
    if explicit:
        return Path(explicit).resolve()
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            check=True,
        )
        return Path(out.stdout.strip()).resolve()
    except (OSError, subprocess.CalledProcessError):
        return Path.cwd().resolve()


def relative_to(root: Path) -> Callable[[str], str]:
    def relative(file: str) -> str:
        path = Path(file).resolve()
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            return Path(os.path.relpath(path, root)).as_posix()

    return relative


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _unified_diff(before: str, after: str, name: str) -> Iterator[str]:
    """A patch `patch` and `git apply` accept: a last line without a newline is marked
    as such, instead of running into the next line of the diff."""
    for line in difflib.unified_diff(_lines(before), _lines(after), name, name):
        if line.endswith("\n"):
            yield line
        else:
            yield line + "\n\\ No newline at end of file\n"


def _lines(text: str) -> list[str]:
    # Split at \n only, as patch does: str.splitlines also breaks at form feeds and
    # U+2028, which policy comments may hold.
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


# --- lint ----------------------------------------------------------------------------


def find_config(start: Path) -> tuple[Path, dict[str, Any]] | None:
    """The nearest lint configuration at or above ``start``: ``[lint]`` of a
    meshward.toml, else ``[tool.meshward.lint]`` of a pyproject.toml."""
    for directory in (start, *start.parents):
        found = read_config(directory / "meshward.toml")
        if found is None:
            found = read_config(directory / "pyproject.toml")
        if found is not None:
            return found
    return None


def read_config(path: Path) -> tuple[Path, dict[str, Any]] | None:
    """The lint table of one config file, or None when it has none."""
    if not path.is_file():
        return None
    with path.open("rb") as fh:
        doc = tomllib.load(fh)
    if path.name == "pyproject.toml":
        table = doc.get("tool", {}).get("meshward", {}).get("lint")
    else:
        table = doc.get("lint")
    return None if table is None else (path, table)


def load_inventory(path: Path) -> Inventory:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise LintConfigError(f"{path}: not YAML or JSON: {exc}") from None
    try:
        return Inventory.from_json(doc)
    except LintConfigError as exc:
        raise LintConfigError(f"{path}: {exc}") from None


def lint_config(args: argparse.Namespace) -> LintConfig:
    found = None
    if args.config:
        path = Path(args.config)
        if not path.is_file():
            raise LintConfigError(f"{path}: no such file")
        found = read_config(path) or (path, {})
    else:
        found = find_config(Path.cwd().resolve())
    table: dict[str, Any] = found[1] if found else {}
    inventory_path: Path | None = None
    if args.inventory:
        inventory_path = Path(args.inventory)
    elif found and isinstance(table.get("inventory"), str):
        inventory_path = found[0].parent / table["inventory"]
    inventory = load_inventory(inventory_path) if inventory_path is not None else None
    try:
        return LintConfig.from_table(table, inventory)
    except LintConfigError as exc:
        where = f"{found[0]}: " if found else ""
        raise LintConfigError(where + str(exc)) from None


def cmd_lint(args: argparse.Namespace) -> int:
    try:
        config = lint_config(args)
    except (LintConfigError, tomllib.TOMLDecodeError, OSError) as exc:
        print(f"meshward: {exc}", file=sys.stderr)
        return EXIT_USAGE
    loaded: LoadedPolicy | None = None
    try:
        with paused_gc():  # one pause for load and checks: see gc_pause
            loaded = load_paths(args.paths)
            result = lint(loaded, config, _progress("linting"))
        sources = loaded.sources
    except PolicyError as exc:
        # A policy that does not check is linted no further; its errors are the findings.
        result = LintResult(exc.diagnostics, 0)
        sources = exc.sources
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError, NotPolicySource) as exc:
        print(f"meshward: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _write(_render_lint(args, result, sources), args.output)
    if args.fail_on == "never":
        return EXIT_OK
    threshold = severity_rank(_FAIL_ON[args.fail_on])
    failing = [f for f in result.findings if severity_rank(f.severity) >= threshold]
    return EXIT_FINDINGS if failing else EXIT_OK


def _render_lint(args: argparse.Namespace, result: LintResult, sources: SourceSet) -> str:
    findings = result.findings
    if args.format == "json":
        return render_json(findings, result.suppressed)
    relative = relative_to(repo_root(args.repo_root))
    if args.format == "sarif":
        return render_sarif(findings, sources, relative, importlib.metadata.version("meshward"))
    if args.format == "github":
        return render_github(findings, relative)
    return _human_lint(findings, result.suppressed, sources)


def _human_lint(findings: tuple[Diagnostic, ...], suppressed: int, sources: SourceSet) -> str:
    c = counts(findings)
    summary = ", ".join(f"{n} {sev}{'s' if n != 1 else ''}" for sev, n in c.items() if n)
    tail = f" ({suppressed} suppressed)" if suppressed else ""
    if not findings:
        return f"no findings{tail}"
    return f"{render_human(findings, sources)}\n\n{summary}{tail}"


# --- fmt -----------------------------------------------------------------------------


def cmd_fmt(args: argparse.Namespace) -> int:
    files = policy_files(args.paths)
    if not files:
        print(f"meshward: no .policy files in {', '.join(args.paths)}", file=sys.stderr)
        return EXIT_USAGE
    changed: list[Path] = []
    broken = 0
    for path in files:
        try:
            text = read_policy_text(path)
        except (OSError, UnicodeDecodeError, NotPolicySource) as exc:
            print(f"meshward: {exc}", file=sys.stderr)
            return EXIT_USAGE
        try:
            formatted = format_text(text, str(path))
        except PolicyError as exc:
            print(render_human(exc.diagnostics, exc.sources), file=sys.stderr)
            broken += 1
            continue
        if formatted == text:
            continue
        changed.append(path)
        if args.diff:
            sys.stdout.writelines(_unified_diff(text, formatted, str(path)))
        elif args.check:
            print(f"would reformat {path}")
        else:
            # Encoded first, then swapped in whole: a failure leaves the file as it was.
            try:
                replace_file(path, formatted.encode("utf-8"))
            except OSError as exc:
                print(f"meshward: cannot write {path}: {exc}", file=sys.stderr)
                return EXIT_USAGE
            print(f"reformatted {path}", file=sys.stderr)
    verb = "would be reformatted" if args.check or args.diff else "reformatted"
    print(
        f"{len(changed)} file{'s' if len(changed) != 1 else ''} {verb}, "
        f"{len(files) - len(changed) - broken} unchanged"
        + (f", {broken} with syntax errors" if broken else ""),
        file=sys.stderr,
    )
    if broken:
        return EXIT_USAGE
    return EXIT_FINDINGS if changed and (args.check or args.diff) else EXIT_OK


# --- test ----------------------------------------------------------------------------


def cmd_test(args: argparse.Namespace) -> int:
    loaded = load_or_report(args.paths, "human")
    if isinstance(loaded, int):
        return loaded
    files = find_test_files(args.paths)
    if not files:
        print(
            f"meshward: no test files (*.policytest.yaml) in {', '.join(args.paths)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        cases = [c for f in files for c in read_cases(f.read_text(encoding="utf-8"), str(f))]
    except (PolicyTestError, OSError, UnicodeDecodeError) as exc:
        print(f"meshward: {exc}", file=sys.stderr)
        return EXIT_USAGE
    started = time.monotonic()
    report = run_cases(loaded.policy, cases)
    elapsed = time.monotonic() - started
    for o in report.failed:
        print(f"FAIL {o.case.name} ({o.case.file}:{o.case.line})")
        for failure in o.failures:
            print(f"  {failure}")
        print(f"  request: {json.dumps(o.case.request.to_json())}")
        for line in render_trace(o.explanation):
            print(f"    {line}")
    passed = len(report.outcomes) - len(report.failed)
    print(
        f"{_plural(passed, 'case')} passed, {len(report.failed)} failed "
        f"({_plural(len(files), 'test file')})"
    )
    if args.coverage or args.threshold is not None:
        rules = loaded.policy.rules()
        covered = len(rules) - len(report.uncovered)
        print(f"rule coverage: {report.coverage:.1f}% ({covered}/{len(rules)} rules)")
    if args.coverage and report.uncovered:
        spans = {r.rule_id: r.span for r in loaded.policy.rules()}
        print("rules no case exercised:")
        for rule_id in report.uncovered:
            print(f"  {rule_id} ({spans[rule_id]})")
    if args.junit_xml:
        Path(args.junit_xml).write_text(render_junit(report, elapsed) + "\n", encoding="utf-8")
    below = args.threshold is not None and report.coverage < args.threshold
    if below:
        print(f"rule coverage {report.coverage:.1f}% is below the threshold of {args.threshold}%")
    return EXIT_FINDINGS if report.failed or below else EXIT_OK


# --- diff ----------------------------------------------------------------------------


class _GitError(Exception):
    pass


def _git(args: list[str], cwd: Path) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    except FileNotFoundError:
        raise _GitError("git is not installed") from None
    except subprocess.CalledProcessError as exc:
        raise _GitError(exc.stderr.strip() or f"git {' '.join(args)} failed") from None
    return out.stdout


def git_policy_texts(revision: str, path: Path) -> dict[str, str]:
    """The ``.policy`` files under ``path`` as they are at a git revision, keyed by
    their path as the working tree names them (so both versions use one name)."""
    anchor = path if path.is_dir() else path.parent
    top = Path(_git(["rev-parse", "--show-toplevel"], anchor).strip())
    rel = path.resolve().relative_to(top.resolve()).as_posix()
    listing = _git(["ls-tree", "-r", "--name-only", revision, "--", rel or "."], top)
    texts = {}
    for name in listing.splitlines():
        if name.endswith(POLICY_SUFFIX):
            shown = os.path.relpath(top / name)
            texts[shown] = _git(["show", f"{revision}:{name}"], top)
    return texts


def _load_version(label: str, texts: dict[str, str] | None, path: str | None) -> LoadedPolicy:
    try:
        if texts is not None:
            return load_texts(texts)
        assert path is not None
        return load_paths([path])
    except PolicyError as exc:
        print(f"meshward: the {label} policies do not check:", file=sys.stderr)
        print(render_human(exc.diagnostics, exc.sources), file=sys.stderr)
        raise


def cmd_diff(args: argparse.Namespace) -> int:
    try:
        if ".." in args.old and not Path(args.old).exists():
            rev1, _, rev2 = args.old.partition("..")
            where = Path(args.new)
            if not where.exists():
                print(f"meshward: {where}: no such file or directory", file=sys.stderr)
                return EXIT_USAGE
            old_texts = git_policy_texts(rev1 or "HEAD", where)
            new_texts = git_policy_texts(rev2 or "HEAD", where)
            old = _load_version(f"old ({rev1 or 'HEAD'})", old_texts, None)
            new = _load_version(f"new ({rev2 or 'HEAD'})", new_texts, None)
        else:
            old = _load_version("old", None, args.old)
            new = _load_version("new", None, args.new)
    except PolicyError:
        return EXIT_FINDINGS
    except _GitError as exc:
        print(f"meshward: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError, NotPolicySource) as exc:
        print(f"meshward: {exc}", file=sys.stderr)
        return EXIT_USAGE
    result = diff_policies(
        old.policy, new.policy, max_examples=args.examples, progress=_progress("comparing")
    )
    if args.format == "json":
        text = diff_report.render_json(result)
    elif args.format == "markdown":
        text = diff_report.render_markdown(
            result, edges(old.policy, merge=False), edges(new.policy, merge=False)
        )
    else:
        text = diff_report.render_human(result)
    _write(text, args.output)
    if not result.complete:
        print("meshward: the comparison is incomplete (cell limit reached)", file=sys.stderr)
    return EXIT_FINDINGS if args.fail_on_wider and result.wider else EXIT_OK


# --- graph ---------------------------------------------------------------------------


def cmd_graph(args: argparse.Namespace) -> int:
    loaded = load_or_report(args.paths, "human")
    if isinstance(loaded, int):
        return loaded
    graph_edges = edges(loaded.policy)
    if args.format == "mermaid":
        _write(render_mermaid(graph_edges), args.output)
        return EXIT_OK
    dot = render_dot(graph_edges)
    if args.format == "dot":
        _write(dot, args.output)
        return EXIT_OK
    program = shutil.which("dot")
    if program is None:
        print(
            "meshward: SVG needs Graphviz's `dot` program, which is not installed.\n"
            "  install it: apt-get install graphviz (Debian/Ubuntu), brew install graphviz "
            "(macOS)\n  or write --format dot and render it elsewhere",
            file=sys.stderr,
        )
        return EXIT_USAGE
    done = subprocess.run([program, "-Tsvg"], input=dot, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"meshward: dot failed: {done.stderr.strip()}", file=sys.stderr)
        return EXIT_USAGE
    _write(done.stdout.rstrip("\n"), args.output)
    return EXIT_OK
