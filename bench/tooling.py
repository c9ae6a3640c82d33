"""Policy tooling at scale: ``meshward lint`` on 1,000 files holding 100,000 rules, and
``meshward diff`` of two 10,000-rule policy sets.

Run ``python -m bench.tooling`` (or ``python -m bench tooling``); prints a markdown
section and writes it to ``bench/RESULTS.md`` under "## Policy tooling" (other sections
are kept). The policies come from the seeded workload of ``bench/workload.py``; progress
is shown on a terminal only.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from meshward.policy import load_paths, load_texts
from meshward.policy.diff import PolicyDiff, diff_policies
from meshward.policy.formatter import format_text
from meshward.policy.lint import lint

from .__main__ import machine, publish
from .workload import generate_mesh, render_meshward

HEADING = "## Policy tooling"
TARGET_S = 10.0
ROUNDS = 3


@dataclass(frozen=True)
class Row:
    task: str
    size: str
    seconds: float
    target: float | None = None
    note: str = ""


def _progress(label: str) -> Callable[[int, int], None] | None:
    if not sys.stderr.isatty():
        return None

    def report(done: int, total: int) -> None:
        print(f"\r{label}: {done}/{total}", end="\n" if done >= total else "", file=sys.stderr)

    return report


def _say(text: str) -> None:
    if sys.stderr.isatty():
        print(text, file=sys.stderr)


def one_file_per_service(texts: dict[str, str]) -> dict[str, str]:
    """Split the workload's per-namespace files into one file per service."""
    out = {}
    for text in texts.values():
        head, *blocks = re.split(r"\n(?=service )", text)
        for block in blocks:
            out[f"{block.split()[1]}.policy"] = head.rstrip("\n") + "\n\n" + block
    return out


def mutate(texts: dict[str, str], changes: int, seed: int) -> tuple[dict[str, str], int]:
    """A new version of a policy set: ``changes`` rules widened to every method, removed,
    or narrowed to GET, spread over the files. Returns the texts and how many changed."""
    rng = random.Random(seed)
    out = dict(texts)
    names = sorted(out)
    done = 0
    for _ in range(changes * 20):
        if done >= changes:
            break
        name = rng.choice(names)
        lines = out[name].split("\n")
        rule_lines = [i for i, line in enumerate(lines) if line.startswith(("  allow ", "  deny "))]
        if not rule_lines:
            continue
        i = rng.choice(rule_lines)
        kind = done % 3
        if kind == 1:
            end = i + 1
            while end < len(lines) and lines[end].startswith("    "):
                end += 1  # its `when` line
            del lines[i - 1 : end]  # the rule with its @id line
        else:
            changed = _replace_methods(lines[i], "*" if kind == 0 else "GET")
            if changed == lines[i]:
                continue
            lines[i] = changed
        out[name] = "\n".join(lines)
        done += 1
    return out, done


_METHODS = re.compile(r"^(  (?:allow|deny) )((?:\*|[A-Z]+(?:, [A-Z]+)*))( )")


def _replace_methods(line: str, methods: str) -> str:
    return _METHODS.sub(lambda m: m.group(1) + methods + m.group(3), line, count=1)


def measure_lint(rules: int, files: int, seed: int) -> list[Row]:
    mesh = generate_mesh(rules, seed=seed, services=files)
    texts = one_file_per_service(render_meshward(mesh))
    size = f"{len(texts):,} files, {rules:,} rules"
    with tempfile.TemporaryDirectory(prefix="meshward-bench-") as tmp:
        for name, text in texts.items():
            Path(tmp, name).write_text(text, encoding="utf-8")
        _say(f"loading {size}")
        start = time.perf_counter()
        loaded = load_paths([tmp])
        load_s = time.perf_counter() - start
        # The median of a few rounds: the machine is shared.
        times = []
        for _ in range(ROUNDS):
            start = time.perf_counter()
            result = lint(loaded, progress=_progress("lint checks"))
            times.append(time.perf_counter() - start)
        lint_s = statistics.median(times)
        command_s = statistics.median(_lint_command(tmp) for _ in range(ROUNDS))
    start = time.perf_counter()
    for name, text in texts.items():
        format_text(text, name)
    fmt_s = time.perf_counter() - start
    findings = f"{len(result.findings):,} findings"
    return [
        Row("lint: read, parse and check the files (loader)", size, load_s),
        Row("lint: all lint checks on the checked set", size, lint_s, TARGET_S, findings),
        Row("lint: the two steps above, added", size, load_s + lint_s),
        Row(
            "lint: end to end, `meshward lint --format sarif` in a new process",
            size,
            command_s,
            TARGET_S,
        ),
        Row("fmt: format every file", size, fmt_s),
    ]


def _lint_command(directory: str) -> float:
    """Seconds for one run of the real command, from process start to exit."""
    command = [sys.executable, "-c", "import sys; from meshward.cli import main; sys.exit(main())"]
    args = ["lint", directory, "--format", "sarif", "--fail-on", "never", "-o", os.devnull]
    start = time.perf_counter()
    subprocess.run(command + args, check=True)
    return time.perf_counter() - start


def measure_diff(rules: int, changes: int, seed: int) -> list[Row]:
    texts = render_meshward(generate_mesh(rules, seed=seed))
    new_texts, changed = mutate(texts, changes, seed)
    start = time.perf_counter()
    old = load_texts(texts).policy
    new = load_texts(new_texts).policy
    load_s = time.perf_counter() - start
    size = f"{rules:,} vs {rules:,} rules"
    _say(f"diffing {size}, {changed} rules changed")
    changed_times, same_times = [], []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        result = diff_policies(old, new, progress=_progress("diff"))
        changed_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        same = diff_policies(old, old)
        same_times.append(time.perf_counter() - start)
    changed_s, same_s = statistics.median(changed_times), statistics.median(same_times)
    assert not same.changed
    return [
        Row("diff: read, parse and check both versions (loader)", size, load_s),
        Row(f"diff: {changed} rules changed", size, changed_s, TARGET_S, _summary(result)),
        Row("diff: identical sets", size, same_s, TARGET_S),
    ]


def _summary(result: PolicyDiff) -> str:
    flips = sum(len(d.changes) for d in result.changed)
    checked = sum(d.requests_checked for d in result.destinations)
    return (
        f"{len(result.changed)} destinations changed, {flips} kinds of flip, "
        f"{checked:,} requests decided twice" + ("" if result.complete else ", INCOMPLETE")
    )


def report(rows: list[Row], load: float) -> str:
    lines = [
        HEADING,
        "",
        f"`python -m bench tooling`: {machine()}. Load average when the run started: {load:.1f}.",
        "",
        "| task | size | seconds | target | |",
        "| --- | --- | ---: | --- | --- |",
    ]
    for r in rows:
        target = f"< {r.target:g} s" if r.target is not None else ""
        verdict = ""
        if r.target is not None:
            verdict = "met" if r.seconds < r.target else "not met"
        note = f"{verdict}{'; ' if verdict and r.note else ''}{r.note}"
        lines.append(f"| {r.task} | {r.size} | {r.seconds:.2f} | {target} | {note} |")
    lines += [
        "",
        f"Lint checks and diffs: the median of {ROUNDS} rounds. "
        "The policies are the seeded workload of `bench/workload.py`, one file per "
        "service. Lint reads the checked model and the compiled tables; reading the "
        "files (the lark parser and the checker) is measured apart, as it is for the "
        "diff. The end-to-end row is what a CI job pays: a new process starts, imports, "
        "builds the grammar, reads, parses and checks every file, runs every check and "
        "writes SARIF (the median of 3 runs). The diff decides "
        "one request per cell of the request space where a changed rule can match, "
        "under both versions, with the real evaluator; unchanged destinations cost "
        "nothing.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tooling")
    parser.add_argument("--lint-rules", type=int, default=100_000)
    parser.add_argument("--lint-files", type=int, default=1_000)
    parser.add_argument("--diff-rules", type=int, default=10_000)
    parser.add_argument("--diff-changes", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="small sizes, not written")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.quick:
        args.lint_rules, args.lint_files, args.diff_rules, args.no_write = 2_000, 20, 1_000, True
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    rows = measure_lint(args.lint_rules, args.lint_files, args.seed)
    rows += measure_diff(args.diff_rules, args.diff_changes, args.seed)
    section = report(rows, load)
    publish(section, HEADING, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
