"""The transport-independent check: Envoy's question in, a complete answer out.

Transport adapters (``http_app``, ``grpc_server``) turn what Envoy sent into a
:class:`CheckInput` and an :class:`Outcome` back into Envoy's response format; everything
in between (destination, JWT, the policy decision, deny status, upstream headers,
metrics, decision log) happens here, once for both transports.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import time
from collections.abc import Mapping
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any

from meshward.policy.decision import Decision
from meshward.policy.evaluator import evaluate
from meshward.policy.paths import AmbiguousPathError, canonical_path
from meshward.policy.request import Request

from . import tokens
from .decision_log import DecisionLog, DecisionRecord, utc_now
from .destination import DestinationResolver
from .holder import PolicyHolder
from .metrics import AuthzMetrics
from .settings import AuthzSettings, ServiceSettings
from .tokens import JwtResult, JwtVerifier, bearer_token

log = logging.getLogger("meshward.authz")

DECISION_ID_HEADER = "x-meshward-decision-id"
RULE_HEADER = "x-meshward-rule"
# Pseudo rule ids for decisions taken before the policy is consulted.
RULE_NOT_READY = "meshward:not-ready"
RULE_UNKNOWN_DESTINATION = "meshward:unknown-destination"
RULE_JWT_REQUIRED = "meshward:jwt-required"
RULE_INTERNAL_ERROR = "meshward:internal-error"
RULE_DEFAULT = "meshward:default"
_UNSAFE_IN_HEADER = re.compile(r"[^\x20-\x7e]")


class CheckInput:
    """What Envoy asked, in transport-neutral form. ``headers`` have lower-case names;
    ``principal`` is an identity the transport already established (or None);
    ``destination`` the service Envoy named through the transport's own channel (None:
    map the Host) and ``port`` the port the request arrived on, as Envoy reported it
    (see :mod:`.destination`)."""

    # A plain class, not a dataclass: compiled, its __init__ is native code, where a
    # dataclass's generated __init__ stays interpreted (this runs on every request).
    __slots__ = (
        "destination",
        "headers",
        "host",
        "method",
        "path",
        "port",
        "principal",
        "source_ip",
    )

    def __init__(
        self,
        method: str,
        path: str,
        host: str | None,
        headers: Mapping[str, str],
        principal: str | None = None,
        source_ip: str | None = None,
        destination: str | None = None,
        port: int | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.host = host
        self.headers = headers
        self.principal = principal
        self.source_ip = source_ip
        self.destination = destination
        self.port = port


class Outcome:
    """The answer for Envoy. ``status`` is 200 when allowed; ``upstream_headers`` go to the
    application on allow, ``remove_headers`` are stripped from its request; ``body`` is the
    JSON sent to the client on deny."""

    __slots__ = (
        "allowed",
        "body",
        "decision_id",
        "reason",
        "remove_headers",
        "rule",
        "status",
        "upstream_headers",
    )

    def __init__(
        self,
        allowed: bool,
        status: int,
        decision_id: str,
        reason: str,
        rule: str,
        upstream_headers: tuple[tuple[str, str], ...] = (),
        remove_headers: tuple[str, ...] = (),
        body: bytes = b"",
    ) -> None:
        self.allowed = allowed
        self.status = status
        self.decision_id = decision_id
        self.reason = reason
        self.rule = rule
        self.upstream_headers = upstream_headers
        self.remove_headers = remove_headers
        self.body = body

    @property
    def deny_headers(self) -> tuple[tuple[str, str], ...]:
        headers: tuple[tuple[str, str], ...] = (
            ("content-type", "application/json"),
            (DECISION_ID_HEADER, self.decision_id),
            (RULE_HEADER, self.rule),
        )
        if self.status == 401:  # RFC 6750: say which scheme would be accepted
            headers += (("www-authenticate", "Bearer"),)
        return headers


class DecisionIds:
    """Unique, cheap decision ids: a random per-process prefix and a counter."""

    def __init__(self) -> None:
        self._prefix = os.urandom(6).hex() + "-"
        self._counter = itertools.count(1)  # thread-safe, where `+= 1` is not

    def next(self) -> str:
        return self._prefix + format(next(self._counter), "x")


class Authorizer:
    """Decides checks. Thread-safe; never raises from :meth:`check`."""

    def __init__(
        self,
        settings: AuthzSettings,
        holder: PolicyHolder,
        metrics: AuthzMetrics,
        decision_log: DecisionLog,
        verifier: JwtVerifier | None = None,
    ) -> None:
        self.settings = settings
        self.holder = holder
        self.metrics = metrics
        self.decision_log = decision_log
        self.verifier = verifier if verifier is not None else JwtVerifier(settings.jwt)
        self.destinations = DestinationResolver(settings.destination)
        self._ids = DecisionIds()
        self._default_service = ServiceSettings(deny_status=settings.default_deny_status)
        self._services = settings.services
        self._status = settings.default_deny_status
        up = settings.upstream_headers
        self._principal_header = up.principal.lower() if up.principal else None
        self._claim_headers = tuple((c, h.lower()) for c, h in up.claims.items())

    def check(self, inp: CheckInput, transport: str) -> Outcome:
        """The outcome for one check; any internal failure is a deny that says so."""
        started = time.perf_counter()
        decision_id = self._ids.next()
        try:
            outcome, record = self._check(inp, decision_id)
        except Exception as exc:  # fail closed, whatever went wrong
            log.exception("internal error deciding %s", decision_id)
            self.metrics.internal_errors.inc()
            reason = f"denied: internal error ({type(exc).__name__})"
            outcome = self._deny(decision_id, self._status, reason, RULE_INTERNAL_ERROR)
            record = {"destination": None, "jwt": None, "audit": ()}
        elapsed = time.perf_counter() - started
        try:
            self.metrics.decision(outcome.allowed, outcome.rule, transport, elapsed)
            if self.decision_log.wants(outcome.allowed):
                self.decision_log.write(self._record(inp, outcome, record, elapsed))
        except Exception:  # observability must not turn a decision into an error
            log.exception("recording decision %s failed", decision_id)
        return outcome

    def _check(self, inp: CheckInput, decision_id: str) -> tuple[Outcome, dict[str, Any]]:
        policy = self.holder.policy
        headers = inp.headers
        destination = inp.destination or self.destinations.by_host(inp.host)
        record: dict[str, Any] = {"destination": destination, "jwt": None, "audit": ()}
        if policy is None:
            reason = "denied: no policy loaded yet"
            return self._deny(decision_id, self._status, reason, RULE_NOT_READY), record
        if destination is None:
            reason = "denied: unknown destination"
            return self._deny(decision_id, self._status, reason, RULE_UNKNOWN_DESTINATION), record
        service = self._services.get(destination, self._default_service)
        jwt_result = self._jwt(headers.get("authorization"))
        if self.verifier.enabled:
            record["jwt"] = "verified" if jwt_result.verified else jwt_result.reason
        if service.require_jwt and not jwt_result.verified:
            reason = f"denied: a valid JWT is required ({jwt_result.reason})"
            return self._deny(decision_id, 401, reason, RULE_JWT_REQUIRED), record
        # Positional (destination, method, path, port, host, headers, principal, source_ip,
        # jwt, sni): on the hot path, keywords cost a third more.
        request = Request(
            destination,
            inp.method,
            inp.path,
            inp.port,
            inp.host,
            headers,
            inp.principal,
            inp.source_ip,
            jwt_result.claims,
            None,
        )
        decision = evaluate(policy, request)
        if decision.audit:
            record["audit"] = tuple((a.rule_id, a.effect) for a in decision.audit)
        rule = decision.rule_id or RULE_DEFAULT
        if decision.allowed:
            return self._allow(decision_id, decision, rule, inp.principal, jwt_result), record
        reason = decision.reason
        if jwt_result.reason not in (None, tokens.MISSING):
            reason += f" (JWT not accepted: {jwt_result.reason})"
        return self._deny(decision_id, service.deny_status, reason, rule), record

    def _jwt(self, authorization: str | None) -> JwtResult:
        if not self.verifier.enabled:
            return tokens.NO_TOKEN
        result = self.verifier.verify(bearer_token(authorization))
        if result.reason is not None and result.reason != tokens.MISSING:
            self.metrics.jwt_failures.labels(result.reason).inc()
        return result

    def _allow(
        self,
        decision_id: str,
        decision: Decision,
        rule: str,
        principal: str | None,
        jwt_result: JwtResult,
    ) -> Outcome:
        upstream: list[tuple[str, str]] = [(DECISION_ID_HEADER, decision_id)]
        remove: list[str] = []
        if self._principal_header is not None:
            if principal:
                upstream.append((self._principal_header, principal))
            else:
                remove.append(self._principal_header)
        claims = jwt_result.claims
        for claim, header in self._claim_headers:
            value = claims.get(claim) if claims is not None else None
            if value is None:
                remove.append(header)
            else:
                upstream.append((header, _header_value(value)))
        return Outcome(
            True, 200, decision_id, decision.reason, rule, tuple(upstream), tuple(remove)
        )

    def _deny(self, decision_id: str, status: int, reason: str, rule: str) -> Outcome:
        # The body's shape is fixed; only its strings vary, each JSON-escaped.
        body = (
            f'{{"decision_id":{_json_string(decision_id)},"decision":"deny",'
            f'"reason":{_json_string(reason)},"rule":{_json_string(rule)}}}'
        ).encode()
        return Outcome(False, status, decision_id, reason, rule, body=body)

    def _record(
        self, inp: CheckInput, outcome: Outcome, extra: dict[str, Any], elapsed: float
    ) -> DecisionRecord:
        try:
            path: str | None = canonical_path(inp.path)
        except AmbiguousPathError:
            path = None  # the reason says why; the raw path may hold anything
        # Positional, in DecisionRecord's field order: keywords cost twice as much.
        return DecisionRecord(
            utc_now(),
            outcome.decision_id,
            inp.principal,
            inp.source_ip,
            extra["destination"],
            inp.method,
            path,
            outcome.allowed,
            outcome.status,
            outcome.rule,
            outcome.reason,
            extra["audit"],
            extra["jwt"],
            round(elapsed * 1e6, 1),
        )


def _header_value(value: Any) -> str:
    """A claim as a header value: strings as they are, anything else as compact JSON;
    control and non-ASCII characters (which could split or smuggle headers) are escaped."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    if _UNSAFE_IN_HEADER.search(text):
        text = _json_string(text)[1:-1]
    return text
