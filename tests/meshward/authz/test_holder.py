"""Policy loading and reload: atomic swap, bad policies refused, watcher and bundles."""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshward.authz.holder import PolicyHolder, PolicyWatcher, ReloadResult
from meshward.authz.settings import PolicySettings
from meshward.policy import load_paths, loader
from meshward.policy.bundle import write as write_bundle
from meshward.testing import configmap
from meshward.testing.waiting import eventually

GOOD = 'service a {\n  @id("r1")\n  allow GET /x from any\n}\n'
BETTER = GOOD + 'service b {\n  @id("r2")\n  allow GET /y from any\n}\n'
BROKEN = "service a {\n  allow GIT /x from anyy\n"


def _bump(path: Path, text: str) -> None:
    """Write and move the mtime forward, so a change is visible even within one tick."""
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_not_ready_until_a_policy_loads(tmp_path: Path) -> None:
    source = tmp_path / "a.policy"
    source.write_text(BROKEN)
    results: list[ReloadResult] = []
    holder = PolicyHolder(PolicySettings(paths=[source]), on_reload=results.append)
    assert not holder.ready
    result = holder.reload()
    assert not result.ok
    assert not holder.ready
    assert holder.last_error is not None and "a.policy:" in holder.last_error
    _bump(source, GOOD)
    assert holder.reload().ok
    assert holder.ready
    assert holder.last_error is None
    assert [r.ok for r in results] == [False, True]


def test_bad_policy_is_refused_and_the_last_good_one_keeps_serving(tmp_path: Path) -> None:
    source = tmp_path / "a.policy"
    source.write_text(GOOD)
    holder = PolicyHolder(PolicySettings(paths=[tmp_path]))
    assert holder.reload().ok
    good = holder.policy
    _bump(source, BROKEN)
    result = holder.reload()
    assert not result.ok
    assert holder.policy is good
    assert result.fingerprint == good.fingerprint if good else False
    assert result.error is not None and "error" in result.error


def test_swap_replaces_the_whole_policy(tmp_path: Path) -> None:
    source = tmp_path / "a.policy"
    source.write_text(GOOD)
    holder = PolicyHolder(PolicySettings(paths=[source]))
    holder.reload()
    first = holder.policy
    _bump(source, BETTER)
    assert holder.reload().ok
    assert holder.policy is not first
    assert holder.policy is not None and holder.policy.rule_count == 2


def test_missing_files_are_refused(tmp_path: Path) -> None:
    holder = PolicyHolder(PolicySettings(paths=[tmp_path / "missing"]))
    result = holder.reload()
    assert not result.ok and result.error is not None and "cannot load" in result.error


def test_bundle_source(tmp_path: Path) -> None:
    source = tmp_path / "a.policy"
    source.write_text(BETTER)
    bundle = tmp_path / "policy.bundle"
    write_bundle(load_paths([source]).policy, bundle)
    holder = PolicyHolder(PolicySettings(bundle=bundle))
    assert holder.reload().ok and holder.policy is not None
    assert holder.policy.rule_count == 2
    bundle.write_text(bundle.read_text().replace('"r2"', '"r3"'))
    result = holder.reload()
    assert not result.ok and result.error is not None and "checksum" in result.error
    assert holder.policy.rule_count == 2


def test_a_bundle_named_as_policy_source_is_refused_clearly(tmp_path: Path) -> None:
    source = tmp_path / "a.policy"
    source.write_text(GOOD)
    bundle = tmp_path / "policy.json"
    write_bundle(load_paths([source]).policy, bundle)
    result = PolicyHolder(PolicySettings(paths=[bundle])).reload()
    assert not result.ok and result.error is not None
    assert "is a compiled bundle" in result.error and "serve --bundle" in result.error


@contextlib.contextmanager
def _watched(
    tmp_path: Path, poll_interval: float
) -> Iterator[tuple[Path, PolicyHolder, PolicyWatcher, list[ReloadResult]]]:
    """``a.policy`` (GOOD) loaded, and a running watcher; yields the file, the holder,
    the watcher and every reload result."""
    source = tmp_path / "a.policy"
    source.write_text(GOOD)
    settings = PolicySettings(paths=[tmp_path], poll_interval_seconds=poll_interval)
    results: list[ReloadResult] = []
    holder = PolicyHolder(settings, on_reload=results.append)
    holder.reload()
    watcher = PolicyWatcher(holder, settings)
    watcher.start()
    try:
        yield source, holder, watcher, results
    finally:
        watcher.stop()


def test_watcher_reloads_on_change_and_on_request(tmp_path: Path) -> None:
    with _watched(tmp_path, 0.1) as (source, holder, watcher, results):
        _bump(source, BETTER)
        assert eventually(lambda: holder.policy is not None and holder.policy.rule_count == 2)
        _bump(source, BROKEN)
        assert eventually(lambda: bool(results) and not results[-1].ok)
        assert holder.policy is not None and holder.policy.rule_count == 2
        attempts = len(results)
        time.sleep(0.5)  # an unchanged broken file is not retried on every poll
        assert len(results) == attempts
        watcher.request_reload()
        assert eventually(lambda: len(results) == attempts + 1)


def test_the_watcher_loads_a_change_once_it_has_settled(tmp_path: Path) -> None:
    with _watched(tmp_path, 0.2) as (source, holder, _, results):
        # A file rewritten in place, slowly: empty, then half, then whole. Loaded at
        # once, the empty file (a valid policy without rules) would have been served.
        for text in ("", BETTER[: len(BETTER) // 2], BETTER):
            _bump(source, text)
            time.sleep(0.3)  # longer than a poll, shorter than two
        assert eventually(lambda: holder.policy is not None and holder.policy.rule_count == 2)
        assert [r.ok for r in results] == [True, True]  # nothing in between was loaded


def test_a_change_that_restores_the_modification_time_is_seen(tmp_path: Path) -> None:
    source = tmp_path / "a.policy"
    source.write_text(GOOD)
    holder = PolicyHolder(PolicySettings(paths=[tmp_path]))
    holder.reload()
    st = source.stat()
    source.write_text(GOOD.replace("/x", "/z"))  # same size, as `cp -p` or `tar x` would
    os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert holder.changed() is not None


def test_files_changing_while_read_are_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A ConfigMap update between reading a.policy and b.policy: its deny moves from b to
    # a. Read across the swap, old a and new b would hold no deny at all.
    allow = 'service s {\n  @id("open") allow GET /{**} from any\n}\n'
    deny = 'service s {\n  @id("admin") deny GET /admin/{**} from any\n}\n'
    versions = [{"a.policy": allow, "b.policy": deny}, {"a.policy": deny, "b.policy": allow}]
    swaps = iter(range(1, 2))
    real_read = loader.read_policy_text

    def read(path: Path) -> str:
        text = real_read(path)
        if path.name == "a.policy":
            for n in swaps:  # once: swap right after the first read of a.policy
                configmap.publish(tmp_path, versions[n], f"v{n}")
        return text

    configmap.publish(tmp_path, versions[0], "v0")
    monkeypatch.setattr("meshward.authz.holder.read_policy_text", read)
    holder = PolicyHolder(PolicySettings(paths=[tmp_path]))
    assert holder.reload().ok and holder.policy is not None
    assert {r.rule_id for r in holder.policy.policy.rules()} == {"open", "admin"}
    assert holder.changed() is None  # the version read is the one now on disk


def test_reload_restores_the_interpreter_settings(tmp_path: Path) -> None:
    source = tmp_path / "a.policy"
    interval = sys.getswitchinterval()
    holder = PolicyHolder(PolicySettings(paths=[source]))
    for text in (GOOD, BROKEN):
        _bump(source, text)
        holder.reload()
        assert sys.getswitchinterval() == interval
        assert gc.isenabled()


def test_unchanged_files_are_not_parsed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.policy").write_text(GOOD)
    other = tmp_path / "b.policy"
    other.write_text('service b {\n  @id("r2")\n  allow GET /y from any\n}\n')
    holder = PolicyHolder(PolicySettings(paths=[tmp_path]))
    calls: list[str] = []
    real_parse = loader.parse

    def counting_parse(text: str, path: str = "<policy>") -> Any:
        calls.append(Path(path).name)
        return real_parse(text, path)

    monkeypatch.setattr(loader, "parse", counting_parse)
    assert holder.reload().ok
    assert sorted(calls) == ["a.policy", "b.policy"]
    _bump(other, 'service b {\n  @id("r3")\n  allow GET /z from any\n}\n')
    assert holder.reload().ok
    assert sorted(calls) == ["a.policy", "b.policy", "b.policy"]
    assert holder.policy is not None and holder.policy.rule_count == 2


def test_the_watcher_outlives_a_failing_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A ConfigMap's old folder vanishing under a directory search must not end the watch.
    with _watched(tmp_path, 0.1) as (source, holder, _, _):
        real = holder.changed
        failures = iter([FileNotFoundError("..2026_old vanished")])

        def changed() -> Any:
            for exc in failures:
                raise exc
            return real()

        monkeypatch.setattr(holder, "changed", changed)
        time.sleep(0.3)  # the failing poll has happened
        _bump(source, BETTER)
        assert eventually(lambda: holder.policy is not None and holder.policy.rule_count == 2)


def test_files_that_kept_changing_while_read_are_loaded_once_they_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "a.policy"
    _bump(source, GOOD)
    holder = PolicyHolder(PolicySettings(paths=[tmp_path]))
    assert holder.reload().ok
    real_read = loader.read_policy_text
    writes = iter(range(3))  # a write during each of the three reads

    def read(path: Path) -> str:
        text = real_read(path)
        for n in writes:
            _bump(source, BETTER + f"# {n}\n")
            break
        return text

    monkeypatch.setattr("meshward.authz.holder.read_policy_text", read)
    result = holder.reload()
    assert not result.ok and "kept changing" in (result.error or "")
    assert holder.changed() is not None  # so the watcher tries again
    assert holder.reload().ok and holder.policy is not None and holder.policy.rule_count == 2
