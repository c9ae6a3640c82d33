"""The decision log's outputs and sampling."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from meshward.authz.decision_log import DecisionLog, DecisionRecord
from meshward.authz.settings import DecisionLogSettings


def record(decision_id: str, allowed: bool = False, **fields: object) -> DecisionRecord:
    base: dict[str, object] = {
        "time": "2026-01-31T12:00:00.000001Z",
        "decision_id": decision_id,
        "principal": "spiffe://cluster.local/ns/web/sa/web",
        "source_ip": None,
        "destination": "reviews.default",
        "method": "GET",
        "path": "/reviews/1",
        "allowed": allowed,
        "status": 200 if allowed else 403,
        "rule": "r1",
        "reason": "allowed by r1" if allowed else "denied by r1",
        "audit": (),
        "jwt": None,
        "latency_us": 12.5,
    }
    base.update(fields)
    return DecisionRecord(**base)


def test_file_output_one_json_object_per_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    log = DecisionLog(DecisionLogSettings(path=str(path)))
    log.write(record("a"))
    log.write(record("b", allowed=True))
    log.close()
    assert [json.loads(x)["decision_id"] for x in path.read_text().splitlines()] == ["a", "b"]


def test_stdout_and_off(capsys: pytest.CaptureFixture[str]) -> None:
    out = DecisionLog(DecisionLogSettings(path="-"))
    out.write(record("x"))
    out.close()
    assert json.loads(capsys.readouterr().out)["decision_id"] == "x"
    off = DecisionLog(DecisionLogSettings(path=""))
    assert not off.wants(False)
    off.write(record("y"))
    off.close()
    assert capsys.readouterr().out == ""


def test_lines_are_flushed_while_running(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    log = DecisionLog(DecisionLogSettings(path=str(path)))
    log.write(record("a"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not path.read_text():
        time.sleep(0.1)
    assert json.loads(path.read_text())["decision_id"] == "a"
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


def test_a_line_is_exactly_the_record_as_json() -> None:
    line = record(
        "d-1",
        principal=None,
        source_ip="10.0.0.1",
        path=None,
        reason='denied: "quoted" \\ back\nslash, é, \u2028, \x00',
        audit=(("probe", "deny"), ("other", "allow")),
        jwt="expired",
    ).to_json_line()
    assert line.endswith("\n") and "\n" not in line[:-1] and line.isascii()
    assert json.loads(line) == {
        "time": "2026-01-31T12:00:00.000001Z",
        "decision_id": "d-1",
        "source": {"principal": None, "ip": "10.0.0.1"},
        "destination": "reviews.default",
        "method": "GET",
        "path": None,
        "result": "deny",
        "status": 403,
        "rule": "r1",
        "reason": 'denied: "quoted" \\ back\nslash, é, \u2028, \x00',
        "audit": [{"rule": "probe", "would": "deny"}, {"rule": "other", "would": "allow"}],
        "jwt": "expired",
        "latency_us": 12.5,
    }
    # Key order and separators too, for the tools that read the lines as text.
    assert record("d-2", allowed=True).to_json_line() == (
        '{"time":"2026-01-31T12:00:00.000001Z","decision_id":"d-2",'
        '"source":{"principal":"spiffe://cluster.local/ns/web/sa/web","ip":null},'
        '"destination":"reviews.default","method":"GET","path":"/reviews/1",'
        '"result":"allow","status":200,"rule":"r1","reason":"allowed by r1","audit":[],'
        '"jwt":null,"latency_us":12.5}\n'
    )


def test_timestamps_are_utc_with_microseconds() -> None:
    from datetime import UTC, datetime

    from meshward.authz.decision_log import utc_now

    before = datetime.now(UTC)
    stamps = [utc_now() for _ in range(3)]
    after = datetime.now(UTC)
    for stamp in stamps:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp), stamp
        parsed = datetime.fromisoformat(stamp)
        assert before.replace(microsecond=0) <= parsed <= after
    assert stamps == sorted(stamps)


@pytest.mark.parametrize(
    ("t", "stamp"),
    [
        (1767225600.0, "2026-01-01T00:00:00.000000Z"),
        (1767225600.5, "2026-01-01T00:00:00.500000Z"),
        (1767225601 + 1 / 64, "2026-01-01T00:00:01.015625Z"),  # zero-padded
        (1767225601 + 1 / 1024, "2026-01-01T00:00:01.000976Z"),  # truncated, not rounded
    ],
)
def test_timestamp_format(t: float, stamp: str) -> None:
    from meshward.authz.decision_log import _Clock

    assert _Clock().at(t) == stamp
