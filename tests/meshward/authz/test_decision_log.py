"""The decision log's outputs and sampling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshward.authz.decision_log import DecisionLog
from meshward.authz.settings import DecisionLogSettings


def test_file_output_one_json_object_per_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    log = DecisionLog(DecisionLogSettings(path=str(path)))
    log.write({"decision_id": "a", "result": "deny"})
    log.write({"decision_id": "b", "result": "allow"})
    log.close()
    assert [json.loads(x)["decision_id"] for x in path.read_text().splitlines()] == ["a", "b"]


def test_stdout_and_off(capsys: pytest.CaptureFixture[str]) -> None:
    out = DecisionLog(DecisionLogSettings(path="-"))
    out.write({"decision_id": "x"})
    assert json.loads(capsys.readouterr().out) == {"decision_id": "x"}
    off = DecisionLog(DecisionLogSettings(path=""))
    assert not off.wants(False)
    off.write({"decision_id": "y"})
    assert capsys.readouterr().out == ""


def test_denials_always_allows_sampled() -> None:
    never = DecisionLog(DecisionLogSettings(path="-", allow_sample_rate=0))
    assert never.wants(False) and not never.wants(True)
    always = DecisionLog(DecisionLogSettings(path="-", allow_sample_rate=1))
    assert always.wants(True)
    half = DecisionLog(DecisionLogSettings(path="-", allow_sample_rate=0.5))
    sampled = sum(half.wants(True) for _ in range(2000))
    assert 0 < sampled < 2000
