"""``meshward serve`` as a real process: readiness, SIGHUP and file-watch reloads, a bad
policy refused while the last good one serves, gRPC on its own port, clean shutdown."""

from __future__ import annotations

import signal
import urllib.request
from pathlib import Path

import grpc
from envoy.service.auth.v3 import attribute_context_pb2 as ac
from envoy.service.auth.v3 import external_auth_pb2 as pb
from envoy.service.auth.v3 import external_auth_pb2_grpc as pb_grpc
from google.rpc import code_pb2

from meshward.testing.authz_server import AuthzServer
from meshward.testing.waiting import eventually

ONE = 'service app {\n  @id("one")\n  allow GET /one from any\n}\n'
TWO = 'service app {\n  @id("two")\n  allow GET /two from any\n}\n'
BROKEN = "service app {\n  allow GET /two frm any\n}\n"


def _check(server: AuthzServer, path: str) -> int:
    request = urllib.request.Request(
        f"{server.url}/check{path}", headers={"x-meshward-destination": "app"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_serve_reloads_on_sighup_and_refuses_bad_policy(tmp_path: Path) -> None:
    policy = tmp_path / "app.policy"
    policy.write_text(ONE)
    settings = {"policy": {"paths": [str(policy)], "watch": False}}
    server = AuthzServer(settings, workdir=tmp_path / "run")
    with server:
        assert _check(server, "/one") == 200
        status, ready = server.get_json("/readyz")
        first = ready["policy"]["fingerprint"]
        policy.write_text(TWO)
        server.signal(signal.SIGHUP)
        assert eventually(lambda: server.get_json("/readyz")[1]["policy"]["fingerprint"] != first)
        assert (_check(server, "/one"), _check(server, "/two")) == (403, 200)

        policy.write_text(BROKEN)
        server.signal(signal.SIGHUP)
        assert eventually(lambda: server.get_json("/readyz")[1]["last_error"] is not None)
        status, ready = server.get_json("/readyz")
        assert status == 200 and "app.policy:2" in ready["last_error"]
        assert _check(server, "/two") == 200
        assert server.stop() == 0
    assert "policy refused" in server.log_text()


def test_serve_watches_files_and_waits_for_a_first_policy(tmp_path: Path) -> None:
    policy = tmp_path / "app.policy"
    policy.write_text(BROKEN)
    settings = {"policy": {"paths": [str(tmp_path)], "poll_interval_seconds": 0.2}}
    with AuthzServer(settings, workdir=tmp_path / "run", wait_ready=False) as server:
        assert server.get_status("/readyz") == 503
        assert server.get_status("/healthz") == 200
        assert _check(server, "/one") == 403
        policy.write_text(ONE)
        assert eventually(lambda: server.get_status("/readyz") == 200)
        assert _check(server, "/one") == 200


def test_serve_grpc_mode_on_its_own_port(tmp_path: Path) -> None:
    policy = tmp_path / "app.policy"
    policy.write_text(ONE)
    settings = {"policy": {"paths": [str(policy)]}, "grpc": {"enabled": True}}
    with AuthzServer(settings, workdir=tmp_path / "run") as server:
        assert server.grpc_port is not None and server.grpc_port != server.port
        http = ac.AttributeContext.HttpRequest(method="GET", path="/one", host="x")
        attrs = ac.AttributeContext(
            request=ac.AttributeContext.Request(http=http),
            context_extensions={"destination": "app"},
        )
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = pb_grpc.AuthorizationStub(channel)
            response = stub.Check(pb.CheckRequest(attributes=attrs), timeout=10)
        assert response.status.code == code_pb2.OK
