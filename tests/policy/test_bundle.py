from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshward.policy import BundleError, Request, bundle, compile_policy, evaluate, load_paths
from meshward.policy.loader import load_bundle

EXAMPLES = Path(__file__).parents[2] / "examples" / "policies"


def test_bundle_round_trips_the_checked_model_and_decides_the_same(tmp_path):
    loaded = load_paths([EXAMPLES])
    path = tmp_path / "policy.bundle"
    bundle.write(loaded.policy, path)
    assert bundle.loads(path.read_text()) == loaded.policy
    compiled = load_bundle(path)
    assert compiled.fingerprint == compile_policy(loaded.policy).fingerprint
    direct = compile_policy(loaded.policy)
    for case_file in EXAMPLES.rglob("*.policytest.json"):
        for case in json.loads(case_file.read_text()):
            request = Request.from_json(case["request"])
            assert evaluate(compiled, request) == evaluate(direct, request)


def test_bundle_loads_without_the_grammar(tmp_path, monkeypatch):
    from meshward.policy import parser

    loaded = load_paths([EXAMPLES / "bookinfo"])
    text = bundle.dumps(loaded.policy)

    def no_grammar() -> None:
        raise AssertionError("the grammar was loaded")

    monkeypatch.setattr(parser, "grammar", no_grammar)
    assert bundle.loads(text) == loaded.policy


def _doc(tmp_path: Path) -> dict:
    return json.loads(bundle.dumps(load_paths([EXAMPLES / "bookinfo"]).policy))


def test_wrong_version_is_refused(tmp_path):
    doc = _doc(tmp_path)
    doc["version"] = 99
    with pytest.raises(BundleError, match="version 99 is not supported"):
        bundle.loads(json.dumps(doc))


def test_altered_payload_is_refused(tmp_path):
    doc = _doc(tmp_path)
    doc["payload"]["services"][0]["default"] = "allow"
    with pytest.raises(BundleError, match="checksum mismatch"):
        bundle.loads(json.dumps(doc))


@pytest.mark.parametrize("text", ["", "{}", "[1]", '{"format": "meshward-bundle", "version": 1}'])
def test_garbage_is_refused(text):
    with pytest.raises(BundleError):
        bundle.loads(text)
