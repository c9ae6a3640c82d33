"""Parsing of the service's human-facing options: durations and workload specifications."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from meshward.ca.rotation import Workload
from meshward.ca.spiffe_id import SpiffeId

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+)([smhd])")


def parse_duration(text: str) -> dt.timedelta:
    """Parse ``90s``, ``15m``, ``1h``, ``30d`` or combinations such as ``1h30m``."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid duration {text!r} (use e.g. 90s, 15m, 1h, 30d, 1h30m)")
    seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"duration {text!r} must be positive")
    return dt.timedelta(seconds=seconds)


def _id_and_path(text: str, what: str) -> tuple[SpiffeId, Path]:
    spiffe_id, sep, path = text.partition("=")
    if not sep or not path:
        raise ValueError(f"invalid {text!r}: expected SPIFFE_ID={what}")
    return SpiffeId.parse(spiffe_id), Path(path)


def parse_workload(text: str) -> Workload:
    """Parse ``spiffe://td/path=DIRECTORY`` into a workload."""
    return Workload(*_id_and_path(text, "DIRECTORY"))


def parse_socket(text: str) -> tuple[SpiffeId, Path]:
    """Parse ``spiffe://td/path=SOCKET`` (a Workload API socket for that identity)."""
    return _id_and_path(text, "SOCKET")
