"""Run the bundled examples: check and compile each policy set, decide its requests.

``python -m meshward.examples examples/policies`` prints every example request with its
decision and the rule that decided it, and exits 1 if any decision differs from what the
example's ``*.policytest.json`` expects (the same files ``meshward test`` runs).
"""

from __future__ import annotations

import sys
from pathlib import Path

from meshward.policy import PolicyError, compile_policy, load_paths
from meshward.policy.diagnostics import render_human
from meshward.policy.testing import Report, find_test_files, read_cases, run_cases


def run_example_set(directory: Path) -> Report:
    """Check and compile one example directory, then decide its test cases."""
    policy = load_paths([directory]).policy
    compile_policy(policy)  # what a server would load; the cases below use it too
    cases = [c for f in find_test_files([directory]) for c in read_cases(f.read_text(), str(f))]
    return run_cases(policy, cases)


def describe(report: Report) -> list[str]:
    """One line per case: verdict, deciding rule, name, and what did not match."""
    lines = []
    for o in report.outcomes:
        d = o.decision
        verdict = "ALLOW" if d.allowed else "DENY "
        audit = f"  [{', '.join(str(a) for a in d.audit)}]" if d.audit else ""
        lines.append(
            f"{'ok ' if o.passed else 'FAIL'} {verdict} {d.rule_id or '-':<28} {o.case.name}{audit}"
        )
        lines.extend(f"      {failure}" for failure in o.failures)
    return lines


def main(argv: list[str]) -> int:
    root = Path(argv[0] if argv else "examples/policies")
    sets = sorted({f.parent for f in find_test_files([root])})
    failed = 0
    for directory in sets:
        print(f"== {directory}")
        try:
            report = run_example_set(directory)
        except PolicyError as exc:
            print(render_human(exc.diagnostics, exc.sources))
            failed += 1
            continue
        print("\n".join("  " + line for line in describe(report)))
        failed += len(report.failed)
    print("\n" + ("all examples decided as expected" if not failed else f"{failed} failed"))
    return 1 if failed or not sets else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
