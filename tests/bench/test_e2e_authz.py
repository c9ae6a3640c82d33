"""The ext_authz benchmark's own parts: its always-allow gRPC ceilings answer OK on every
stack, and its CPU accounting counts a server's children (pyvoy runs Envoy as one).

Correctness only; nothing here measures time. The pyvoy round trip runs where pyvoy is
installed (``MESHWARD_PYVOY``, as ``./dev bench`` sets it); its ASGI app is tested
everywhere, and through uvicorn's HTTP/2 with a real gRPC client.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2 as pb
from envoy.service.auth.v3 import external_auth_pb2_grpc as pb_grpc
from google.rpc import code_pb2

from bench import e2e_authz
from meshward.testing.processes import terminate

CHECK = pb.CheckRequest()
CHECK.attributes.request.http.method = "GET"
CHECK.attributes.request.http.path = "/orders"


@pytest.mark.parametrize("kind", ["grpc-sync", "grpc-aio", "grpc-grpclib", "grpc-uvicorn-h2"])
def test_grpc_ceilings_allow(kind: str, tmp_path: Path) -> None:
    with (
        e2e_authz.allow_server(kind, tmp_path) as (port, _pid),
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        response = pb_grpc.AuthorizationStub(channel).Check(CHECK, timeout=10)
    assert response.status.code == code_pb2.OK


@pytest.mark.skipif(not os.environ.get("MESHWARD_PYVOY"), reason="pyvoy is not installed")
def test_pyvoy_ceiling_allows(tmp_path: Path) -> None:
    with (
        e2e_authz.pyvoy_allow_server(tmp_path) as (port, _pid),
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        response = pb_grpc.AuthorizationStub(channel).Check(CHECK, timeout=10)
    assert response.status.code == code_pb2.OK


def test_asgi_grpc_app_answers_one_framed_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    ok = e2e_authz.allow_response().SerializeToString()
    for name, value in e2e_authz.asgi_grpc_env().items():
        monkeypatch.setenv(name, value)
    module = importlib.reload(importlib.import_module("bench.asgi_grpc_allow"))
    request = CHECK.SerializeToString()
    frame = b"\x00" + len(request).to_bytes(4, "big") + request
    chunks = [frame[:3], frame[3:]]  # the app must read the whole body, in any chunks
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        body = chunks.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(module.app({"type": "http"}, receive, send))
    assert not chunks
    start, body, trailers = sent
    assert start["status"] == 200 and start["trailers"] is True
    assert (b"content-type", b"application/grpc") in start["headers"]
    payload = body["body"]
    assert payload[0] == 0 and int.from_bytes(payload[1:5], "big") == len(payload) - 5
    assert payload[5:] == ok
    assert trailers["headers"] == [(b"grpc-status", b"0")]


def test_cpu_seconds_counts_live_children(tmp_path: Path) -> None:
    child = (
        "import time\nt = time.process_time()\n"
        "while time.process_time() - t < 0.5: pass\ntime.sleep(30)"
    )
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}])"
    with e2e_authz._process([sys.executable, "-c", parent], tmp_path / "log") as process:
        deadline = time.monotonic() + 20
        used = 0.0
        while time.monotonic() < deadline and used < 0.3:
            used = e2e_authz.cpu_seconds(process.pid) or 0.0
            time.sleep(0.05)
        # The child burns 0.5 s; /proc counts in clock ticks, so allow for rounding. The
        # parent alone only starts Python and waits.
        assert used >= 0.3
    assert not _running_in_group(process.pid)  # stopping the parent stopped its child


def test_terminate_group_leaves_no_straggler(tmp_path: Path) -> None:
    # The parent exits on SIGTERM; its child ignores SIGTERM, so only a group SIGKILL
    # after the parent is gone stops it.
    child = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    parent = (
        f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {child!r}]); "
        "time.sleep(60)"
    )
    with e2e_authz._process([sys.executable, "-c", parent], tmp_path / "log") as process:
        time.sleep(0.5)  # the child is up
    assert process.returncode is not None
    assert not _running_in_group(process.pid)
    terminate(process, 5, group=True)  # idempotent once the group is gone


def _running_in_group(group: int) -> list[int]:
    """Processes of a process group still running (killed ones may linger as zombies
    until whoever adopted them reaps them)."""
    deadline = time.monotonic() + 5  # a SIGKILL takes effect asynchronously
    while True:
        running = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
            except (OSError, ValueError):
                continue  # gone meanwhile
            if int(pgrp) == group and state != "Z":
                running.append(int(stat.parent.name))
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.05)


def _row(name: str, rps: float, error: int = 0) -> e2e_authz.Row:
    row = e2e_authz.Row(name, envoy=None)  # type: ignore[arg-type]  # the verdict reads no Envoy
    row.rps_runs = [rps]
    row.ext_authz = {"ok": 1000 - error, "denied": 0, "error": error}
    return row


def test_a_stack_that_fails_checks_is_never_the_fastest() -> None:
    sync = _row("sync", 5000)
    stacks = [("grpcio sync", sync), ("pyvoy", _row("p", 14000)), ("h2", _row("h", 17000, 5))]
    verdict = e2e_authz.stacks_verdict(stacks, sync)
    assert verdict == (
        "fastest: pyvoy, 2.80× grpcio sync; h2 (3.40× grpcio sync) failed 0.50% of checks"
    )
    assert e2e_authz.stacks_verdict(stacks[:1], sync) == (
        "grpcio sync, meshward's stack, is the fastest"
    )
    # grpcio sync is the yardstick even when it erred itself (its row says so apart).
    failing_sync = _row("sync", 5000, 1)
    verdict = e2e_authz.stacks_verdict(
        [("grpcio sync", failing_sync), ("h2", _row("h", 17000, 5))], failing_sync
    )
    assert verdict == (
        "grpcio sync, meshward's stack, is the fastest; "
        "h2 (3.40× grpcio sync) failed 0.50% of checks"
    )


@pytest.mark.e2e
def test_envoys_rbac_filter_enforces_the_workload_as_meshward_does(tmp_path: Path) -> None:
    # The RBAC row is the same rules, translated: through a real Envoy it must decide
    # every request of the corpus as the naive scan does (JWT claims verified by
    # jwt_authn, callers read from XFCC, paths by template), with allows and denies both.
    from meshward.testing.envoy import Envoy

    corpus = e2e_authz.build_corpus(300, 400, tmp_path)
    rbac = e2e_authz.rbac_filters(corpus.mesh, corpus.issuer)
    config = e2e_authz.envoy_variant("rbac", None, rbac)
    with Envoy(config, workdir=tmp_path / "envoy") as envoy:
        got = e2e_authz.decisions_through(envoy.listener_port("ingress"), corpus)
    assert got == corpus.expected
    assert 0.2 < sum(corpus.expected) / len(corpus.expected) < 0.8
