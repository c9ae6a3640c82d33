import gc
import threading
from collections.abc import Iterator

import pytest

from meshward.policy.gc_pause import paused_gc


@pytest.fixture(autouse=True)
def _restore_gc() -> Iterator[None]:
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def test_pause_disables_and_restores() -> None:
    gc.enable()
    with paused_gc():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_nested_pauses_restore_only_at_the_outermost() -> None:
    gc.enable()
    with paused_gc():
        with paused_gc():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with paused_gc():
        pass
    assert not gc.isenabled()


def test_restored_after_an_exception() -> None:
    gc.enable()
    with pytest.raises(ValueError), paused_gc():
        raise ValueError
    assert gc.isenabled()


def test_overlapping_pauses_in_two_threads_share_one_pause() -> None:
    gc.enable()
    inside, leave = threading.Event(), threading.Event()

    def other() -> None:
        with paused_gc():
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=other)
    with paused_gc():
        thread.start()
        assert inside.wait(10)
    # This thread's block ended first; the other's still holds the pause.
    assert not gc.isenabled()
    leave.set()
    thread.join(10)
    assert gc.isenabled()


def test_loading_runs_with_the_collector_paused(monkeypatch: pytest.MonkeyPatch) -> None:
    from meshward.policy import checker, load_texts

    seen: list[bool] = []
    real = checker.check

    def spy(files):  # type: ignore[no-untyped-def]
        seen.append(gc.isenabled())
        return real(files)

    monkeypatch.setattr("meshward.policy.loader.check", spy)
    gc.enable()
    load_texts({"a.policy": 'trust_domain "t"\nservice s.x { allow GET /a from any }\n'})
    assert seen == [False] and gc.isenabled()


def test_what_the_pause_built_is_promoted_to_the_oldest_generation() -> None:
    # Left young, it would all be walked by the next young collection.
    gc.enable()
    with paused_gc():
        built = [[i] for i in range(3)]
    oldest = {id(o) for o in gc.get_objects(generation=2)}
    assert all(id(item) in oldest for item in built)
    assert gc.get_freeze_count() == 0  # promoted, not frozen: cycles are still found
