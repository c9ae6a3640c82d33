"""Run ``meshward serve`` as a real process for tests and benchmarks.

Example::

    with AuthzServer(settings_yaml, workdir=tmp_path) as server:
        urllib.request.urlopen(server.url + "/readyz")

Every wait is bounded; the process is stopped with SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from .processes import terminate

_MAIN = "import sys; from meshward.cli import main; sys.exit(main(sys.argv[1:]))"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AuthzServer:
    """``meshward serve --config <workdir>/authz.yaml``. ``settings`` is the settings
    document; its ``http.port`` (and ``grpc.port`` when gRPC is enabled) are filled with
    free ports unless given."""

    def __init__(
        self,
        settings: dict[str, Any],
        *,
        workdir: Path,
        env: dict[str, str] | None = None,
        wait_ready: bool = True,
    ) -> None:
        self.workdir = Path(workdir)
        self.settings = json.loads(json.dumps(settings, default=str))
        http = self.settings.setdefault("http", {})
        http.setdefault("host", "127.0.0.1")
        http.setdefault("port", free_port())
        grpc = self.settings.setdefault("grpc", {})
        if grpc.get("enabled"):
            grpc.setdefault("host", "127.0.0.1")
            grpc.setdefault("port", free_port())
        self.port: int = http["port"]
        self.grpc_port: int | None = grpc.get("port")
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = env or {}
        self._wait_ready = wait_ready
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "meshward.log"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def start(self, timeout: float = 30.0) -> AuthzServer:
        """Start and wait until the HTTP listener answers (and, unless ``wait_ready`` is
        off, until ``/readyz`` says ready)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "authz.yaml"
        config.write_text(yaml.safe_dump(self.settings))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MESHWARD_AUTHZ_")}
        env.update(self._env)
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-c", _MAIN, "serve", "--config", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"meshward serve exited:\n{self.log_text()[-3000:]}")
            status = self.get_status("/readyz")
            if status is not None and (status == 200 or not self._wait_ready):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"meshward serve not ready in {timeout} s:\n{self.log_text()[-3000:]}")

    def get_status(self, path: str) -> int | None:
        """The HTTP status of GET ``path``, or None when nothing answers."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return None

    def get_json(self, path: str, method: str = "GET") -> tuple[int, Any]:
        """Status and JSON body of a call to the admin surface."""
        request = urllib.request.Request(self.url + path, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return int(response.status), json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), json.loads(exc.read())

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return None if self._process is None else self._process.pid

    def signal(self, signum: int) -> None:
        if self._process is not None:
            self._process.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop with SIGTERM (SIGKILL after ``timeout``); returns the exit code."""
        process, self._process = self._process, None
        return None if process is None else terminate(process, timeout)

    def __enter__(self) -> AuthzServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
