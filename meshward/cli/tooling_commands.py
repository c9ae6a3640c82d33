"""`meshward lint | fmt | test | diff | graph`: policy tooling for people and CI."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from meshward.policy import PolicyError, load_paths
from meshward.policy.diagnostics import Diagnostic, Severity, SourceSet, render_human
from meshward.policy.lint import (
    Inventory,
    LintConfig,
    LintConfigError,
    LintResult,
    lint,
    severity_rank,
)
from meshward.policy.lint_output import counts, render_github, render_json, render_sarif
from meshward.policy.loader import LoadedPolicy

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2
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


# --- shared helpers ------------------------------------------------------------------


def _progress(label: str) -> Callable[[int, int], None] | None:
    """A progress line on a terminal; nothing in CI (no TTY)."""
    if not sys.stderr.isatty():
        return None

    def report(done: int, total: int) -> None:
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
        loaded = load_paths(args.paths)
        result = lint(loaded, config, _progress("linting"))
        sources = loaded.sources
    except PolicyError as exc:
        # A policy that does not check is linted no further; its errors are the findings.
        result = LintResult(exc.diagnostics, 0)
        sources = exc.sources
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError) as exc:
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
