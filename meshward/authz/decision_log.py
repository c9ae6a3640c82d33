"""The decision log: one JSON object per line, per decision (allowed ones sampled).

Fields are chosen, never copied from the request: the log holds no header values, so no
token, cookie or Authorization header can reach it. Paths are logged canonical and
without the query string, which may carry secrets.
"""

from __future__ import annotations

import json
import random
import sys
import threading
from datetime import UTC, datetime
from typing import IO, Any

from .settings import DecisionLogSettings


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
            self._out = open(settings.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
            self._owned = True

    def wants(self, allowed: bool) -> bool:
        """Whether this decision is to be logged (denials always; allows by sampling)."""
        if self._out is None:
            return False
        return not allowed or self._rate >= 1.0 or random.random() < self._rate

    def write(self, record: dict[str, Any]) -> None:
        if self._out is None:
            return
        line = json.dumps(record, separators=(",", ":"), default=str) + "\n"
        with self._lock:
            self._out.write(line)

    def close(self) -> None:
        if self._owned and self._out is not None:
            self._out.close()
        self._out = None


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
