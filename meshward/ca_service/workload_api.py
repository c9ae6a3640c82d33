"""The SPIFFE Workload API (gRPC over a Unix socket), one socket per workload identity.

Attestation is by filesystem permission: whoever may connect to a workload's socket is
that workload, so put each socket where only its workload can reach it (for example a
directory mounted into that workload alone). The messages and service come from the SPIFFE
project's generated Workload API stubs shipped in the ``spiffe`` package.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from cryptography.hazmat.primitives import serialization
from spiffe._proto import workload_pb2, workload_pb2_grpc

from meshward.ca.authority import utcnow
from meshward.ca.bundle import TrustBundle
from meshward.ca.errors import CaError
from meshward.ca.jwt_svid import validate_jwt_svid
from meshward.ca.manager import TrustDomainCa
from meshward.ca.rotation import RenewalPolicy
from meshward.ca.spiffe_id import SpiffeId

from . import BOOTSTRAP_AUDIENCE
from .metrics import CaMetrics

HEADER = "workload.spiffe.io"
#: how often an open stream checks for a rotated CA or a due renewal
POLL = dt.timedelta(seconds=1)


def _der(certs: Any) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.DER) for c in certs)


class WorkloadApi(workload_pb2_grpc.SpiffeWorkloadAPIServicer):
    """Serves one workload's SVIDs and its trust domain's bundles."""

    def __init__(
        self,
        ca: TrustDomainCa,
        spiffe_id: SpiffeId,
        policy: RenewalPolicy,
        metrics: CaMetrics,
        stop: threading.Event,
    ) -> None:
        self.ca = ca
        self.spiffe_id = spiffe_id
        self.policy = policy
        self.metrics = metrics
        self.stop = stop

    def _check(self, context: grpc.ServicerContext) -> None:
        metadata = dict(context.invocation_metadata())
        if metadata.get(HEADER) != "true":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "security header missing from request")

    def _bundle(self) -> TrustBundle:
        self.ca.refresh()
        return self.ca.bundle()

    def _td_key(self) -> str:
        return str(SpiffeId.of_trust_domain(self.ca.trust_domain))

    def _changed(
        self, context: grpc.ServicerContext, sequence: int, due: dt.datetime | None
    ) -> bool:
        """Wait until the stream must send again (the bundle changed, or ``due`` passed);
        False when the caller went away or the service is stopping."""
        while context.is_active() and not self.stop.is_set():
            self.stop.wait(POLL.total_seconds())
            if self._bundle().sequence != sequence or (due is not None and utcnow() >= due):
                return True
        return False

    def FetchX509SVID(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self._check(context)
        while True:
            with self.ca.locked():  # the bundle sent must be the one in force at signing
                bundle = self.ca.bundle()
                svid = self.ca.issue_x509(self.spiffe_id, ttl=self.policy.ttl)
            self.metrics.svids_issued.labels("x509").inc()
            assert svid.private_key is not None
            key = svid.private_key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            yield workload_pb2.X509SVIDResponse(
                svids=[
                    workload_pb2.X509SVID(
                        spiffe_id=str(self.spiffe_id),
                        x509_svid=_der(svid.chain),
                        x509_svid_key=key,
                        bundle=_der(bundle.x509_authorities),
                    )
                ]
            )
            if not self._changed(context, bundle.sequence, self.policy.renew_at(svid.leaf)):
                return

    def FetchX509Bundles(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self._check(context)
        while True:
            bundle = self._bundle()
            yield workload_pb2.X509BundlesResponse(
                bundles={self._td_key(): _der(bundle.x509_authorities)}
            )
            if not self._changed(context, bundle.sequence, None):
                return

    def FetchJWTBundles(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self._check(context)
        while True:
            bundle = self._bundle()
            jwt_only = dataclasses.replace(bundle, x509_authorities=())
            yield workload_pb2.JWTBundlesResponse(
                bundles={self._td_key(): jwt_only.to_json().encode()}
            )
            if not self._changed(context, bundle.sequence, None):
                return

    def FetchJWTSVID(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._check(context)
        if not request.audience:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "audience must be specified")
        if request.spiffe_id and request.spiffe_id != str(self.spiffe_id):
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "not entitled to that SPIFFE ID")
        if BOOTSTRAP_AUDIENCE in request.audience:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "bootstrap tokens are not issued here")
        self.ca.refresh()
        token = self.ca.issue_jwt(self.spiffe_id, list(request.audience))
        self.metrics.svids_issued.labels("jwt").inc()
        return workload_pb2.JWTSVIDResponse(
            svids=[workload_pb2.JWTSVID(spiffe_id=str(self.spiffe_id), svid=token)]
        )

    def ValidateJWTSVID(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._check(context)
        if not request.audience or not request.svid:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "audience and svid are required")
        try:
            svid = validate_jwt_svid(
                request.svid,
                self._bundle().jwt_authorities,
                request.audience,
                trust_domain=self.ca.trust_domain,
            )
        except CaError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        response = workload_pb2.ValidateJWTSVIDResponse(spiffe_id=str(svid.spiffe_id))
        response.claims.update(dict(svid.claims))
        return response


def start_workload_api(
    ca: TrustDomainCa,
    spiffe_id: SpiffeId,
    socket_path: Path,
    policy: RenewalPolicy,
    metrics: CaMetrics,
    stop: threading.Event,
) -> grpc.Server:
    """Serve the Workload API for ``spiffe_id`` on a Unix socket (mode 0600) and return the
    started server; stop it with ``server.stop(grace)`` after setting ``stop``."""
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    socket_path.unlink(missing_ok=True)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="workload-api"),
        options=[("grpc.so_reuseport", 0)],
    )
    # The generated stubs carry no annotations.
    workload_pb2_grpc.add_SpiffeWorkloadAPIServicer_to_server(  # type: ignore[no-untyped-call]
        WorkloadApi(ca, spiffe_id, policy, metrics, stop), server
    )
    # The socket is created owner-only (a umask around its bind), not chmod-ed after it
    # is already accepting connections; the chmod then pins the mode whatever grpc does.
    previous = os.umask(0o177)
    try:
        server.add_insecure_port(f"unix:{socket_path}")
        server.start()
    finally:
        os.umask(previous)
    os.chmod(socket_path, 0o600)
    return server
