"""Durable file writes: a crash leaves either the old or the new content, never a mix."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

TEMP_PREFIX = ".tmp-"


def fsync_dir(path: Path) -> None:
    """Flush a directory entry change (a rename or a new file) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new_file(path: Path, data: bytes, mode: int, *, sync: bool = True) -> None:
    """Create ``path`` with ``mode`` from the start (a key is never briefly world-readable).

    ``sync=False`` leaves flushing to the caller (one ``os.sync()`` for a whole batch).
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` atomically: write a temporary file, fsync, rename, fsync the directory."""
    tmp = path.with_name(f"{TEMP_PREFIX}{path.name}.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    write_new_file(tmp, data, mode)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def replace_file(path: Path, data: bytes, mode: int = 0o644) -> None:
    """:func:`atomic_write` to the file ``path`` names (through a link, to its target, as
    editors write), keeping an existing file's mode; ``mode`` is a new file's."""
    target = path.resolve()
    with contextlib.suppress(FileNotFoundError):
        mode = stat.S_IMODE(target.stat().st_mode)
    atomic_write(target, data, mode)


def remove_temporaries(directory: Path) -> None:
    """Delete temporary files a crashed :func:`atomic_write` left in ``directory``."""
    for entry in directory.glob(f"{TEMP_PREFIX}*"):
        entry.unlink(missing_ok=True)
