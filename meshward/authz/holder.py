"""The policy the service decides with: loaded, compiled off the hot path, swapped atomically.

Readers take ``holder.policy`` (one attribute read, atomic under the interpreter); a reload
builds a complete new :class:`CompiledPolicy` first and only then replaces the reference, so
a request sees the old policy or the new one, never a mix. A policy that fails to load or
check is refused: the last good one keeps serving and the error is kept for ``/readyz``.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from meshward.policy import CompiledPolicy, PolicyError, compile_policy, load_texts
from meshward.policy.bundle import BundleError
from meshward.policy.diagnostics import render_human
from meshward.policy.gc_pause import paused_gc
from meshward.policy.loader import (
    NotPolicySource,
    ParseCache,
    load_bundle,
    policy_files,
    read_policy_text,
)

from .settings import PolicySettings

log = logging.getLogger("meshward.authz.policy")

# Per source file: its name, then the identity and times of the file it names now.
Signature = tuple[tuple[str, int, int, int, int, int], ...]
_MISSING = (-1, -1, -1, -1, -1)
# A load reads the files again when they changed while it read them, at most this often.
READ_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What one load attempt did: ``ok`` (swapped in), or refused with ``error``."""

    ok: bool
    fingerprint: str | None
    rule_count: int
    error: str | None
    seconds: float


class PolicyHolder:
    """Holds the current policy and reloads it; ``on_reload`` observes every attempt."""

    def __init__(
        self,
        settings: PolicySettings,
        on_reload: Callable[[ReloadResult], None] | None = None,
    ) -> None:
        self._settings = settings
        self._on_reload = on_reload
        self._lock = threading.Lock()  # one reload at a time; readers never take it
        self.policy: CompiledPolicy | None = None
        self.last_error: str | None = None
        self.loaded_at: float | None = None
        self._signature: Signature = ()  # of the sources the last attempt read
        self._tried: Signature = ()
        self._parsed = ParseCache()  # a reload re-parses only the files that changed

    @property
    def ready(self) -> bool:
        return self.policy is not None

    def _sources(self) -> list[Path]:
        if self._settings.bundle is not None:
            return [self._settings.bundle]
        return policy_files(self._settings.paths)

    def signature(self) -> Signature:
        """What any change to the source files alters: their names and, through links, the
        device, inode, size and change and modification times of each file (the change
        time moves on every write, even one that restores the modification time)."""
        out = []
        for path in self._sources():
            try:
                st = path.stat()
            except OSError:
                out.append((str(path), *_MISSING))
                continue
            out.append(
                (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            )
        return tuple(out)

    def reload(self) -> ReloadResult:
        """Load and compile the sources now; swap on success, keep the old policy on failure."""
        with self._lock:
            started = time.perf_counter()
            try:
                with _beside_the_hot_path():
                    policy = self._compile()
            except PolicyError as exc:
                error = "policy has errors:\n" + render_human(exc.diagnostics, exc.sources)
                result = self._refused(error, started)
            except (BundleError, NotPolicySource, OSError, UnicodeDecodeError) as exc:
                result = self._refused(f"cannot load policy: {exc}", started)
            except Exception as exc:  # a compiler bug must not take the service down
                log.exception("policy compilation failed unexpectedly")
                result = self._refused(f"cannot compile policy: {type(exc).__name__}", started)
            else:
                self.policy = policy  # the atomic swap
                self.last_error = None
                self.loaded_at = time.time()
                result = ReloadResult(
                    True, policy.fingerprint, policy.rule_count, None, _since(started)
                )
                log.info(
                    "policy loaded: %d rules, fingerprint %s, %.3fs",
                    policy.rule_count,
                    policy.fingerprint[:12],
                    result.seconds,
                )
            # Remember what was tried, good or bad: the watcher retries only on a new change.
            self._signature = self._tried
            # Observed under the lock: two reloads report in the order they happened.
            if self._on_reload is not None:
                self._on_reload(result)
        return result

    def _compile(self) -> CompiledPolicy:
        """The policy compiled from the sources; ``_tried`` is set to the signature of
        what was read, before reading."""
        self._tried = self.signature()
        if self._settings.bundle is not None:
            return load_bundle(self._settings.bundle)
        for _ in range(READ_ATTEMPTS):
            files = policy_files(self._settings.paths)
            if not files:
                raise FileNotFoundError(
                    "no .policy files in " + ", ".join(map(str, self._settings.paths))
                )
            texts = {str(f): read_policy_text(f) for f in files}
            # Unchanged while read: one version of every file (a ConfigMap update swaps
            # them all at once, and reading across the swap would mix two versions).
            after = self.signature()
            if after == self._tried:
                return self._build(texts)
            self._tried = after
        # Nothing was read whole: record no signature, so the next poll sees a change.
        self._tried = ()
        raise OSError("the policy files kept changing while they were read; not loaded")

    def _build(self, texts: dict[str, str]) -> CompiledPolicy:
        # The fingerprint names the exact texts served, so /readyz shows any change.
        digest = hashlib.sha256()
        for name in sorted(texts):
            digest.update(f"{name}\0{texts[name]}\0".encode())
        policy = load_texts(texts, cache=self._parsed).policy
        return compile_policy(policy, fingerprint=digest.hexdigest())

    def _refused(self, error: str, started: float) -> ReloadResult:
        self.last_error = error
        current = self.policy
        log.error(
            "policy refused, %s: %s",
            "keeping the last good policy" if current is not None else "no policy loaded yet",
            error,
        )
        return ReloadResult(
            False,
            current.fingerprint if current else None,
            current.rule_count if current else 0,
            error,
            _since(started),
        )

    def changed(self) -> Signature | None:
        """The sources' signature when it differs from the last load attempt's, else None."""
        now = self.signature()
        return None if now == self._signature else now


# While compiling, the interpreter hands the GIL to a waiting thread after this long
# (instead of the default 5 ms), so a request waits at most about this for a reload.
COMPILE_SWITCH_INTERVAL = 0.0005


@contextlib.contextmanager
def _beside_the_hot_path() -> Iterator[None]:
    """Compile without stalling the serving thread: a short GIL switch interval, and no
    cyclic GC while the new tables are built (each full collection would scan, and pause
    every thread on, the whole heap). Afterwards the surviving objects (the new tables
    among them) are frozen into the permanent generation, so the collector never rescans
    long-lived policy data while serving; refcounting still frees a replaced policy."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, COMPILE_SWITCH_INTERVAL))
    try:
        with paused_gc():
            yield
    finally:
        sys.setswitchinterval(interval)
        gc.freeze()


def _since(started: float) -> float:
    return time.perf_counter() - started


class PolicyWatcher:
    """A daemon thread that reloads when asked (SIGHUP, admin call) or, with ``watch`` on,
    when the source files change; it polls every ``poll_interval_seconds``.

    A change is loaded once it has settled: when two polls in a row find the files the
    same, and different from the last load. A file written in place is briefly empty or
    half written (and an empty file is a valid policy with no rules); a set of files is
    briefly half copied.
    """

    def __init__(self, holder: PolicyHolder, settings: PolicySettings) -> None:
        self._holder = holder
        self._settings = settings
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="policy-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request_reload(self) -> None:
        """Ask for a reload soon (safe from a signal handler)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        interval = self._settings.poll_interval_seconds
        settling: Signature | None = None  # a change seen by the last poll
        while not self._stop.is_set():
            asked = self._wake.wait(interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                if asked:
                    settling = None
                    self._holder.reload()
                elif self._settings.watch:
                    change = self._holder.changed()
                    if change is not None and change == settling:
                        settling = None
                        self._holder.reload()
                    else:
                        settling = change
            except Exception:  # the watcher must outlive any one poll (a folder vanishing)
                log.exception("policy watch poll failed; trying again at the next poll")
