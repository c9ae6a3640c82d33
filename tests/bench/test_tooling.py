"""The policy-tooling benchmark's workload: one file per service, mutations the diff must
find. Correctness only; nothing here measures time."""

from __future__ import annotations

import re

from bench.tooling import Row, mutate, one_file_per_service, report
from bench.workload import generate_mesh, render_meshward
from meshward.policy import load_texts
from meshward.policy.diff import diff_policies


def test_one_file_per_service_keeps_every_rule() -> None:
    mesh = generate_mesh(600, seed=3, services=12)
    texts = render_meshward(mesh)
    split = one_file_per_service(texts)
    assert len(split) == 12
    assert all(text.startswith('trust_domain "') for text in split.values())
    assert len(load_texts(split).policy.rules()) == 600


def test_mutations_are_found_by_the_diff() -> None:
    texts = render_meshward(generate_mesh(400, seed=5, services=10))
    assert any("\n    when " in t for t in texts.values())
    new_texts, changed = mutate(texts, 30, seed=5)
    assert changed == 30
    old, new = load_texts(texts).policy, load_texts(new_texts).policy
    # Three kinds, ten each: widened to every method, removed, narrowed to GET.
    assert len(old.rules()) - len(new.rules()) == 10
    result = diff_policies(old, new)
    assert result.complete and result.changed


def test_report_marks_targets() -> None:
    section = report([Row("lint", "1 file", 2.0, 10.0, "3 findings"), Row("load", "x", 30.0)], 1.0)
    assert section.startswith("## Policy tooling\n")
    assert re.search(r"\| lint \| 1 file \| 2\.00 \| < 10 s \| met; 3 findings \|", section)
    assert "| load | x | 30.00 |  |  |" in section
