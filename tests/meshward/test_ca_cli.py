"""`meshward ca ...` as a user runs it: init, issue, sign-csr, bundle, rotate, status, serve."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import spiffe
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from meshward.ca_service.options import parse_duration, parse_workload
from meshward.cli import main

TD = "example.org"
WEB = f"spiffe://{TD}/ns/default/sa/web"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["ca", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def ca_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    directory = tmp_path / "ca"
    code, out, _ = run(capsys, "init", "--dir", str(directory), "--trust-domain", TD)
    assert code == 0 and "initialised CA for trust domain example.org" in out
    return directory


def test_issue_writes_the_sds_layout_and_envoy_configs(
    ca_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "web"
    code, out, _ = run(
        capsys, "issue", "--dir", str(ca_dir), WEB, "--out", str(out_dir), "--envoy-config"
    )
    assert code == 0 and out.startswith(f"issued {WEB}")
    svid = spiffe.X509Svid.parse(
        (out_dir / "cert.pem").read_bytes(), (out_dir / "key.pem").read_bytes()
    )
    assert str(svid.spiffe_id) == WEB
    assert (out_dir / "sds-cert.json").is_file() and (out_dir / "sds-bundle.json").is_file()


def test_jwt_and_bundle(ca_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, token, _ = run(capsys, "issue", "--dir", str(ca_dir), WEB, "--jwt", "--audience", "db")
    assert code == 0
    code, jwks, _ = run(capsys, "bundle", "--dir", str(ca_dir), "--format", "jwks")
    assert code == 0
    doc = json.loads(jwks)
    doc["keys"] = [k for k in doc["keys"] if k["use"] == "jwt-svid"]
    bundle = spiffe.JwtBundle.parse(spiffe.TrustDomain(TD), json.dumps(doc).encode())
    assert str(spiffe.JwtSvid.parse_and_validate(token.strip(), bundle, {"db"}).spiffe_id) == WEB
    code, pem, _ = run(capsys, "bundle", "--dir", str(ca_dir))
    assert code == 0 and len(x509.load_pem_x509_certificates(pem.encode())) == 1


def test_sign_csr_and_refusal(
    ca_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(WEB)]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "web.csr"
    path.write_bytes(csr.public_bytes(Encoding.PEM))
    code, chain, _ = run(
        capsys, "sign-csr", "--dir", str(ca_dir), "--csr", str(path), "--spiffe-id", WEB
    )
    assert code == 0
    leaf = x509.load_pem_x509_certificates(chain.encode())[0]
    assert leaf.public_key() == key.public_key()
    other = f"spiffe://{TD}/ns/default/sa/admin"
    code, _, err = run(
        capsys, "sign-csr", "--dir", str(ca_dir), "--csr", str(path), "--spiffe-id", other
    )
    assert code == 1 and "entitled to" in err


def test_rotation_stages_and_status(ca_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = ("--dir", str(ca_dir))
    assert run(capsys, "rotate", *d, "activate")[0] == 1
    code, out, _ = run(capsys, "rotate", *d, "prepare", "--root")
    assert code == 0 and "prepared intermediate-4" in out
    assert run(capsys, "rotate", *d, "activate")[1].strip() == "activated intermediate-4"
    assert "nothing can retire yet" in run(capsys, "rotate", *d, "retire")[1]
    assert "nothing is due" in run(capsys, "rotate", *d, "auto")[1]
    code, out, _ = run(capsys, "status", *d)
    assert code == 0 and "root-3" in out and "intermediate-2" in out and "retiring" in out
    doc = json.loads(run(capsys, "status", *d, "--json")[1])
    assert doc["bundle_sequence"] == 2
    assert {g["name"]: g["status"] for g in doc["generations"]}["intermediate-4"] == "active"


def test_bad_input_is_a_usage_error_naming_the_rule(
    ca_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "issue", "--dir", str(ca_dir), "spiffe://example.org/a/../b")
    assert code == 2 and "dot-segment" in err
    code, _, err = run(capsys, "init", "--dir", str(ca_dir), "--trust-domain", TD)
    assert code == 1 and "already holds a CA" in err


def test_two_identities_on_one_workload_api_socket_are_refused(
    ca_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The second would replace the first: workload a would be served b's SVIDs.
    a, b = (
        f"spiffe://{TD}/{n}={tmp_path / d / 'agent.sock'}" for n, d in (("a", "s"), ("b", "s/."))
    )
    (tmp_path / "s").mkdir()
    code, _, err = run(
        capsys, "serve", "--dir", str(ca_dir), "--workload-api", a, "--workload-api", b
    )
    assert code == 2 and "name the same socket" in err


def test_serve_once_renews_every_workload(
    ca_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    code, _, _ = run(
        capsys,
        "serve",
        "--dir",
        str(ca_dir),
        "--workload",
        f"spiffe://{TD}/a={a}",
        "--workload",
        f"spiffe://{TD}/b={b}",
        "--once",
    )
    assert code == 0
    for directory in (a, b):
        assert (directory / "cert.pem").is_file()


def test_option_parsing() -> None:
    ninety_minutes = parse_duration("1h30m")
    assert ninety_minutes.total_seconds() == 5400
    for bad in ("", "1x", "h", "0s", "1h 2m"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert parse_workload("spiffe://td/a=/tmp/x").directory == Path("/tmp/x")
    with pytest.raises(ValueError):
        parse_workload("spiffe://td/a")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return bytes(response.read())


def test_serve_runs_rotation_and_the_api_until_sigterm(ca_dir: Path, tmp_path: Path) -> None:
    exe = shutil.which("meshward", path=os.path.dirname(sys.executable))
    assert exe, "the meshward console script is installed"
    port = _free_port()
    a = tmp_path / "a"
    socket_path = tmp_path / "sockets" / "a.sock"
    command = [exe, "ca", "serve", "--dir", str(ca_dir), "--workload", f"spiffe://{TD}/a={a}"]
    command += ["--listen", f"127.0.0.1:{port}", "--workload-api", f"spiffe://{TD}/a={socket_path}"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        metrics = b""
        while time.monotonic() < deadline:
            try:
                metrics = _get(f"http://127.0.0.1:{port}/metrics")
                if b'meshward_ca_svids_issued_total{kind="x509"} 1.0' in metrics:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        assert b'meshward_ca_svids_issued_total{kind="x509"} 1.0' in metrics
        assert (a / "cert.pem").is_file()
        assert _get(f"http://127.0.0.1:{port}/v1/bundle").startswith(b"-----BEGIN CERTIFICATE")
        with spiffe.WorkloadApiClient(socket_path=f"unix://{socket_path}") as workload_api:
            (svid,) = workload_api.fetch_x509_context(timeout=10).x509_svids
        assert str(svid.spiffe_id) == f"spiffe://{TD}/a"
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert "renewed X.509-SVID for spiffe://example.org/a" in err


def test_serve_the_api_over_tls_with_a_certificate_from_the_ca(
    ca_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api_dir = tmp_path / "api"
    code, _, _ = run(
        capsys,
        "issue",
        "--dir",
        str(ca_dir),
        f"spiffe://{TD}/meshward/ca-api",
        "--dns-name",
        "localhost",
        "--out",
        str(api_dir),
    )
    assert code == 0
    exe = shutil.which("meshward", path=os.path.dirname(sys.executable))
    assert exe
    port = _free_port()
    command = [exe, "ca", "serve", "--dir", str(ca_dir), "--listen", f"127.0.0.1:{port}"]
    command += ["--tls-cert", str(api_dir / "cert.pem"), "--tls-key", str(api_dir / "key.pem")]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    trust = ssl.create_default_context(cafile=str(api_dir / "bundle.pem"))
    try:
        body = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not body:
            try:
                with urllib.request.urlopen(
                    f"https://localhost:{port}/v1/bundle", timeout=5, context=trust
                ) as response:
                    body = response.read()
            except OSError:
                time.sleep(0.1)
        assert body == (api_dir / "bundle.pem").read_bytes()
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0, err


def test_init_refuses_a_rotation_that_could_never_happen(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        capsys, "init", "--dir", str(tmp_path / "ca"), "--trust-domain", TD, "--rotate-at", "1.5"
    )
    assert code == 2 and "rotate_at" in err
    assert not (tmp_path / "ca" / "state.json").exists()
