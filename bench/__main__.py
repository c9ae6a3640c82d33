"""``python -m bench [engines|ca|authz|tooling|all] [options]``: run benchmarks, print tables.

``engines`` (the default) compares meshward's decision tables with Cedar, Rego and
pycasbin on one seeded workload; the other suites live in their own modules and are
reported as not available when absent. Each suite prints a markdown section and writes it
to ``bench/RESULTS.md`` (other sections are kept).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .engines import (
    PEERS,
    SOURCE_ROW,
    EngineInfo,
    MeshwardEngine,
    NaiveEngine,
    PeerRefused,
    PeerUnavailable,
    source_policy_package,
)
from .workload import SIZES, Access, Mesh, generate_mesh, generate_requests

RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "## Policy engine"
SUITES = {
    "ca": "bench.ca_issuance",
    "authz": "bench.e2e_authz",
    "tooling": "bench.tooling",
}
PEER_SIZES = (100, 1_000, 10_000, 100_000)
NOT_PEERS = {"meshward", SOURCE_ROW, "naive scan"}
# Peers whose build alone is too slow for one run beyond a size, and why.
PEER_MAX_SIZE = {"cedar-caller": 10_000}
PEER_MAX_NOTE = {
    "cedar-caller": "not built: parsing one PolicySet per (destination, caller) at this size "
    "takes minutes (168 s measured once)",
}

# Targets of the policy-engine benchmark (issue 2).
TARGET_MEDIAN_US = 2.0
TARGET_GROWTH = 1.5
TARGET_PEER_RATIO = 30.0
TARGET_NAIVE_RATIO = 5.0
TARGET_COMPILE_S = 2.0


# --- measuring -----------------------------------------------------------------------


def timer_overhead_ns(samples: int = 20_000) -> int:
    """The median cost of one back-to-back ``perf_counter_ns`` pair (subtracted per call)."""
    clock = time.perf_counter_ns
    pairs = []
    for _ in range(samples):
        t0 = clock()
        t1 = clock()
        pairs.append(t1 - t0)
    return int(statistics.median(pairs))


def time_calls(
    decide: Callable[[Access], bool], requests: Sequence[Access], overhead: int
) -> tuple[list[float], list[bool]]:
    """Per-call latencies in µs (timer overhead removed) over one pass of ``requests``, and
    the decisions, kept outside the timed region."""
    clock = time.perf_counter_ns
    out: list[int] = []
    decisions: list[bool] = []
    append, keep = out.append, decisions.append
    gc.collect()
    for access in requests:
        t0 = clock()
        decision = decide(access)
        t1 = clock()
        append(t1 - t0)
        keep(decision)
    return [max(0, ns - overhead) / 1000 for ns in out], decisions


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_bytes() -> int:
    """Resident set size of this process (Linux ``/proc``; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@dataclass(slots=True)
class Row:
    """One engine at one size."""

    size: int
    info: EngineInfo
    median: float | None = None
    p99: float | None = None
    mean: float | None = None
    build_s: float | None = None
    mismatches: int | None = None
    samples: int = 0  # timed decisions
    note: str = ""


@dataclass(slots=True)
class CompileStats:
    """meshward's build of one size."""

    size: int
    destinations: int
    policy_bytes: int
    parse_check_s: float
    compile_s: float
    tables_bytes: int
    rss_delta_bytes: int

    @property
    def total_s(self) -> float:
        return self.parse_check_s + self.compile_s


@dataclass(slots=True)
class Run:
    """Everything one ``engines`` run measured."""

    seed: int
    n_requests: int
    passes: int  # fresh streams timed
    rows: list[Row] = field(default_factory=list)
    compiles: list[CompileStats] = field(default_factory=list)
    allowed: dict[int, float] = field(default_factory=dict)
    overhead_ns: int = 0
    missing: dict[str, str] = field(default_factory=dict)
    elapsed_s: float = 0.0
    gc_frozen: bool = False


def build_meshward(mesh: Mesh, seed: int, repeats: int = 1) -> tuple[MeshwardEngine, CompileStats]:
    """Build meshward for one mesh (generated from ``seed``), measuring parse+check,
    compile, tables and RSS.

    With ``repeats`` > 1 the build is repeated and the fastest stage times are kept (the
    machine may be shared); RSS growth is measured in a fresh process.
    """
    from meshward.policy import compile_policy

    engine = MeshwardEngine(mesh)
    parse_check_s, compile_s = engine.parse_check_s, engine.compile_s
    for _ in range(repeats - 1):
        again = MeshwardEngine(mesh)
        parse_check_s = min(parse_check_s, again.parse_check_s)
        compile_s = min(compile_s, again.compile_s)
        del again
    # A second compile under tracemalloc: the bytes the decision tables keep alive.
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    retained = compile_policy(engine.policy)
    gc.collect()
    tables_bytes = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del retained
    stats = CompileStats(
        size=len(mesh.rules),
        destinations=len(engine.compiled.tables),
        policy_bytes=sum(len(t.encode()) for t in engine.texts.values()),
        parse_check_s=parse_check_s,
        compile_s=compile_s,
        tables_bytes=tables_bytes,
        rss_delta_bytes=resident_growth(len(mesh.rules), seed),
    )
    return engine, stats


@dataclass(frozen=True, slots=True)
class Stream:
    """Requests and the decisions they must get."""

    requests: Sequence[Access]
    expected: Sequence[bool]


# Run in a fresh process, so that no memory an earlier size freed is reused.
_RESIDENT_GROWTH = """\
import gc, sys
from bench.__main__ import rss_bytes
from bench.engines import MeshwardEngine
from bench.workload import generate_mesh
mesh = generate_mesh(int(sys.argv[1]), int(sys.argv[2]))
warm = MeshwardEngine(generate_mesh(5, 0))  # imports, the grammar: not the policy's
gc.collect()
before = rss_bytes()
engine = MeshwardEngine(mesh)
gc.collect()
print(rss_bytes() - before)
"""


def resident_growth(size: int, seed: int) -> int:
    """Bytes a new process, warmed by a small build, grows by when it builds meshward for
    this mesh: the policy text, the checked model and the tables."""
    out = subprocess.run(
        [sys.executable, "-c", _RESIDENT_GROWTH, str(size), str(seed)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return int(out.stdout.strip().splitlines()[-1])


def measure_row(
    row: Row,
    decide: Callable[[Access], bool],
    checked: Stream | None,
    timed: Sequence[Stream],
    overhead: int,
) -> Row:
    """Check every decision of the ``checked`` stream (this pass is also the warm-up; None
    for meshward, whose decisions it is), then time the ``timed`` streams, each decision
    checked as well; a row that disagrees anywhere gets no timings."""
    try:
        if checked is not None:
            decisions = [decide(a) for a in checked.requests]
            row.mismatches = _differ(decisions, checked.expected)
        samples: list[float] = []
        wrong = 0
        for stream in timed:
            took, decided = time_calls(decide, stream.requests, overhead)
            samples += took
            wrong += _differ(decided, stream.expected)
    except Exception as exc:  # an engine limit or a crash: a row without timings
        message = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
        if "limit" in message:
            row.note = f"refused at this size: {message}"[:220]
        else:
            row.note = f"FAILED: {message}"[:220]
        return row
    if row.mismatches:
        row.note = f"FAILED: {row.mismatches} decisions differ from meshward; not timed"
    elif wrong:
        row.note = f"FAILED: {wrong} timed decisions differ from the naive scan; not timed"
    else:
        row.median = statistics.median(samples)
        row.p99 = percentile(samples, 0.99)
        row.mean = statistics.fmean(samples)
        row.samples = len(samples)
    return row


def _differ(decisions: Sequence[bool], expected: Sequence[bool]) -> int:
    return sum(d != e for d, e in zip(decisions, expected, strict=True))


def probe_seconds(
    decide: Callable[[Access], bool], requests: Sequence[Access], probe: int = 200
) -> float:
    """Seconds per decision, estimated on the first ``probe`` requests (after a warm-up)."""
    sample = requests[:probe]
    for access in sample[:20]:
        decide(access)
    t0 = time.perf_counter()
    for access in sample:
        decide(access)
    return (time.perf_counter() - t0) / max(1, len(sample))


def run_engines(
    sizes: Sequence[int],
    peer_sizes: Sequence[int],
    peers: Sequence[str],
    seed: int,
    n_requests: int,
    passes: int,
    log: Callable[[str], None],
    budget_s: float = 90.0,
    gc_freeze: bool = True,
) -> Run:
    """The whole policy-engine benchmark."""
    started = time.perf_counter()
    run = Run(seed, n_requests, passes, overhead_ns=timer_overhead_ns(), gc_frozen=gc_freeze)
    for size in sizes:
        gc.unfreeze()
        mesh = generate_mesh(size, seed)
        requests = generate_requests(mesh, n_requests, seed + 1)
        # Timed calls go to streams of the same distribution that no engine has seen: a
        # server decides new requests, and meshward's memos must not be timed on repeats.
        fresh = [generate_requests(mesh, n_requests, seed + 2 + i) for i in range(passes)]
        log(f"{size:>7} rules: building meshward")
        engine, stats = build_meshward(mesh, seed, repeats=3 if size <= 10_000 else 1)
        run.compiles.append(stats)
        log(f"{size:>7} rules: naive scan")
        t0 = time.perf_counter()
        naive = NaiveEngine(mesh)
        naive_build_s = time.perf_counter() - t0
        timed = [Stream(s, [naive.decide(a) for a in s]) for s in fresh]
        if gc_freeze:
            gc.freeze()
        reference = [engine.decide(a) for a in requests]  # meshward's warm-up pass
        checked = Stream(requests, reference)
        run.allowed[size] = sum(reference) / len(reference)
        row = Row(size, MeshwardEngine.info(), build_s=stats.total_s)
        run.rows.append(measure_row(row, engine.decide, None, timed, run.overhead_ns))
        source = source_policy_package()
        if source is not None:  # the same policy, decided by the uncompiled sources
            log(f"{size:>7} rules: meshward from its Python source")
            t0 = time.perf_counter()
            plain = MeshwardEngine(mesh, source)
            row = Row(size, MeshwardEngine.info(source), build_s=time.perf_counter() - t0)
            if gc_freeze:
                gc.freeze()
            run.rows.append(measure_row(row, plain.decide, checked, timed, run.overhead_ns))
            del plain
        row = Row(size, NaiveEngine.info(), build_s=naive_build_s)
        run.rows.append(measure_row(row, naive.decide, checked, timed, run.overhead_ns))
        del engine, naive
        if size not in peer_sizes:
            continue
        for name in peers:
            cls = PEERS[name]
            if name in run.missing:
                continue
            log(f"{size:>7} rules: {name}")
            try:
                info = cls.info()
            except PackageNotFoundError:
                run.missing[name] = "not installed"
                continue
            if size > PEER_MAX_SIZE.get(name, size):
                run.rows.append(Row(size, info, note=PEER_MAX_NOTE[name]))
                continue
            t0 = time.perf_counter()
            try:
                peer = cls(mesh)
            except PeerUnavailable as exc:
                run.missing[name] = str(exc)
                continue
            except PeerRefused as exc:
                run.rows.append(Row(size, info, note=f"refused: {exc}"))
                continue
            row = Row(size, info, build_s=time.perf_counter() - t0)
            if gc_freeze:
                gc.freeze()
            try:
                per_call = probe_seconds(peer.decide, requests)
            except Exception as exc:  # measure_row below reports it
                per_call = 0.0
                log(f"{size:>7} rules: {name} probe failed: {str(exc).splitlines()[0]}")
            check_s = per_call * len(requests)
            if check_s > budget_s:
                row.note = (
                    f"skipped: too slow here (~{per_call * 1e6:,.0f} µs per decision; "
                    f"checking {len(requests):,} requests would take ~{check_s:,.0f} s, "
                    f"budget {budget_s:g} s)"
                )
            else:
                # Time the whole stream if the budget allows, else as much of it as fits.
                fits = int((budget_s - check_s) / per_call) if per_call else len(requests)
                first = timed[0]
                if fits < len(first.requests):
                    keep = max(1_000, fits)
                    first = Stream(first.requests[:keep], first.expected[:keep])
                measure_row(row, peer.decide, checked, [first], run.overhead_ns)
            run.rows.append(row)
            del peer
    run.elapsed_s = time.perf_counter() - started
    return run


# --- reporting -----------------------------------------------------------------------

NOTES = (
    "Notes:",
    "",
    "- Workload (`bench/workload.py`, seeded): 100 services, ten per namespace, at every "
    "size, so rules per destination grow from 1 to 1,000; allow rules from workload "
    "principals (60 %) or whole namespaces on method sets and path templates (`{*}`, "
    "`{**}`), 20 % of them with a JWT-claim condition (`scope contains`, `tier ==`), 10 % "
    "deny rules; 10,000 requests, built for allow rules, aimed at deny rules or perturbed.",
    "- meshward: policy text rendered from the description, `load_texts` (parse + check), "
    "`compile_policy`, `evaluate(compiled, Request(...))` with the Request built per call, "
    "all from the installed wheel, whose hot path mypyc compiled (`setup.py`).",
    "- meshward (source): the same package loaded a second time from the Python sources "
    "that ship beside the compiled modules, in the same process: what an install without "
    "a C compiler runs (shown only when the main row is compiled).",
    "- naive scan: rules in a dict by destination, scanned in order with one precompiled "
    "regex per template — the floor of a hand-written script.",
    "- cedarpy: one `PolicySet` handle per destination (a rule is a `permit`/`forbid`; "
    'a namespace source is `principal in Namespace::"…"`; path templates are tests on '
    "the path's segments passed in the context); request and context built per call, each "
    "caller's entities kept as a pre-parsed `Entities` handle from its first call. "
    "*cedarpy (by caller)* slices once more: one set per (destination, caller), holding the "
    "policies that name the caller's principal or its namespace.",
    "- regorus: rules as data, one Rego module compiled with "
    "`Program.compile_from_modules` and run on one `Rvm`, input JSON per call. Its fastest "
    "form keys the data by destination, then by caller, then by method "
    '(`data.services[d].principals[id][method]`, `.namespaces[ns][method]`, `"*"` for '
    "rules on any method), so only rules naming the caller and the method are tried; "
    "*regorus (by destination)* tries every rule of the destination. The "
    "module avoids `every`: regorus 0.13.0's RVM accepts an `every` whose body calls a "
    "multi-clause function when the interpreter (correctly) rejects it. The RVM stops any "
    "evaluation at 25,000 instructions (not settable from Python), which the "
    "by-destination form exceeds at ~1,000 rules per destination. One Rego rule per policy "
    "rule is not an option at these "
    "sizes (regorus refuses policy files over 1 MiB; RVM programs stop at 65,535 "
    "instructions).",
    "- pycasbin: `FastEnforcer(cache_key_order=[0])` on the destination, one policy line per "
    "(rule, source, path template), custom matcher functions with cached compiled regexes; "
    "the plain Enforcer scans every line of every destination.",
    "- Peers whose check pass would exceed the per-size budget are skipped; a peer whose "
    "timed pass would is timed on a prefix of the stream (column *timed calls*).",
)


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "absent"


def machine() -> str:
    """CPU model, cores, OS, Python and the versions of the packages measured."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            match = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.MULTILINE)
        if match:
            cpu = match.group(1).strip()
    except OSError:
        pass
    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    packages = ", ".join(
        f"{name} {_package_version(name)}"
        for name in ("meshward", "lark", "cedarpy", "gordon-to-regorus", "casbin")
    )
    load = ""
    if hasattr(os, "getloadavg"):
        load = f", load average {os.getloadavg()[0]:.1f} at the end (shared machine)"
    return (
        f"{cpu}, {cores} logical cores ({usable} usable){load}, {platform.system()} "
        f"{platform.release()}, {platform.python_implementation()} {platform.python_version()}; "
        f"{packages}"
    )


def _us(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}×"


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**not met**")


def targets(run: Run) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for each target of the benchmark."""
    mesh_rows = {r.size: r for r in run.rows if r.info.name == "meshward"}
    out: list[tuple[str, str, bool | None]] = []
    at10k = mesh_rows.get(10_000)
    m10 = at10k.median if at10k else None
    out.append(
        (
            f"meshward median ≤ {TARGET_MEDIAN_US:g} µs per decision at 10,000 rules",
            f"{_us(m10)} µs",
            None if m10 is None else m10 <= TARGET_MEDIAN_US,
        )
    )
    low, high = mesh_rows.get(min(mesh_rows, default=0)), mesh_rows.get(max(mesh_rows, default=0))
    growth = None
    if low and high and low.median and high.median and low.size == 100 and high.size == 100_000:
        growth = high.median / low.median
    out.append(
        (
            f"growth 100 → 100,000 rules ≤ {TARGET_GROWTH:g}×",
            _ratio(growth),
            None if growth is None else growth <= TARGET_GROWTH,
        )
    )
    peers = [r for r in run.rows if r.size == 10_000 and r.info.name not in NOT_PEERS and r.median]
    fastest = min(peers, key=lambda r: r.median or 0.0, default=None)
    ratio = fastest.median / m10 if fastest and fastest.median and m10 else None
    out.append(
        (
            f"≥ {TARGET_PEER_RATIO:g}× faster than the fastest peer at 10,000 rules",
            f"{_ratio(ratio)} ({fastest.info.name})" if fastest else "no peer measured",
            None if ratio is None else ratio >= TARGET_PEER_RATIO,
        )
    )
    naive = next((r for r in run.rows if r.size == 10_000 and r.info.name == "naive scan"), None)
    nratio = naive.median / m10 if naive and naive.median and m10 else None
    out.append(
        (
            f"≥ {TARGET_NAIVE_RATIO:g}× faster than the naive scan at 10,000 rules",
            _ratio(nratio),
            None if nratio is None else nratio >= TARGET_NAIVE_RATIO,
        )
    )
    build = next((c for c in run.compiles if c.size == 10_000), None)
    out.append(
        (
            f"compile of 10,000 rules < {TARGET_COMPILE_S:g} s (policy text → decision tables)",
            f"{build.total_s:.2f} s (parse+check {build.parse_check_s:.2f} s, "
            f"tables {build.compile_s:.2f} s)"
            if build
            else "—",
            None if build is None else build.total_s < TARGET_COMPILE_S,
        )
    )
    return out


def report(run: Run) -> str:
    """The markdown section for ``bench/RESULTS.md``."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        SECTION,
        "",
        f"`python -m bench engines`, {now}, seed {run.seed}, {run.n_requests:,} requests per "
        f"size, whole run {run.elapsed_s:.0f} s.",
        "",
        f"Machine: {machine()}.",
        "",
        "Per decision: each engine builds its own input from the request on every call, "
        "as a server would. Every row was first checked to give meshward's decision on every "
        "request of one stream (this pass is also the warm-up). It was then timed on fresh "
        "streams of the same distribution that no engine had seen, as a server decides new "
        "requests (meshward's memos are not timed on repeats): "
        f"{run.passes} of {run.n_requests:,} requests for meshward and the naive scan, the "
        "first of them for the peers. Every timed decision was checked against the naive "
        "scan's. Timing is per call (`time.perf_counter_ns`, timer overhead of "
        f"{run.overhead_ns} ns subtracted); × meshward is the row's median over meshward's "
        "at the same size.",
        "",
        "| rules | engine | form | median µs | p99 µs | mean µs | × meshward "
        "| timed calls | build s | agrees with meshward |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    mesh_median = {r.size: r.median for r in run.rows if r.info.name == "meshward"}
    for r in run.rows:
        base = mesh_median.get(r.size)
        ratio = r.median / base if r.median and base else None
        if r.info.name == "meshward" and not r.note:
            agrees = "(reference)"
        elif r.mismatches is None:
            agrees = r.note or "—"
        elif r.mismatches == 0:
            agrees = f"yes ({run.n_requests:,}/{run.n_requests:,})"
        else:
            agrees = r.note
        lines.append(
            f"| {r.size:,} | {r.info.name} | {r.info.form} | {_us(r.median)} | {_us(r.p99)} "
            f"| {_us(r.mean)} | {_ratio(ratio)} | {f'{r.samples:,}' if r.samples else '—'} | "
            f"{'—' if r.build_s is None else f'{r.build_s:.2f}'} | {agrees} |"
        )
    lines += [
        "",
        "meshward build and memory (parse+check: policy text to checked model; compile: "
        "checked model to decision tables; best of 3 builds up to 10,000 rules, one at "
        "100,000; tables: bytes the decision tables keep alive, by tracemalloc; RSS Δ: what a "
        "new process grows by when it builds the policy text, checked model and tables):",
        "",
        "| rules | destinations | policy text KiB | parse+check s | compile s | total s "
        "| tables MiB | RSS Δ MiB | requests allowed |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in run.compiles:
        lines.append(
            f"| {c.size:,} | {c.destinations:,} | {c.policy_bytes / 1024:,.0f} "
            f"| {c.parse_check_s:.3f} | {c.compile_s:.3f} | {c.total_s:.3f} "
            f"| {c.tables_bytes / 2**20:,.1f} | {c.rss_delta_bytes / 2**20:,.1f} "
            f"| {run.allowed.get(c.size, 0):.1%} |"
        )
    lines += [
        "",
        "| target | measured | |",
        "| --- | --- | --- |",
    ]
    for name, measured, ok in targets(run):
        lines.append(f"| {name} | {measured} | {_met(ok)} |")
    notes = [f"{name}: {why}" for name, why in sorted(run.missing.items())]
    if notes:
        lines += ["", "Peers not measured: " + "; ".join(notes) + "."]
    if run.gc_frozen:
        lines += [
            "",
            "`gc.freeze()` ran after each engine was built, as meshward's server does after "
            "loading a policy: the collector does not rescan long-lived data.",
        ]
    else:
        lines += ["", "Run with `--no-gc-freeze`: the collector rescanned every engine's data."]
    lines += ["", *NOTES]
    return "\n".join(lines) + "\n"


def write_section(section: str, path: Path = RESULTS, heading: str = SECTION) -> None:
    """Replace (or append) one ``## `` section of the results file, keeping the others."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip("\n") + "\n\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def publish(section: str, heading: str = SECTION, write: bool = True) -> None:
    """Print a benchmark's section and, unless ``write`` is off, store it in RESULTS.md."""
    print(section)
    if write:
        write_section(section, heading=heading)
        print(f"written to {RESULTS}", file=sys.stderr)


# --- command line --------------------------------------------------------------------


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(s.replace("_", "").replace(",", "")) for s in text.split() if s) or ()


def engines_main(argv: Sequence[str]) -> int:
    """The policy-engine benchmark."""
    parser = argparse.ArgumentParser(prog="python -m bench engines")
    parser.add_argument("--sizes", type=_sizes, default=SIZES, help='e.g. "100 1000"')
    parser.add_argument("--peer-sizes", type=_sizes, default=PEER_SIZES)
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated subset")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument(
        "--passes", type=int, default=3, help="fresh streams timed (peers: the first only)"
    )
    parser.add_argument(
        "--budget", type=float, default=90.0, help="seconds a peer may take at one size"
    )
    parser.add_argument(
        "--gc-freeze",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="gc.freeze() after building each engine, as the server does",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, short stream")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--json", type=Path, help="also write raw numbers here")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.peer_sizes, args.requests, args.passes = (100, 1_000), (1_000,), 2_000, 1
    peers = [p for p in args.peers.split(",") if p]
    unknown = set(peers) - set(PEERS)
    if unknown:
        parser.error(f"unknown peers: {', '.join(sorted(unknown))} (known: {', '.join(PEERS)})")
    run = run_engines(
        args.sizes,
        args.peer_sizes,
        peers,
        args.seed,
        args.requests,
        args.passes,
        lambda msg: print(msg, file=sys.stderr, flush=True),
        args.budget,
        args.gc_freeze,
    )
    publish(report(run), write=not args.no_write)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rows": [
                        {
                            "size": r.size,
                            "engine": r.info.name,
                            "form": r.info.form,
                            "median_us": r.median,
                            "p99_us": r.p99,
                            "mean_us": r.mean,
                            "mismatches": r.mismatches,
                            "note": r.note,
                        }
                        for r in run.rows
                    ],
                    "compile": [vars_of(c) for c in run.compiles],
                },
                indent=2,
            )
        )
    failed = any(r.note.startswith("FAILED") for r in run.rows)
    return 1 if failed else 0


def vars_of(stats: CompileStats) -> dict[str, float]:
    return {name: getattr(stats, name) for name in CompileStats.__slots__}


def run_suite(name: str, argv: Sequence[str]) -> int:
    """Run one suite by name; a suite whose module is absent is reported, not fatal."""
    if name == "engines":
        return engines_main(argv)
    module_name = SUITES[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        print(f"## {name}: not available ({module_name.replace('.', '/')}.py is absent)\n")
        return 0
    saved = sys.argv
    sys.argv = [f"python -m bench {name}", *argv]
    try:
        result = module.main()
    finally:
        sys.argv = saved
    return result if isinstance(result, int) else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    choices = ["engines", *SUITES, "all"]
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        print(f"suites: {', '.join(choices)} (default: engines); `python -m bench engines -h`")
        return 0
    suite = args.pop(0) if args and not args[0].startswith("-") else "engines"
    if suite not in choices:
        print(f"unknown suite {suite!r}; choose from {', '.join(choices)}", file=sys.stderr)
        return 2
    if suite != "all":
        return run_suite(suite, args)
    status = 0
    for name in ("engines", *SUITES):
        status = max(status, run_suite(name, args if name == "engines" else []))
    return status


if __name__ == "__main__":
    sys.exit(main())
