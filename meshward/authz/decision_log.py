"""The decision log: one JSON object per line, per decision (allowed ones sampled).

Fields are chosen, never copied from the request: the log holds no header values, so no
token, cookie or Authorization header can reach it. Paths are logged canonical and
without the query string, which may carry secrets.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from json.encoder import encode_basestring_ascii
from typing import IO, NamedTuple

from .settings import DecisionLogSettings

# Lines are buffered and flushed at least this often, instead of one write call per line.
FLUSH_INTERVAL_SECONDS = 1.0


class DecisionRecord(NamedTuple):
    """One decision as logged: only these fields, so nothing else of a request (no
    header, token or cookie) can reach the log."""

    time: str
    decision_id: str
    principal: str | None
    source_ip: str | None
    destination: str | None
    method: str
    path: str | None  # canonical, no query; None when the path was ambiguous
    allowed: bool
    status: int
    rule: str
    reason: str
    audit: tuple[tuple[str, str], ...]  # (rule id, what it would have done)
    jwt: str | None  # "verified", or why a token was not accepted
    latency_us: float

    def to_json_line(self) -> str:
        """The record as one line of JSON (every control and non-ASCII character escaped).
        Written out field by field: a denial is always logged, and this costs less than
        half of what ``json.dumps`` of a dict does. Every substitution is a plain ``str``,
        which compiled code joins directly (anything else goes through ``str.format``)."""
        enc = encode_basestring_ascii
        audit = ",".join(f'{{"rule":{enc(r)},"would":{enc(w)}}}' for r, w in self.audit)
        result = "allow" if self.allowed else "deny"
        status = str(int(self.status))
        latency = repr(float(self.latency_us))
        return (
            f'{{"time":{enc(self.time)},"decision_id":{enc(self.decision_id)},'
            f'"source":{{"principal":{_nullable(self.principal)},'
            f'"ip":{_nullable(self.source_ip)}}},'
            f'"destination":{_nullable(self.destination)},'
            f'"method":{enc(self.method)},"path":{_nullable(self.path)},'
            f'"result":"{result}","status":{status},"rule":{enc(self.rule)},'
            f'"reason":{enc(self.reason)},"audit":[{audit}],'
            f'"jwt":{_nullable(self.jwt)},"latency_us":{latency}}}\n'
        )


def _nullable(value: str | None) -> str:
    return "null" if value is None else encode_basestring_ascii(value)


class DecisionLog:
    """Writes decision records; thread-safe; a no-op when the log is off."""

    def __init__(self, settings: DecisionLogSettings) -> None:
        self._rate = settings.allow_sample_rate
        self._lock = threading.Lock()
        self._owned = False
        self._out: IO[str] | None
        if not settings.path:
            self._out = None
        elif settings.path == "-":
            self._out = sys.stdout
        else:
            self._out = open(settings.path, "a", encoding="utf-8")  # noqa: SIM115
            self._owned = True
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        if self._out is not None:
            self._flusher = threading.Thread(
                target=self._flush_periodically, name="decision-log", daemon=True
            )
            self._flusher.start()

    def wants(self, allowed: bool) -> bool:
        """Whether this decision is to be logged (denials always; allows by sampling)."""
        if self._out is None:
            return False
        return not allowed or self._rate >= 1.0 or random.random() < self._rate

    def write(self, record: DecisionRecord) -> None:
        out = self._out
        if out is None:
            return
        line = record.to_json_line()
        with self._lock:
            out.write(line)

    def flush(self) -> None:
        with self._lock:
            if self._out is not None:
                self._out.flush()

    def _flush_periodically(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL_SECONDS):
            try:
                self.flush()
            except (OSError, ValueError):  # the output went away (closed, disk full)
                return

    def close(self) -> None:
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join(timeout=5)
        self.flush()
        with self._lock:
            if self._owned and self._out is not None:
                self._out.close()
            self._out = None


class _Clock:
    """UTC timestamps in ISO 8601 with microseconds; the seconds part is formatted once
    per second, not per decision."""

    def __init__(self) -> None:
        self._cached = (-1, "")  # (second, its formatted form), replaced as one object

    def now(self) -> str:
        return self.at(time.time())

    def at(self, t: float) -> str:
        """The timestamp of ``t`` (seconds since the epoch)."""
        second = int(t)
        cached_second, prefix = self._cached
        if second != cached_second:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._cached = (second, prefix)
        return prefix + "." + str(int((t - second) * 1e6)).zfill(6) + "Z"


utc_now = _Clock().now
