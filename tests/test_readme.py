"""The README's examples are real: the policy sketch checks, the Python snippet runs."""

from __future__ import annotations

import re
from pathlib import Path

from meshward.policy import load_texts

README = (Path(__file__).parents[1] / "README.md").read_text()
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", README, re.DOTALL)


def test_the_policy_sketch_checks():
    sketch = next(body for lang, body in BLOCKS if "trust_domain" in body and not lang)
    policy = load_texts({"README.policy": sketch}).policy
    assert {r.rule_id for r in policy.rules()} >= {"reviews-read", "admin-only-ops", "legacy-v1"}


def test_the_library_snippet_runs(monkeypatch):
    snippet = next(body for lang, body in BLOCKS if lang == "python")
    monkeypatch.chdir(Path(__file__).parents[1])
    scope: dict[str, object] = {}
    exec(snippet, scope)
    assert scope["decision"].allowed  # type: ignore[attr-defined]
