"""The SPIFFE Workload API, checked with the `spiffe` package's own client (anchors.md
SPIFFE MUST 7: the security header, keys as unencrypted PKCS#8 DER)."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import spiffe
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import verification
from spiffe._proto import workload_pb2, workload_pb2_grpc

from meshward.ca.manager import TrustDomainCa
from meshward.ca.rotation import RenewalPolicy
from meshward.ca.spiffe_id import SpiffeId
from meshward.ca.store import FileStore
from meshward.ca_service import BOOTSTRAP_AUDIENCE
from meshward.ca_service.metrics import CaMetrics
from meshward.ca_service.workload_api import HEADER, start_workload_api

WEB = SpiffeId.parse("spiffe://example.org/ns/default/sa/web")
TD = spiffe.TrustDomain("example.org")


@pytest.fixture
def ca(tmp_path: Path) -> TrustDomainCa:
    return TrustDomainCa.init(FileStore(tmp_path / "ca"), "example.org")


@pytest.fixture
def metrics() -> CaMetrics:
    return CaMetrics()


@pytest.fixture
def socket_path(ca: TrustDomainCa, metrics: CaMetrics, tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "sockets" / "web.sock"
    stop = threading.Event()
    server = start_workload_api(ca, WEB, path, RenewalPolicy(), metrics, stop)
    yield path
    stop.set()
    server.stop(grace=5).wait(10)


@pytest.fixture
def client(socket_path: Path) -> Iterator[spiffe.WorkloadApiClient]:
    with spiffe.WorkloadApiClient(socket_path=f"unix://{socket_path}") as api:
        yield api


@pytest.fixture
def stub(socket_path: Path) -> Iterator[workload_pb2_grpc.SpiffeWorkloadAPIStub]:
    with grpc.insecure_channel(f"unix:{socket_path}") as channel:
        yield workload_pb2_grpc.SpiffeWorkloadAPIStub(channel)


def test_x509_context_from_the_reference_client_verifies(
    client: spiffe.WorkloadApiClient,
) -> None:
    context = client.fetch_x509_context(timeout=10)
    (svid,) = context.x509_svids
    assert str(svid.spiffe_id) == str(WEB)
    bundle = context.x509_bundle_set.get_bundle_for_trust_domain(TD)
    assert bundle is not None
    anchors = list(bundle.x509_authorities)
    verifier = (
        verification.PolicyBuilder().store(verification.Store(anchors)).build_client_verifier()
    )
    verifier.verify(svid.leaf, svid.cert_chain[1:])


def test_jwt_svid_round_trip_through_the_reference_client(
    client: spiffe.WorkloadApiClient, metrics: CaMetrics
) -> None:
    token = client.fetch_jwt_svid(audience={"db"}, timeout=10)
    assert str(token.spiffe_id) == str(WEB)
    assert 'meshward_ca_svids_issued_total{kind="jwt"} 1.0' in metrics.render().decode()
    bundles = client.fetch_jwt_bundles(timeout=10)
    jwt_bundle = bundles.get_bundle_for_trust_domain(TD)
    assert jwt_bundle is not None
    spiffe.JwtSvid.parse_and_validate(token.token, jwt_bundle, {"db"})
    validated = client.validate_jwt_svid(token.token, "db", timeout=10)
    assert str(validated.spiffe_id) == str(WEB)


def test_x509_bundles_stream(client: spiffe.WorkloadApiClient, ca: TrustDomainCa) -> None:
    bundles = client.fetch_x509_bundles(timeout=10)
    bundle = bundles.get_bundle_for_trust_domain(TD)
    assert bundle is not None
    assert bundle.x509_authorities == set(ca.bundle().x509_authorities)


def test_calls_without_the_security_header_are_invalid_argument(
    stub: workload_pb2_grpc.SpiffeWorkloadAPIStub,
) -> None:
    calls = [
        lambda md: next(
            stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), metadata=md, timeout=10)
        ),
        lambda md: next(
            stub.FetchX509Bundles(workload_pb2.X509BundlesRequest(), metadata=md, timeout=10)
        ),
        lambda md: next(
            stub.FetchJWTBundles(workload_pb2.JWTBundlesRequest(), metadata=md, timeout=10)
        ),
        lambda md: stub.FetchJWTSVID(
            workload_pb2.JWTSVIDRequest(audience=["db"]), metadata=md, timeout=10
        ),
        lambda md: stub.ValidateJWTSVID(
            workload_pb2.ValidateJWTSVIDRequest(audience="db", svid="x"), metadata=md, timeout=10
        ),
    ]
    for call in calls:
        for metadata in ((), ((HEADER, "false"),)):
            with pytest.raises(grpc.RpcError) as caught:
                call(metadata)
            assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_keys_are_unencrypted_pkcs8_der(stub: workload_pb2_grpc.SpiffeWorkloadAPIStub) -> None:
    stream = stub.FetchX509SVID(
        workload_pb2.X509SVIDRequest(), metadata=((HEADER, "true"),), timeout=10
    )
    der = next(stream).svids[0].x509_svid_key
    stream.cancel()
    key = serialization.load_der_private_key(der, password=None)
    pkcs8 = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert der == pkcs8


def test_the_stream_sends_again_when_the_bundle_changes(
    stub: workload_pb2_grpc.SpiffeWorkloadAPIStub, ca: TrustDomainCa
) -> None:
    stream = stub.FetchX509SVID(
        workload_pb2.X509SVIDRequest(), metadata=((HEADER, "true"),), timeout=30
    )
    first = next(stream).svids[0]
    TrustDomainCa.open(ca.store).prepare(root=True)  # as the CLI would, from elsewhere
    second = next(stream).svids[0]
    stream.cancel()
    assert second.x509_svid_key != first.x509_svid_key  # a fresh key
    assert len(second.bundle) > len(first.bundle)  # both roots now


def test_someone_elses_jwt_svid_is_refused(stub: workload_pb2_grpc.SpiffeWorkloadAPIStub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.FetchJWTSVID(
            workload_pb2.JWTSVIDRequest(audience=["db"], spiffe_id="spiffe://example.org/admin"),
            metadata=((HEADER, "true"),),
            timeout=10,
        )
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED


def test_a_bootstrap_token_is_not_issued_here(
    stub: workload_pb2_grpc.SpiffeWorkloadAPIStub,
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.FetchJWTSVID(
            workload_pb2.JWTSVIDRequest(audience=["db", BOOTSTRAP_AUDIENCE]),
            metadata=((HEADER, "true"),),
            timeout=10,
        )
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED


def test_the_socket_is_owner_only_from_the_moment_it_exists(
    ca: TrustDomainCa, metrics: CaMetrics, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With a permissive umask and no chmod afterwards, the socket must still be 0600:
    # anyone able to connect before a later chmod could fetch the workload's key.
    from meshward.ca_service import workload_api

    monkeypatch.setattr(workload_api.os, "chmod", lambda *_: None)
    previous = os.umask(0)
    try:
        stop = threading.Event()
        path = tmp_path / "api.sock"
        server = start_workload_api(ca, WEB, path, RenewalPolicy(), metrics, stop)
    finally:
        os.umask(previous)
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        stop.set()
        server.stop(grace=5).wait(10)
