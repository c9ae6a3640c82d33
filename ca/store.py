"""Where the CA keeps its state, keys and certificates: an interface and a filesystem store."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Hashable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

from .errors import StoreError
from .fsio import atomic_write, remove_temporaries

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


class Store(Protocol):
    """Persistence for one trust domain's CA.

    Every write is atomic: after a crash a reader sees the old or the new content. Keys are
    secrets and must be stored readable by the CA only.
    """

    def read_state(self) -> bytes | None:
        """The state document, or None when the CA was never initialised."""

    def write_state(self, data: bytes) -> None:
        """Replace the state document."""

    def state_stamp(self) -> Hashable:
        """A cheap value that changes whenever the state document is replaced, so readers
        can skip re-reading an unchanged document (None when there is none)."""

    def read_key(self, name: str) -> bytes:
        """A private key (PEM) by name."""

    def write_key(self, name: str, pem: bytes) -> None:
        """Store a private key (PEM) under ``name``."""

    def delete_key(self, name: str) -> None:
        """Forget a private key (no error when absent)."""

    def key_names(self) -> list[str]:
        """Names of every stored private key."""

    def read_cert(self, name: str) -> bytes:
        """A certificate (PEM) by name."""

    def write_cert(self, name: str, pem: bytes) -> None:
        """Store a certificate (PEM) under ``name``."""

    def cleanup(self) -> None:
        """Remove leftovers of interrupted writes."""

    def lock(self) -> AbstractContextManager[None]:
        """Exclusive access across processes (the CLI and a running service)."""


def _checked(name: str) -> str:
    if not name or not set(name) <= _NAME_CHARS or name.startswith("."):
        raise StoreError(f"invalid store entry name {name!r}")
    return name


class FileStore:
    """The embedded default store: a directory with ``state.json``, ``keys/`` and ``certs/``.

    Keys are files of mode 0600 in a 0700 directory; every file is replaced atomically.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._keys = self.root / "keys"
        self._certs = self.root / "certs"

    def _ensure_dirs(self) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._keys.mkdir(mode=0o700, exist_ok=True)
        self._certs.mkdir(mode=0o755, exist_ok=True)

    def read_state(self) -> bytes | None:
        try:
            return (self.root / "state.json").read_bytes()
        except FileNotFoundError:
            return None

    def write_state(self, data: bytes) -> None:
        self._ensure_dirs()
        atomic_write(self.root / "state.json", data, 0o600)

    def state_stamp(self) -> Hashable:
        try:
            info = os.stat(self.root / "state.json")
        except FileNotFoundError:
            return None
        # Every write is a rename of a new file: a new inode, whatever the clock says.
        return (info.st_ino, info.st_mtime_ns, info.st_size)

    def read_key(self, name: str) -> bytes:
        try:
            return (self._keys / f"{_checked(name)}.pem").read_bytes()
        except FileNotFoundError:
            raise StoreError(f"private key {name!r} is missing from {self._keys}") from None

    def write_key(self, name: str, pem: bytes) -> None:
        self._ensure_dirs()
        atomic_write(self._keys / f"{_checked(name)}.pem", pem, 0o600)

    def delete_key(self, name: str) -> None:
        (self._keys / f"{_checked(name)}.pem").unlink(missing_ok=True)

    def key_names(self) -> list[str]:
        if not self._keys.is_dir():
            return []
        return sorted(p.stem for p in self._keys.glob("*.pem") if not p.name.startswith("."))

    def read_cert(self, name: str) -> bytes:
        try:
            return (self._certs / f"{_checked(name)}.pem").read_bytes()
        except FileNotFoundError:
            raise StoreError(f"certificate {name!r} is missing from {self._certs}") from None

    def write_cert(self, name: str, pem: bytes) -> None:
        self._ensure_dirs()
        atomic_write(self._certs / f"{_checked(name)}.pem", pem, 0o644)

    def cleanup(self) -> None:
        for directory in (self.root, self._keys, self._certs):
            if directory.is_dir():
                remove_temporaries(directory)

    @contextmanager
    def lock(self) -> Iterator[None]:
        self._ensure_dirs()
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def __repr__(self) -> str:
        return f"FileStore({os.fspath(self.root)!r})"
