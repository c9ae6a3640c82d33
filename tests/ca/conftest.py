"""Shared fixtures: authorities, and verifiers that do not rely on meshward's own view."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import verification

from meshward.ca.authority import Authority, create_root

TD = "example.org"

OpensslVerify = Callable[[Sequence[x509.Certificate], Sequence[x509.Certificate], str], str]
PathVerify = Callable[
    [Sequence[x509.Certificate], Sequence[x509.Certificate]], list[x509.Certificate]
]


@pytest.fixture(scope="session")
def root() -> Authority:
    return create_root(TD, ttl=dt.timedelta(days=30))


@pytest.fixture(scope="session")
def intermediate(root: Authority) -> Authority:
    return root.issue_intermediate(ttl=dt.timedelta(days=10))


@pytest.fixture(scope="session")
def openssl_binary() -> str:
    """The openssl command (`./dev test` installs it; required in CI)."""
    binary = shutil.which("openssl")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("openssl is required in CI")
        pytest.skip("openssl is not installed")
    return binary


@pytest.fixture(scope="session")
def openssl(openssl_binary: str, tmp_path_factory: pytest.TempPathFactory) -> OpensslVerify:
    """``openssl verify -purpose P`` of a chain (leaf first) against trust anchors.

    Returns openssl's output; raises AssertionError with it when verification fails.
    """
    binary = openssl_binary
    workdir = tmp_path_factory.mktemp("openssl")

    def write(name: str, certs: Sequence[x509.Certificate]) -> Path:
        path = workdir / name
        path.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in certs))
        return path

    def run(
        chain: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate], purpose: str
    ) -> str:
        command = [binary, "verify", "-purpose", purpose, "-CAfile", str(write("ca.pem", anchors))]
        if len(chain) > 1:
            command += ["-untrusted", str(write("untrusted.pem", chain[1:]))]
        command.append(str(write("leaf.pem", chain[:1])))
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        return output

    return run


def _verifier(anchors: Sequence[x509.Certificate]) -> verification.PolicyBuilder:
    return verification.PolicyBuilder().store(verification.Store(list(anchors)))


@pytest.fixture(scope="session")
def rfc5280_client() -> PathVerify:
    """RFC 5280 path validation as a TLS client certificate (cryptography's verifier)."""

    def run(
        chain: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate]
    ) -> list[x509.Certificate]:
        verifier = _verifier(anchors).build_client_verifier()
        return list(verifier.verify(chain[0], list(chain[1:])).chain)

    return run


@pytest.fixture(scope="session")
def rfc5280_server() -> Callable[
    [Sequence[x509.Certificate], Sequence[x509.Certificate], str], list[x509.Certificate]
]:
    """RFC 5280 path validation as a TLS server certificate for a DNS name."""

    def run(
        chain: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate], dns_name: str
    ) -> list[x509.Certificate]:
        verifier = _verifier(anchors).build_server_verifier(verification.DNSName(dns_name))
        return list(verifier.verify(chain[0], list(chain[1:])))

    return run
