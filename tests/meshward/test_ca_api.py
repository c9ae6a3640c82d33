"""The CA's HTTP API: bootstrap-token authentication, CSR signing, bundles, JWT-SVIDs,
metrics."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import verification
from fastapi.testclient import TestClient

from meshward.ca.bundle import TrustBundle
from meshward.ca.jwt_svid import validate_jwt_svid
from meshward.ca.manager import TrustDomainCa
from meshward.ca.spiffe_id import SpiffeId
from meshward.ca.store import FileStore
from meshward.ca_service import BOOTSTRAP_AUDIENCE
from meshward.ca_service.api import MAX_BODY_BYTES, create_app
from meshward.ca_service.metrics import CaMetrics

WEB = SpiffeId.parse("spiffe://example.org/ns/default/sa/web")


@pytest.fixture
def ca(tmp_path: Path) -> TrustDomainCa:
    return TrustDomainCa.init(FileStore(tmp_path / "ca"), "example.org")


@pytest.fixture
def client(ca: TrustDomainCa) -> TestClient:
    return TestClient(create_app(ca, CaMetrics(), max_ttl=dt.timedelta(hours=1)))


def _auth(ca: TrustDomainCa, spiffe_id: SpiffeId = WEB) -> dict[str, str]:
    return {"Authorization": f"Bearer {ca.issue_jwt(spiffe_id, [BOOTSTRAP_AUDIENCE])}"}


def _csr(name: str | None = str(WEB)) -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    if name:
        san = x509.SubjectAlternativeName([x509.UniformResourceIdentifier(name)])
        builder = builder.add_extension(san, critical=False)
    return key, builder.sign(key, hashes.SHA256()).public_bytes(Encoding.PEM).decode()


def test_csr_is_signed_for_the_token_holder(client: TestClient, ca: TrustDomainCa) -> None:
    key, csr = _csr()
    response = client.post("/v1/x509-svid", json={"csr": csr}, headers=_auth(ca))
    assert response.status_code == 200, response.text
    body = response.json()
    chain = x509.load_pem_x509_certificates(body["chain"].encode())
    anchors = x509.load_pem_x509_certificates(body["bundle"].encode())
    assert chain[0].public_key() == key.public_key()
    verified = (
        verification.PolicyBuilder()
        .store(verification.Store(anchors))
        .build_client_verifier()
        .verify(chain[0], chain[1:])
    )
    assert [s.value for s in verified.subjects or []] == [str(WEB)]


def test_csr_for_someone_else_is_refused(client: TestClient, ca: TrustDomainCa) -> None:
    _, csr = _csr("spiffe://example.org/ns/default/sa/admin")
    response = client.post("/v1/x509-svid", json={"csr": csr}, headers=_auth(ca))
    assert response.status_code == 400
    assert response.json()["error"] == "identity-mismatch"


def test_a_body_too_large_is_refused_before_it_is_read(client: TestClient) -> None:
    # Anonymous callers too: a 256 MiB body once grew the server by 560 MiB.
    big = b"x" * (MAX_BODY_BYTES + 1)
    response = client.post("/v1/x509-svid", content=big)
    assert response.status_code == 413 and response.json()["error"] == "too-large"

    def chunks() -> Iterator[bytes]:  # no length declared: counted as it arrives
        yield from (b"y" * 4096 for _ in range(MAX_BODY_BYTES // 4096 + 2))

    json_body = {"content-type": "application/json"}  # (else the body is never read)
    response = client.post("/v1/x509-svid", content=chunks(), headers=json_body)
    assert response.status_code == 413
    assert client.get("/healthz").status_code == 200


def test_a_csr_that_is_no_text_is_refused(client: TestClient, ca: TrustDomainCa) -> None:
    # A lone surrogate (a JSON \ud800 escape) cannot even be encoded: a 500 before.
    body = b'{"csr": "\\ud800"}'
    headers = {**_auth(ca), "content-type": "application/json"}
    response = client.post("/v1/x509-svid", content=body, headers=headers)
    assert response.status_code == 400 and response.json()["error"] == "malformed"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer not-a-jwt"},
    ],
)
def test_missing_or_bad_token_is_401(client: TestClient, headers: dict[str, str]) -> None:
    _, csr = _csr()
    response = client.post("/v1/x509-svid", json={"csr": csr}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_an_ordinary_jwt_svid_is_not_a_bootstrap_token(
    client: TestClient, ca: TrustDomainCa
) -> None:
    token = ca.issue_jwt(WEB, ["some-service"])
    response = client.post(
        "/v1/jwt-svid", json={"audience": ["db"]}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert "audience" in response.json()["detail"]


def test_a_token_signed_by_another_ca_is_refused(client: TestClient, tmp_path: Path) -> None:
    stranger = TrustDomainCa.init(FileStore(tmp_path / "other"), "example.org")
    response = client.post("/v1/jwt-svid", json={"audience": ["db"]}, headers=_auth(stranger))
    assert response.status_code == 401


def test_jwt_svid_for_the_caller(client: TestClient, ca: TrustDomainCa) -> None:
    response = client.post("/v1/jwt-svid", json={"audience": ["db"]}, headers=_auth(ca))
    assert response.status_code == 200
    token = response.json()["token"]
    svid = validate_jwt_svid(token, ca.bundle().jwt_authorities, "db", trust_domain="example.org")
    assert svid.spiffe_id == WEB


def test_jwt_svid_request_validation(client: TestClient, ca: TrustDomainCa) -> None:
    assert client.post("/v1/jwt-svid", json={"audience": []}, headers=_auth(ca)).status_code == 422
    too_long = {"audience": ["db"], "ttl_seconds": 7200}
    assert client.post("/v1/jwt-svid", json=too_long, headers=_auth(ca)).status_code == 422
    _, csr = _csr()
    huge = {"csr": csr, "ttl_seconds": 10**30}
    assert client.post("/v1/x509-svid", json=huge, headers=_auth(ca)).status_code == 422


def test_a_bootstrap_token_cannot_mint_its_successor(client: TestClient, ca: TrustDomainCa) -> None:
    # Otherwise a leaked bootstrap token would outlive its expiry for ever.
    renew = {"audience": ["db", BOOTSTRAP_AUDIENCE], "ttl_seconds": 3600}
    response = client.post("/v1/jwt-svid", json=renew, headers=_auth(ca))
    assert response.status_code == 403 and BOOTSTRAP_AUDIENCE in response.text


def test_bundles_need_no_token(client: TestClient, ca: TrustDomainCa) -> None:
    pem = client.get("/v1/bundle")
    assert pem.status_code == 200
    assert pem.headers["content-type"] == "application/x-pem-file"
    assert pem.content == ca.bundle().to_pem()
    jwks = client.get("/v1/bundle.jwks").json()
    assert TrustBundle.from_jwks("example.org", jwks).sequence == ca.bundle().sequence


def test_bundle_reflects_rotation_by_another_process(client: TestClient, ca: TrustDomainCa) -> None:
    other = TrustDomainCa.open(ca.store)
    other.prepare(root=True)
    assert len(x509.load_pem_x509_certificates(client.get("/v1/bundle").content)) == 2


def test_metrics_count_issued_svids(client: TestClient, ca: TrustDomainCa) -> None:
    _, csr = _csr()
    client.post("/v1/x509-svid", json={"csr": csr}, headers=_auth(ca))
    client.post("/v1/jwt-svid", json={"audience": ["db"]}, headers=_auth(ca))
    text = client.get("/metrics").text
    assert 'meshward_ca_svids_issued_total{kind="x509"} 1.0' in text
    assert 'meshward_ca_svids_issued_total{kind="jwt"} 1.0' in text
    assert "meshward_ca_rotation_failures_total 0.0" in text
    assert "meshward_ca_seconds_to_earliest_expiry" in text


@pytest.fixture
def served(ca: TrustDomainCa) -> Iterator[str]:
    """The API on a real uvicorn server on a kernel-chosen loopback port."""
    app = create_app(ca, CaMetrics(), max_ttl=dt.timedelta(hours=1))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=15)


def test_real_server_signs_a_csr(served: str, ca: TrustDomainCa) -> None:
    key, csr = _csr(None)
    with httpx2.Client(base_url=served, timeout=10) as http:
        response = http.post("/v1/x509-svid", json={"csr": csr}, headers=_auth(ca))
        assert response.status_code == 200
        chain = x509.load_pem_x509_certificates(response.json()["chain"].encode())
        assert chain[0].public_key() == key.public_key()
        assert http.get("/healthz").json() == {"status": "ok"}
