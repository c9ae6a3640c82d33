"""HTTP mode: the ext_authz check as a bare ASGI callable, in front of the admin app.

The check path pays no framework cost: it reads the ASGI scope, asks the
:class:`Authorizer` and sends two messages. Every other path goes to the FastAPI app of
``admin_app`` (``/healthz``, ``/readyz``, ``/metrics``, ``POST /admin/reload``). Envoy's
HTTP ext_authz sends the client's method and path under ``check_prefix``; only a 200
allows. This module is part of the compiled hot path (setup.py); FastAPI, which reads
its routes' signatures, stays in a module of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .admin_app import admin_app
from .core import Authorizer, CheckInput, Outcome
from .identity import identity_reader

log = logging.getLogger("meshward.authz.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

AUTH_HEADERS_TO_REMOVE = b"x-envoy-auth-headers-to-remove"
_FAILSAFE_BODY = (
    b'{"decision":"deny","reason":"denied: internal error","rule":"meshward:internal-error"}'
)


class CheckApp:
    """The ASGI entry point: checks under ``prefix``, everything else to ``admin``."""

    def __init__(self, authorizer: Authorizer, admin: ASGIApp) -> None:
        settings = authorizer.settings
        self._authorizer = authorizer
        self._admin = admin
        self._prefix = settings.http.check_prefix.encode()
        self._prefix_slash = self._prefix + b"/"
        self._identity = identity_reader(settings.identity)
        self._destinations = authorizer.destinations
        self._source_ip_header = settings.identity.source_ip_header
        self._failsafe_status = settings.default_deny_status

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # bytes(): compiled, a bytearray here would fail the annotation outside the
            # check's try, and the server would answer 500 instead of a deny.
            raw = bytes(scope.get("raw_path") or scope["path"].encode())
            if raw.startswith(self._prefix_slash) or raw == self._prefix:
                await self._check(scope, raw, send)
                return
        await self._admin(scope, receive, send)

    async def _check(self, scope: Scope, raw: bytes, send: Send) -> None:
        try:
            outcome = self._authorizer.check(self._input(scope, raw), "http")
            start, body = _response(outcome)
        except Exception:  # fail closed: a deny, never a 5xx (Envoy would drop the reason)
            log.exception("internal error in the HTTP check path")
            start = {
                "type": "http.response.start",
                "status": self._failsafe_status,
                "headers": [(b"content-type", b"application/json")],
            }
            body = _FAILSAFE_BODY
        await send(start)
        await send({"type": "http.response.body", "body": body})

    def _input(self, scope: Scope, raw: bytes) -> CheckInput:
        raw_headers = scope["headers"]
        # ASGI servers give lower-case names.
        headers = {n.decode("latin-1"): v.decode("latin-1") for n, v in raw_headers}
        if len(headers) != len(raw_headers):
            # A repeated header is joined the HTTP way; a repeated identity header then is
            # not a valid SPIFFE ID, so it gives no identity.
            headers = {}
            for name, value in raw_headers:
                key, text = name.decode("latin-1").lower(), value.decode("latin-1")
                headers[key] = headers[key] + "," + text if key in headers else text
        path = raw[len(self._prefix) :].decode("latin-1")
        query: bytes = scope.get("query_string", b"")
        if query:
            path += "?" + query.decode("latin-1")
        source_ip = headers.get(self._source_ip_header) if self._source_ip_header else None
        host = headers.get("host")
        destinations = self._destinations
        return CheckInput(
            scope["method"].upper(),  # as in gRPC mode (httptools refuses `delete` today)
            path,
            host,
            headers,
            self._identity(headers),
            source_ip,
            destinations.from_headers(headers),
            destinations.port_from_headers(headers, host),
        )


def _response(outcome: Outcome) -> tuple[Message, bytes]:
    if outcome.allowed:
        headers = [(k.encode(), v.encode()) for k, v in outcome.upstream_headers]
        if outcome.remove_headers:
            headers.append((AUTH_HEADERS_TO_REMOVE, ",".join(outcome.remove_headers).encode()))
        body = b""
    else:
        headers = [(k.encode(), v.encode()) for k, v in outcome.deny_headers]
        body = outcome.body
    headers.append((b"content-length", str(len(body)).encode()))
    return {"type": "http.response.start", "status": outcome.status, "headers": headers}, body


def build_http_app(authorizer: Authorizer) -> CheckApp:
    """The complete HTTP application: the bare check path plus the admin app."""
    return CheckApp(authorizer, admin_app(authorizer))
