"""Run the bundled examples: check and compile each policy set, decide its requests.

``python -m meshward.examples examples/policies`` prints every decision with the rule
that made it, and exits 1 if any decision differs from what the example expects.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshward.policy import PolicyError, Request, compile_policy, evaluate, load_paths
from meshward.policy.diagnostics import render_human

REQUESTS_FILE = "requests.json"


@dataclass(frozen=True)
class ExampleResult:
    name: str
    ok: bool
    line: str


def run_example_set(directory: Path) -> list[ExampleResult]:
    """Decide every request of one example directory; raises PolicyError."""
    compiled = compile_policy(load_paths([directory]).policy)
    cases: list[dict[str, Any]] = json.loads((directory / REQUESTS_FILE).read_text())
    results = []
    for case in cases:
        decision = evaluate(compiled, Request.from_json(case["request"]))
        audit = sorted(a.rule_id for a in decision.audit)
        ok = (
            decision.allowed == (case["expect"] == "allow")
            and decision.rule_id == case.get("rule")
            and audit == sorted(case.get("audit", []))
        )
        verdict = "ALLOW" if decision.allowed else "DENY "
        rule = decision.rule_id or "-"
        extra = f"  [{', '.join(str(a) for a in decision.audit)}]" if decision.audit else ""
        mark = "ok " if ok else "FAIL"
        results.append(
            ExampleResult(
                case["name"],
                ok,
                f"{mark} {verdict} {rule:<28} {case['name']}{extra}"
                + (
                    ""
                    if ok
                    else f"\n      expected {case['expect']} by {case.get('rule')}: "
                    f"{decision.reason}"
                ),
            )
        )
    return results


def main(argv: list[str]) -> int:
    root = Path(argv[0] if argv else "examples/policies")
    sets = sorted(p.parent for p in root.rglob(REQUESTS_FILE))
    failed = 0
    for directory in sets:
        print(f"== {directory}")
        try:
            results = run_example_set(directory)
        except PolicyError as exc:
            print(render_human(exc.diagnostics, exc.sources))
            failed += 1
            continue
        for r in results:
            print("  " + r.line)
        failed += sum(not r.ok for r in results)
    print(f"\n{'all examples decided as expected' if not failed else f'{failed} failed'}")
    return 1 if failed or not sets else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
