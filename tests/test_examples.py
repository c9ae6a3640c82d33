"""Every example policy set decides its example requests as documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshward.examples import run_example_set

EXAMPLES = Path(__file__).parents[1] / "examples" / "policies"
SETS = sorted(p.parent for p in EXAMPLES.rglob("requests.json"))


def test_there_are_at_least_two_example_meshes():
    assert {s.name for s in SETS} >= {"bookinfo", "shop"}


@pytest.mark.parametrize("directory", SETS, ids=lambda p: p.name)
def test_example_requests_decide_as_expected(directory: Path):
    results = run_example_set(directory)
    assert len(results) >= 10
    failed = [r.line for r in results if not r.ok]
    assert not failed, "\n".join(failed)
