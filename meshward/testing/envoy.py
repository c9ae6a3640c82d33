"""Run a real Envoy for tests and benchmarks.

The binary comes from ``MESHWARD_ENVOY`` (``./dev envoy`` prints it). Envoy runs with
``--disable-hot-restart`` (so several can share a host) and ``--concurrency 1``, its admin
interface on 127.0.0.1 at a port the kernel picks. Every wait is bounded.

Example::

    with Envoy(config, workdir=tmp_path) as envoy:
        port = envoy.listener_port("ingress")     # listeners may bind port 0
        ...
        assert envoy.stats()["http.ingress.downstream_rq_2xx"] > 0
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from .processes import terminate

ENV_VAR = "MESHWARD_ENVOY"


class EnvoyError(RuntimeError):
    """Envoy is missing, failed to start, or its admin interface misbehaved."""


def envoy_binary() -> str:
    """Path of the Envoy binary from ``MESHWARD_ENVOY``; raises :class:`EnvoyError` if unset."""
    path = os.environ.get(ENV_VAR)
    if not path or not os.access(path, os.X_OK):
        raise EnvoyError(f"{ENV_VAR} does not name an executable Envoy (see `./dev envoy`)")
    return path


class Envoy:
    """One Envoy process with the given bootstrap ``config`` (a dict, or YAML/JSON text).

    If a dict config has no ``admin`` section, one on 127.0.0.1 (port chosen by the kernel)
    is added, and a ``node`` (id and cluster) if it has none. Files (config, log, admin
    address) go to ``workdir``.
    """

    def __init__(
        self,
        config: Mapping[str, Any] | str,
        *,
        workdir: Path,
        binary: str | None = None,
        log_level: str = "warning",
        extra_args: Sequence[str] = (),
    ) -> None:
        self.workdir = Path(workdir)
        self.binary = binary or envoy_binary()
        self.log_level = log_level
        self.extra_args = list(extra_args)
        self._config = config
        self._process: subprocess.Popen[bytes] | None = None
        self.admin_url = ""

    @property
    def log_path(self) -> Path:
        """Envoy's log file."""
        return self.workdir / "envoy.log"

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of Envoy's log (for error messages)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def start(self, timeout: float = 30.0) -> Envoy:
        """Start Envoy and wait (at most ``timeout`` seconds) until admin ``/ready`` says LIVE."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        if isinstance(self._config, str):
            config_path = self.workdir / "envoy.yaml"
            config_path.write_text(self._config)
        else:
            config = dict(self._config)
            config.setdefault(
                "admin",
                {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
            )
            # File-based SDS needs a node identity.
            config.setdefault("node", {"id": self.workdir.name, "cluster": "meshward"})
            config_path = self.workdir / "envoy.json"
            config_path.write_text(json.dumps(config, indent=2))
        address_file = self.workdir / "admin-address.txt"
        address_file.unlink(missing_ok=True)
        command = [
            self.binary,
            "--config-path",
            str(config_path),
            "--disable-hot-restart",
            "--concurrency",
            "1",
            "--log-level",
            self.log_level,
            "--log-path",
            str(self.log_path),
            "--admin-address-path",
            str(address_file),
            *self.extra_args,
        ]
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EnvoyError(
                    f"Envoy exited with {self._process.returncode}:\n{self.log_tail()}"
                )
            if not self.admin_url and address_file.is_file():
                address = address_file.read_text().strip()
                if address:
                    self.admin_url = f"http://{address}"
            if self.admin_url and self._ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise EnvoyError(f"Envoy was not ready within {timeout} s:\n{self.log_tail()}")

    def _ready(self) -> bool:
        try:
            return self.admin("/ready", timeout=1.0).strip() == "LIVE"
        except (EnvoyError, OSError):
            return False

    def admin(self, path: str, *, method: str = "GET", timeout: float = 5.0) -> str:
        """Call the admin interface (``path`` such as ``/stats`` or ``/certs``), return the body."""
        if not self.admin_url:
            raise EnvoyError("Envoy is not running")
        request = urllib.request.Request(self.admin_url + path, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return str(response.read().decode())
        except urllib.error.HTTPError as exc:
            raise EnvoyError(f"admin {path} answered {exc.code}") from None

    def stats(self) -> dict[str, int]:
        """Counters and gauges from ``/stats`` (histograms left out)."""
        values: dict[str, int] = {}
        for line in self.admin("/stats").splitlines():
            name, sep, value = line.partition(": ")
            if sep and value.strip().lstrip("-").isdigit():
                values[name] = int(value)
        return values

    def listener_port(self, name: str) -> int:
        """The port a named listener is bound to (useful when the config asked for port 0)."""
        doc = json.loads(self.admin("/listeners?format=json"))
        for listener in doc.get("listener_statuses", []):
            if listener.get("name") == name:
                return int(listener["local_address"]["socket_address"]["port_value"])
        raise EnvoyError(f"no listener named {name!r}")

    def certs(self) -> list[dict[str, Any]]:
        """The certificates Envoy's TLS contexts hold now (admin ``/certs``)."""
        doc = json.loads(self.admin("/certs"))
        return list(doc.get("certificates", []))

    @property
    def pid(self) -> int | None:
        """The Envoy process id while it runs."""
        return None if self._process is None else self._process.pid

    def stop(self, timeout: float = 10.0) -> None:
        """Stop Envoy: SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
        process, self._process = self._process, None
        self.admin_url = ""
        if process is not None:
            terminate(process, timeout)

    def __enter__(self) -> Envoy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
