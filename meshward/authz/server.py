"""``meshward serve``: build the service from settings and run it until stopped.

One process serves HTTP mode (uvicorn, with the admin endpoints) and, when enabled, gRPC
mode on its own port. The first policy loads before the listeners open; a reload is
requested by SIGHUP, by ``POST /admin/reload``, or by a change to the policy files.
"""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass
from typing import Any

import grpc
import uvicorn

from .core import Authorizer
from .decision_log import DecisionLog
from .grpc_server import build_grpc_server
from .holder import PolicyHolder, PolicyWatcher
from .http_app import CheckApp, build_http_app
from .metrics import AuthzMetrics
from .settings import AuthzSettings

log = logging.getLogger("meshward.authz")

# uvicorn, set for a callout only Envoy makes: the C HTTP parser and event loop; no access
# log, no lifespan; no X-Forwarded-* rewriting of the peer address (nothing reads it, and a
# check must not trust it) and no Server or Date header on every answer.
UVICORN_OPTIONS: dict[str, Any] = {
    "access_log": False,
    "lifespan": "off",
    "http": "httptools",
    "loop": "uvloop",
    "proxy_headers": False,
    "server_header": False,
    "date_header": False,
}


@dataclass
class Service:
    """Everything one running service owns."""

    settings: AuthzSettings
    authorizer: Authorizer
    watcher: PolicyWatcher
    app: CheckApp

    def close(self) -> None:
        self.watcher.stop()
        self.authorizer.decision_log.close()


def build_service(settings: AuthzSettings) -> Service:
    """Build the service and load the first policy (a failure leaves it not ready; the
    watcher loads the policy once the files are fixed)."""
    metrics = AuthzMetrics()
    holder = PolicyHolder(settings.policy, on_reload=metrics.reload)
    holder.reload()
    authorizer = Authorizer(settings, holder, metrics, DecisionLog(settings.decision_log))
    authorizer.verifier.load_keys()
    watcher = PolicyWatcher(holder, settings.policy)
    return Service(settings, authorizer, watcher, build_http_app(authorizer))


def run(settings: AuthzSettings) -> int:
    """Serve until SIGINT/SIGTERM; returns the exit code."""
    service = build_service(settings)
    service.watcher.start()
    signal.signal(signal.SIGHUP, lambda signum, frame: service.watcher.request_reload())
    # uvicorn handles SIGTERM/SIGINT itself, then restores these handlers and re-raises the
    # signal after its graceful shutdown: a no-op handler makes that end in a clean exit 0.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: None)
    grpc_server: grpc.Server | None = None
    try:
        if settings.grpc.enabled:
            g = settings.grpc
            grpc_server, port = build_grpc_server(service.authorizer, g.host, g.port, g.workers)
            grpc_server.start()
            log.info("gRPC ext_authz listening on %s:%d", g.host, port)
        config = uvicorn.Config(
            service.app,
            host=settings.http.host,
            port=settings.http.port,
            log_level=settings.log_level,
            **UVICORN_OPTIONS,
        )
        uvicorn.Server(config).run()
    finally:
        if grpc_server is not None:
            grpc_server.stop(grace=2).wait(5)
        service.close()
    return 0
