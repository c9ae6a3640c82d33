"""Two real Envoys talk mTLS with meshward's SVID files while workload certificates, the
intermediate and the root rotate under traffic."""

from __future__ import annotations

import http.server
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cryptography import x509

from meshward.ca.manager import TrustDomainCa
from meshward.ca.rotation import RenewalPolicy, Rotator, Workload
from meshward.ca.sds_files import (
    CERT_FILE,
    SDS_BUNDLE_CONFIG,
    SDS_CERT_CONFIG,
    write_envoy_sds_configs,
)
from meshward.ca.spiffe_id import SpiffeId
from meshward.ca.store import FileStore
from meshward.testing.envoy import Envoy
from meshward.testing.tls import served_serial

pytestmark = pytest.mark.e2e

TD = "example.org"
FRONTEND = SpiffeId.parse(f"spiffe://{TD}/ns/default/sa/frontend")
BACKEND = SpiffeId.parse(f"spiffe://{TD}/ns/default/sa/backend")
TLS = "envoy.transport_sockets.tls"
TLS_NS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3"
HCM = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
    "HttpConnectionManager"
)
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
HTTP_OPTIONS = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def _address(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


def _cluster(name: str, port: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "2s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _address(port)}}]}],
        },
        **extra,
    }


def _common_tls(directory: Path, peer: SpiffeId) -> dict[str, Any]:
    """Own SVID and trust bundle from meshward's files (file-based SDS), peer pinned by URI."""

    def sds(path: str) -> dict[str, Any]:
        return {"path_config_source": {"path": path}, "resource_api_version": "V3"}

    return {
        "tls_certificate_sds_secret_configs": [
            {"name": "spiffe_svid", "sds_config": sds(str(directory / SDS_CERT_CONFIG))}
        ],
        "combined_validation_context": {
            "default_validation_context": {
                "match_typed_subject_alt_names": [
                    {"san_type": "URI", "matcher": {"exact": str(peer)}}
                ]
            },
            "validation_context_sds_secret_config": {
                "name": "spiffe_bundle",
                "sds_config": sds(str(directory / SDS_BUNDLE_CONFIG)),
            },
        },
    }


def _hcm(prefix: str, cluster: str, headers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": HCM,
            "stat_prefix": prefix,
            "route_config": {
                "request_headers_to_add": headers,
                "virtual_hosts": [
                    {
                        "name": "all",
                        "domains": ["*"],
                        "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster}}],
                    }
                ],
            },
            "http_filters": [
                {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}
            ],
        },
    }


def backend_config(directory: Path, app_port: int) -> dict[str, Any]:
    """mTLS listener for the backend workload; tells the app which client cert it saw."""
    peer_serial = {"header": {"key": "x-peer-serial", "value": "%DOWNSTREAM_PEER_SERIAL%"}}
    tls = {
        "name": TLS,
        "typed_config": {
            "@type": f"{TLS_NS}.DownstreamTlsContext",
            "require_client_certificate": True,
            "common_tls_context": _common_tls(directory, FRONTEND),
        },
    }
    return {
        "static_resources": {
            "listeners": [
                {
                    "name": "mtls_in",
                    "address": _address(0),
                    "filter_chains": [
                        {"transport_socket": tls, "filters": [_hcm("in", "app", [peer_serial])]}
                    ],
                }
            ],
            "clusters": [_cluster("app", app_port)],
        }
    }


def frontend_config(directory: Path, backend_port: int) -> dict[str, Any]:
    """Plain HTTP in, mTLS to the backend; one request per connection, so every request is
    a new handshake with whatever certificates are current."""
    tls = {
        "name": TLS,
        "typed_config": {
            "@type": f"{TLS_NS}.UpstreamTlsContext",
            "common_tls_context": _common_tls(directory, BACKEND),
        },
    }
    options = {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": HTTP_OPTIONS,
            "common_http_protocol_options": {"max_requests_per_connection": 1},
            "explicit_http_config": {"http_protocol_options": {}},
        }
    }
    return {
        "static_resources": {
            "listeners": [
                {
                    "name": "plain_in",
                    "address": _address(0),
                    "filter_chains": [{"filters": [_hcm("out", "backend", [])]}],
                }
            ],
            "clusters": [
                _cluster(
                    "backend",
                    backend_port,
                    transport_socket=tls,
                    typed_extension_protocol_options=options,
                )
            ],
        }
    }


class App(http.server.BaseHTTPRequestHandler):
    """The backend application: records the client serial the backend Envoy saw."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        App.seen.append(self.headers.get("x-peer-serial", ""))
        body = b"ok"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def app_port() -> Iterator[int]:
    App.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), App)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _serial(directory: Path) -> int:
    return x509.load_pem_x509_certificate((directory / CERT_FILE).read_bytes()).serial_number


def _norm(serial: str) -> str:
    return serial.lower().lstrip("0")


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _envoy_holds(envoy: Envoy, serial: int) -> bool:
    wanted = format(serial, "x")
    for context in envoy.certs():
        for cert in context.get("cert_chain", []) + context.get("ca_cert", []):
            if _norm(cert.get("serial_number", "")) == wanted:
                return True
    return False


class Traffic:
    """A request loop through the frontend Envoy, counting every failure; it runs until
    stopped, and at most ``limit`` requests."""

    def __init__(self, port: int, limit: int, pause: float) -> None:
        self.url = f"http://127.0.0.1:{port}/hello"
        self.limit, self.pause = limit, pause
        self.done = 0
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while self.done < self.limit and not self.stop.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    if response.status != 200:
                        self.failures.append(f"status {response.status}")
            except (urllib.error.URLError, OSError) as exc:
                self.failures.append(repr(exc))
            self.done += 1
            time.sleep(self.pause)


def test_mtls_survives_workload_intermediate_and_root_rotation(
    tmp_path: Path, binary: str, app_port: int
) -> None:
    ca = TrustDomainCa.init(FileStore(tmp_path / "ca"), TD)
    front_dir, back_dir = tmp_path / "frontend", tmp_path / "backend"
    workloads = [Workload(FRONTEND, front_dir), Workload(BACKEND, back_dir)]
    rotator = Rotator(ca, workloads, RenewalPolicy())
    assert len(rotator.run_once().renewed) == 2
    for directory in (front_dir, back_dir):
        write_envoy_sds_configs(directory)

    backend = Envoy(backend_config(back_dir, app_port), workdir=tmp_path / "envoy-b", binary=binary)
    with backend:
        back_port = backend.listener_port("mtls_in")
        frontend = Envoy(
            frontend_config(front_dir, back_port), workdir=tmp_path / "envoy-f", binary=binary
        )
        with frontend:
            traffic = Traffic(frontend.listener_port("plain_in"), limit=5_000, pause=0.02)
            traffic.thread.start()
            _wait_until(lambda: traffic.done >= 40, "first requests")

            def rotate_and_check(step: str) -> None:
                before = traffic.done
                new_front, new_back = _serial(front_dir), _serial(back_dir)
                _wait_until(
                    lambda: _envoy_holds(frontend, new_front) and _envoy_holds(backend, new_back),
                    f"Envoys to load the certificates of {step}",
                )
                _wait_until(lambda: traffic.done >= before + 30, f"traffic after {step}")
                assert _norm(App.seen[-1]) == format(new_front, "x"), step
                assert served_serial(back_port, front_dir) == new_back, step

            # 1. workload certificates renewed, same CA
            old = _serial(front_dir)
            assert len(rotator.run_once(force=True).renewed) == 2
            assert _serial(front_dir) != old
            rotate_and_check("workload renewal")

            # 2. the intermediate: prepare, activate; workloads move to the new one
            ca.prepare()
            ca.activate()
            assert len(rotator.run_once().renewed) == 2
            rotate_and_check("intermediate rotation")

            # 3. the root: the new root reaches every bundle before it signs anything
            ca.prepare(root=True)
            assert len(rotator.run_once().renewed) == 2  # bundle changed: both roots
            rotate_and_check("new root published")
            ca.activate()
            assert len(rotator.run_once().renewed) == 2
            rotate_and_check("root rotation")

            traffic.stop.set()
            traffic.thread.join(timeout=60)
            assert not traffic.thread.is_alive()
            assert traffic.done >= 160  # 40 before, and 30 after each of the four steps
            assert traffic.failures == []
            assert frontend.stats()["cluster.backend.upstream_rq_2xx"] == traffic.done
            handshakes = sum(
                value
                for name, value in backend.stats().items()
                if name.startswith("listener.") and name.endswith(".ssl.handshake")
            )
            assert handshakes >= traffic.done  # one connection per request


def test_the_envoy_configs_in_the_docs_are_valid(tmp_path: Path, binary: str) -> None:
    """docs/ca.md's two Envoy configs, pointed at real meshward files, pass `--mode validate`."""
    docs = Path(__file__).parents[2] / "docs" / "ca.md"
    blocks = re.findall(r"```yaml\n(.*?)```", docs.read_text(), re.DOTALL)
    assert len(blocks) == 2
    ca = TrustDomainCa.init(FileStore(tmp_path / "ca"), TD)
    workloads = [Workload(FRONTEND, tmp_path / "frontend"), Workload(BACKEND, tmp_path / "backend")]
    Rotator(ca, workloads).run_once()
    for workload in workloads:
        write_envoy_sds_configs(workload.directory)
    for i, block in enumerate(blocks):
        config = tmp_path / f"envoy{i}.yaml"
        text = block.replace("/run/meshward", str(tmp_path))
        config.write_text(text.replace("backend.internal", "127.0.0.1"))
        result = subprocess.run(
            [binary, "--mode", "validate", "-c", str(config), "--disable-hot-restart"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
