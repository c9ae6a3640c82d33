"""``bench/`` is a tool of the source tree, not an installed package: make it importable
here, and skip these tests where it is absent (the wheel check copies only ``tests/``)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

if (ROOT / "bench" / "workload.py").is_file():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
else:
    collect_ignore_glob = ["test_*.py"]
