"""The decision log's outputs and sampling."""

from __future__ import annotations

import json
import time
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
    out.close()
    assert json.loads(capsys.readouterr().out) == {"decision_id": "x"}
    off = DecisionLog(DecisionLogSettings(path=""))
    assert not off.wants(False)
    off.write({"decision_id": "y"})
    off.close()
    assert capsys.readouterr().out == ""


def test_lines_are_flushed_while_running(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    log = DecisionLog(DecisionLogSettings(path=str(path)))
    log.write({"decision_id": "a"})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not path.read_text():
        time.sleep(0.1)
    assert json.loads(path.read_text()) == {"decision_id": "a"}
    log.close()


def test_denials_always_allows_sampled(tmp_path: Path) -> None:
    def log(rate: float) -> DecisionLog:
        return DecisionLog(DecisionLogSettings(path=str(tmp_path / "d"), allow_sample_rate=rate))

    never, always, half = log(0), log(1), log(0.5)
    assert never.wants(False) and not never.wants(True)
    assert always.wants(True)
    sampled = sum(half.wants(True) for _ in range(2000))
    assert 0 < sampled < 2000
    for each in (never, always, half):
        each.close()
