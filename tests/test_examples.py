"""Every example policy set decides its example requests as documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshward.examples import describe, main, run_example_set
from meshward.policy.testing import find_test_files

EXAMPLES = Path(__file__).parents[1] / "examples" / "policies"
SETS = sorted({f.parent for f in find_test_files([EXAMPLES])})


def test_there_are_at_least_two_example_meshes():
    assert {s.name for s in SETS} >= {"bookinfo", "shop"}


@pytest.mark.parametrize("directory", SETS, ids=lambda p: p.name)
def test_example_requests_decide_as_expected(directory: Path):
    report = run_example_set(directory)
    assert len(report.outcomes) >= 10
    assert not report.failed, "\n".join(describe(report))


def test_the_examples_command_prints_each_decision_and_its_rule(capsys):
    assert main([str(EXAMPLES)]) == 0
    out = capsys.readouterr().out
    assert "ok  ALLOW productpage-from-gateway" in out
    assert "ok  DENY  reviews-admin-ops-only" in out
    assert out.rstrip().endswith("all examples decided as expected")


@pytest.mark.parametrize("path", sorted(EXAMPLES.rglob("*.policy")), ids=lambda p: p.name)
def test_examples_are_written_in_the_canonical_format(path: Path):
    from meshward.policy.formatter import format_text

    text = path.read_text()
    assert format_text(text, str(path)) == text
