"""Stopping the child processes the harnesses start."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess


def terminate(process: subprocess.Popen[bytes], timeout: float, group: bool = False) -> int | None:
    """SIGTERM, then SIGKILL if the process has not exited within ``timeout`` seconds;
    returns its exit code. With ``group`` (a process that leads a process group of its own),
    the signals go to its whole process group, and whatever of the group outlives the
    leader is killed too: a launcher's children must not outlive it."""

    def send(sig: signal.Signals) -> None:
        if group:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
        elif process.poll() is None:
            process.send_signal(sig)

    if process.poll() is None or group:
        send(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            send(signal.SIGKILL)
            process.wait(timeout)
        if group:
            send(signal.SIGKILL)
    return process.returncode
