"""Pausing Python's cyclic garbage collector while a large policy model is built.

Parsing, checking and linting allocate millions of objects that stay alive and hold no
reference cycles: every collection the allocations trigger walks the growing heap and
frees nothing, which measured as a third of the time of loading 100,000 rules.
Reference counting still frees everything as usual while the collector is paused.

When the pause ends, everything allocated during it is promoted straight to the oldest
generation (``gc.freeze()`` then ``gc.unfreeze()``, both constant time): left young, the
whole new model would be walked by the very next young collection, a stall of about a
second at 100,000 rules, in whichever thread allocates next. Cycles among the promoted
objects are still found, by the next full collection. (A process that froze objects on
purpose, say before forking, has them unfrozen by this.)
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextmanager
def paused_gc() -> Iterator[None]:
    """Disable the cyclic collector for the block; nested and concurrent blocks (a
    reload thread beside a request thread) share one pause, and the collector comes
    back, if it was on, when the last block ends."""
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.freeze()
                gc.unfreeze()
                gc.enable()
