"""meshward behind a real Envoy, both modes: decisions reach (or never reach) the upstream,
the client sees deny status, body and decision headers, Envoy's ext_authz stats agree, a
down meshward makes Envoy deny, and identity comes from a real mTLS handshake."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import ssl
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshward.authz import envoy_config
from meshward.ca.manager import TrustDomainCa
from meshward.ca.sds_files import write_envoy_sds_configs, write_svid_files
from meshward.ca.spiffe_id import SpiffeId
from meshward.ca.store import FileStore
from meshward.cli import main as cli_main
from meshward.testing.authz_server import AuthzServer, free_port
from meshward.testing.envoy import Envoy
from meshward.testing.jwt_issuer import TestIssuer
from meshward.testing.tls import client_context, served_serial
from meshward.testing.upstream import RecordingUpstream

pytestmark = pytest.mark.e2e

TD = "cluster.local"
FRONTEND = f"spiffe://{TD}/ns/default/sa/frontend"
OTHER = f"spiffe://{TD}/ns/default/sa/other"
POLICY = f"""
trust_domain "{TD}"

service app {{
  @id("public")
  allow GET /public/{{**}} from any

  @id("writers")
  allow POST /write from any when jwt.scope contains "write"

  @id("frontend-only")
  allow GET /reviews/{{*}} from "ns/default/sa/frontend"

  @id("no-admin")
  deny * /admin/{{**}}

  @id("partners")
  allow GET /partner/{{*}} from any when request.headers["X-Partner"] == "acme"
}}

service api {{
  @id("api-open")
  allow GET /{{**}} from any
}}
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ext_authz")


@pytest.fixture(scope="module")
def issuer() -> TestIssuer:
    return TestIssuer()


@pytest.fixture(scope="module")
def upstream() -> Iterator[RecordingUpstream]:
    with RecordingUpstream() as app:
        yield app


def _settings(workdir: Path, issuer: TestIssuer, **extra: Any) -> dict[str, Any]:
    policy = workdir / "app.policy"
    policy.write_text(textwrap.dedent(POLICY))
    jwks = issuer.write_jwks(workdir / "jwks.json")
    return {
        "policy": {"paths": [str(policy)]},
        "grpc": {"enabled": True},
        "jwt": {
            "issuers": [
                {"issuer": issuer.issuer, "audiences": [issuer.audience], "jwks_file": str(jwks)}
            ]
        },
        "services": {"api": {"require_jwt": True}},
        "upstream_headers": {"claims": {"sub": "x-meshward-jwt-sub"}},
        "decision_log": {"path": str(workdir / "decisions.jsonl")},
        **extra,
    }


@pytest.fixture(scope="module")
def authz(workdir: Path, issuer: TestIssuer, binary: str) -> Iterator[AuthzServer]:
    with AuthzServer(_settings(workdir, issuer), workdir=workdir / "authz") as server:
        yield server


def _cli_config(*args: str) -> dict[str, Any]:
    """The bootstrap ``meshward envoy-config`` prints, as Envoy will read it."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_main(["envoy-config", *args]) == 0
    return dict(yaml.safe_load(out.getvalue()))


def _envoy_for(
    mode: str,
    upstream_port: int,
    authz_port: int,
    workdir: Path,
    *extra: str,
    destination: str = "app",
) -> Envoy:
    ports = {
        "--listen-port": 0,
        "--admin-port": 0,
        "--upstream-port": upstream_port,
        "--authz-port": authz_port,
    }
    args = [str(x) for item in ports.items() for x in item]
    config = _cli_config("--mode", mode, "--destination", destination, *args, *extra)
    return Envoy(config, workdir=workdir)


def _request(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
    body: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn: http.client.HTTPConnection
    if context is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def _ext_authz_stats(envoy: Envoy) -> dict[str, int]:
    stats = envoy.stats()
    return {k: stats.get(f"http.ingress.ext_authz.{k}", 0) for k in ("ok", "denied", "error")}


@pytest.mark.parametrize("mode", ["http", "grpc"])
def test_decisions_through_envoy(
    mode: str,
    authz: AuthzServer,
    upstream: RecordingUpstream,
    issuer: TestIssuer,
    tmp_path: Path,
) -> None:
    authz_port = authz.port if mode == "http" else authz.grpc_port
    assert authz_port is not None
    with _envoy_for(mode, upstream.port, authz_port, tmp_path / "envoy") as envoy:
        port = envoy.listener_port("ingress")
        seen = len(upstream.received)

        # Allowed: reaches the application, which sees the decision id and no forged
        # identity header.
        status, headers, body = _request(
            port, "GET", "/public/page?q=1", {"x-meshward-principal": FRONTEND}
        )
        assert (status, body) == (200, b"upstream")
        arrived = upstream.received[seen]
        assert arrived.path == "/public/page?q=1"
        assert arrived.headers["x-meshward-decision-id"]
        assert "x-meshward-principal" not in arrived.headers

        # Denied by a rule and by the default: the client sees why, the app sees nothing.
        for path, rule in (("/admin/users", "no-admin"), ("/reviews/1", "meshward:default")):
            status, headers, body = _request(port, "GET", path)
            assert status == 403
            doc = json.loads(body)
            assert doc["rule"] == headers["x-meshward-rule"] == rule
            assert doc["decision_id"] == headers["x-meshward-decision-id"]
        assert len(upstream.received) == seen + 1

        # A verified JWT allows and its subject reaches the app; an expired one never
        # feeds its claims, and the deny says why.
        token = issuer.token({"sub": "alice", "scope": ["write"]})
        auth = {"authorization": f"Bearer {token}"}
        status, _, _ = _request(port, "POST", "/write", auth, body=b'{"a": 1}' * 1000)
        assert status == 200  # a request body is not part of the check and does not hang it
        assert upstream.received[-1].headers["x-meshward-jwt-sub"] == "alice"
        assert "authorization" in upstream.received[-1].headers  # meshward never strips it
        expired = issuer.token({"sub": "alice", "scope": ["write"]}, ttl=-600)
        status, _, body = _request(port, "POST", "/write", {"authorization": f"Bearer {expired}"})
        assert status == 403 and "expired" in json.loads(body)["reason"]

        assert _ext_authz_stats(envoy) == {"ok": 2, "denied": 3, "error": 0}
        assert len(upstream.received) == seen + 2


@pytest.mark.parametrize("mode", ["http", "grpc"])
def test_headers_the_policy_reads_reach_meshward(
    mode: str, authz: AuthzServer, upstream: RecordingUpstream, workdir: Path, tmp_path: Path
) -> None:
    # HTTP mode sends meshward only the client headers it is told to: `--policy` lists
    # those the rules read. gRPC mode sends every header.
    authz_port = authz.port if mode == "http" else authz.grpc_port
    assert authz_port is not None
    told = ("--policy", str(workdir / "app.policy"))
    with _envoy_for(mode, upstream.port, authz_port, tmp_path / "envoy", *told) as envoy:
        port = envoy.listener_port("ingress")
        assert _request(port, "GET", "/partner/1", {"x-partner": "acme"})[0] == 200
        status, headers, _ = _request(port, "GET", "/partner/1", {"x-partner": "other"})
        assert (status, headers["x-meshward-rule"]) == (403, "meshward:default")
    if mode == "http":  # not told: the header never reaches meshward, and the allow fails
        with _envoy_for(mode, upstream.port, authz_port, tmp_path / "untold") as envoy:
            port = envoy.listener_port("ingress")
            assert _request(port, "GET", "/partner/1", {"x-partner": "acme"})[0] == 403


@pytest.mark.parametrize("mode", ["http", "grpc"])
def test_required_jwt_is_401_through_envoy(
    mode: str,
    authz: AuthzServer,
    upstream: RecordingUpstream,
    issuer: TestIssuer,
    tmp_path: Path,
) -> None:
    authz_port = authz.port if mode == "http" else authz.grpc_port
    assert authz_port is not None
    envoy = _envoy_for(mode, upstream.port, authz_port, tmp_path / "envoy", destination="api")
    with envoy:
        port = envoy.listener_port("ingress")
        status, headers, body = _request(port, "GET", "/data")
        assert status == 401 and headers["www-authenticate"] == "Bearer"
        assert json.loads(body)["rule"] == "meshward:jwt-required"
        bad = issuer.token({"aud": "someone-else"})
        status, _, body = _request(port, "GET", "/data", {"authorization": f"Bearer {bad}"})
        assert status == 401 and "wrong_audience" in json.loads(body)["reason"]
        good = issuer.token({"sub": "bob"})
        status, _, _ = _request(port, "GET", "/data", {"authorization": f"Bearer {good}"})
        assert status == 200 and upstream.received[-1].headers["x-meshward-jwt-sub"] == "bob"


@pytest.mark.parametrize("mode", ["http", "grpc"])
def test_destination_and_port_come_from_envoy_not_the_client(
    mode: str, upstream: RecordingUpstream, binary: str, tmp_path: Path
) -> None:
    # Rules bound to the port Envoy listens on must hold whatever Host port the client
    # writes, and a client-sent destination (or port) header must not pick the policy.
    listen = free_port()
    policy = tmp_path / "ports.policy"
    policy.write_text(
        'service app { @id("open") allow * /{**} from any }\n'
        f'service app:{listen} {{ @id("port-bound") deny * /admin/{{**}} }}\n'
        'service api { @id("api-open") allow * /{**} from any }\n'
    )
    settings = {"policy": {"paths": [str(policy)]}, "grpc": {"enabled": True}}
    with AuthzServer(settings, workdir=tmp_path / "authz") as server:
        authz_port = server.port if mode == "http" else server.grpc_port
        assert authz_port is not None
        envoy = _envoy_for(
            mode, upstream.port, authz_port, tmp_path / "envoy", "--listen-port", str(listen)
        )
        with envoy:
            spoofs: list[dict[str, str]] = [
                {},
                {"host": "app:1"},
                {"host": "app"},
                {"x-meshward-destination": "api", "x-meshward-destination-port": "1"},
            ]
            for headers in spoofs:
                status, seen, _ = _request(listen, "GET", "/admin/x", headers)
                assert (status, seen.get("x-meshward-rule")) == (403, "port-bound"), headers
            status, _, _ = _request(listen, "GET", "/public/x", {"host": "app:1"})
            assert status == 200


@pytest.mark.parametrize("mode", ["http", "grpc"])
def test_meshward_down_means_deny(
    mode: str, upstream: RecordingUpstream, binary: str, tmp_path: Path
) -> None:
    dead = free_port()  # nothing listens here
    with _envoy_for(mode, upstream.port, dead, tmp_path / "envoy") as envoy:
        port = envoy.listener_port("ingress")
        seen = len(upstream.received)
        for _ in range(3):
            status, _, _ = _request(port, "GET", "/public/page")
            assert status == 403
        assert len(upstream.received) == seen
        stats = _ext_authz_stats(envoy)
        assert stats["ok"] == 0 and stats["error"] == 3


def test_decision_log_through_envoy_holds_no_token(authz: AuthzServer, workdir: Path) -> None:
    log = workdir / "decisions.jsonl"
    deadline = time.monotonic() + 10  # lines are flushed about once a second
    while time.monotonic() < deadline and '"rule":"writers"' not in log.read_text():
        time.sleep(0.1)
    text = log.read_text()
    assert '"rule":"writers"' in text  # the JWT-authorised request was logged
    assert "Bearer" not in text and "eyJ" not in text


def test_istio_snippet_parses() -> None:
    for mode in ("http", "grpc"):
        doc = yaml.safe_load(envoy_config.istio_snippet(mode))
        [provider] = doc["meshConfig"]["extensionProviders"]
        assert provider["name"] == f"meshward-{mode}"


# --- identity from a real mTLS handshake -------------------------------------------------


@pytest.fixture(scope="module")
def svids(workdir: Path) -> dict[str, Path]:
    """Certificate directories (cert.pem, key.pem, bundle.pem) issued by meshward's CA."""
    ca = TrustDomainCa.init(FileStore(workdir / "ca"), TD)
    out = {}
    for name, spiffe_id in (
        ("frontend", FRONTEND),
        ("other", OTHER),
        ("backend", f"spiffe://{TD}/ns/default/sa/backend"),
    ):
        directory = workdir / "svid" / name
        directory.mkdir(parents=True)
        write_svid_files(directory, ca.issue_x509(SpiffeId.parse(spiffe_id)), ca.bundle())
        write_envoy_sds_configs(directory)
        out[name] = directory
    return out


def _frontend_config(backend_port: int, svid: Path) -> dict[str, Any]:
    """A client-side Envoy: plain HTTP in, mTLS with the frontend's SVID out."""
    return {
        "static_resources": {
            "listeners": [
                {
                    "name": "egress",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": {
                                        "@type": envoy_config.HCM,
                                        "stat_prefix": "egress",
                                        "route_config": {
                                            "virtual_hosts": [
                                                {
                                                    "name": "all",
                                                    "domains": ["*"],
                                                    "routes": [
                                                        {
                                                            "match": {"prefix": "/"},
                                                            "route": {"cluster": "backend"},
                                                        }
                                                    ],
                                                }
                                            ]
                                        },
                                        "http_filters": [
                                            {
                                                "name": "envoy.filters.http.router",
                                                "typed_config": {"@type": envoy_config.ROUTER},
                                            }
                                        ],
                                    },
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    **envoy_config.static_cluster("backend", "127.0.0.1", backend_port),
                    "transport_socket": envoy_config.tls_context(svid, downstream=False),
                }
            ],
        }
    }


@pytest.mark.parametrize("identity", ["header", "xfcc"])
def test_identity_from_mtls_handshake(
    identity: str,
    svids: dict[str, Path],
    upstream: RecordingUpstream,
    issuer: TestIssuer,
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path, issuer, identity={"mode": identity})
    with AuthzServer(settings, workdir=tmp_path / "authz") as authz:
        backend = _envoy_for(
            "http",
            upstream.port,
            authz.port,
            tmp_path / "backend",
            "--tls-dir",
            str(svids["backend"]),
        )
        with backend:
            backend_port = backend.listener_port("ingress")
            with Envoy(
                _frontend_config(backend_port, svids["frontend"]), workdir=tmp_path / "frontend"
            ) as frontend:
                front_port = frontend.listener_port("egress")
                seen = len(upstream.received)
                status, _, _ = _request(front_port, "GET", "/reviews/7")
                assert status == 200
                arrived = upstream.received[seen]
                assert arrived.headers["x-meshward-principal"] == FRONTEND
                assert f"URI={FRONTEND}" in arrived.headers["x-forwarded-client-cert"]

            # Another workload cannot claim to be the frontend: Envoy overwrites the peer
            # header from the handshake and replaces any XFCC the client sent.
            forged = {
                "x-meshward-peer-uri-san": FRONTEND,
                "x-forwarded-client-cert": f"URI={FRONTEND}",
            }
            other = client_context(svids["other"])
            status, headers, _ = _request(backend_port, "GET", "/reviews/7", forged, other)
            assert status == 403 and headers["x-meshward-rule"] == "meshward:default"
            status, _, _ = _request(backend_port, "GET", "/public/x", forged, other)
            assert status == 200
            assert upstream.received[-1].headers["x-meshward-principal"] == OTHER
            # Nor does the forged header reach the application.
            assert "x-meshward-peer-uri-san" not in upstream.received[-1].headers
            assert backend.stats()["http.ingress.ext_authz.denied"] == 1


def test_a_renewed_certificate_is_served_without_a_restart(
    upstream: RecordingUpstream, tmp_path: Path
) -> None:
    # `envoy-config --tls-dir` reads the SVID through file-based SDS (writing the two SDS
    # documents, as none are there): when a renewal swaps `..data`, the next handshake
    # gets the new certificate. Read as plain files, the first one would be served until
    # it expired.
    ca = TrustDomainCa.init(FileStore(tmp_path / "ca"), TD)
    backend_id = SpiffeId.parse(f"spiffe://{TD}/ns/default/sa/backend")
    served, client = tmp_path / "svid", tmp_path / "client"
    served.mkdir()
    client.mkdir()
    write_svid_files(served, ca.issue_x509(backend_id), ca.bundle())
    write_svid_files(client, ca.issue_x509(SpiffeId.parse(FRONTEND)), ca.bundle())
    tls = ("--tls-dir", str(served))
    with _envoy_for("http", upstream.port, free_port(), tmp_path / "envoy", *tls) as backend:
        port = backend.listener_port("ingress")
        first = served_serial(port, client)
        renewed = ca.issue_x509(backend_id)
        write_svid_files(served, renewed, ca.bundle())
        deadline = time.monotonic() + 20
        while served_serial(port, client) == first and time.monotonic() < deadline:
            time.sleep(0.1)
        assert served_serial(port, client) == renewed.leaf.serial_number != first


@pytest.mark.parametrize("mode", ["http", "grpc"])
def test_the_workload_identity_names_the_destination(
    mode: str,
    svids: dict[str, Path],
    upstream: RecordingUpstream,
    issuer: TestIssuer,
    tmp_path: Path,
) -> None:
    # A mesh-wide provider (Istio's) cannot name each workload's service: meshward maps
    # the SPIFFE ID of the certificate the workload serves, which Envoy reports.
    backend_id = f"spiffe://{TD}/ns/default/sa/backend"
    settings = _settings(tmp_path, issuer, destination={"principals": {backend_id: "app"}})
    with AuthzServer(settings, workdir=tmp_path / "authz") as authz:
        authz_port = authz.port if mode == "http" else authz.grpc_port
        assert authz_port is not None
        tls = ("--tls-dir", str(svids["backend"]))
        backend = _envoy_for(mode, upstream.port, authz_port, tmp_path / "b", *tls, destination="")
        with backend:
            config = _frontend_config(backend.listener_port("ingress"), svids["frontend"])
            with Envoy(config, workdir=tmp_path / "frontend") as frontend:
                port = frontend.listener_port("egress")
                assert _request(port, "GET", "/public/x")[0] == 200
                status, headers, _ = _request(port, "GET", "/admin/x", {"host": "api"})
                assert (status, headers["x-meshward-rule"]) == (403, "no-admin")
