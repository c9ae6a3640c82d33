"""The filesystem store: permissions, atomic replacement, leftovers."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from meshward.ca.errors import StoreError
from meshward.ca.fsio import TEMP_PREFIX
from meshward.ca.store import FileStore


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keys_are_0600_in_a_0700_directory(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "ca")
    store.write_key("root-1", b"secret")
    assert _mode(tmp_path / "ca" / "keys" / "root-1.pem") == 0o600
    assert _mode(tmp_path / "ca" / "keys") == 0o700
    assert _mode(tmp_path / "ca") == 0o700
    assert store.read_key("root-1") == b"secret"


def test_state_is_replaced_whole(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    assert store.read_state() is None
    store.write_state(b"one")
    store.write_state(b"two")
    assert store.read_state() == b"two"
    assert not list(tmp_path.glob(f"{TEMP_PREFIX}*"))


def test_cleanup_removes_interrupted_writes_only(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.write_key("a", b"k")
    (tmp_path / "keys" / f"{TEMP_PREFIX}a.pem.123").write_bytes(b"half")
    store.cleanup()
    assert store.key_names() == ["a"]
    assert not list((tmp_path / "keys").glob(f"{TEMP_PREFIX}*"))


def test_missing_and_invalid_names_are_errors(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    with pytest.raises(StoreError, match="missing"):
        store.read_key("nope")
    with pytest.raises(StoreError, match="invalid"):
        store.write_key("../escape", b"x")


def test_delete_key(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.write_key("a", b"k")
    store.delete_key("a")
    store.delete_key("a")
    assert store.key_names() == []
