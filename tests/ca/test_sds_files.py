"""The Envoy file-based SDS layout written with the atomic-writer pattern."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from meshward.ca.authority import Authority
from meshward.ca.bundle import TrustBundle
from meshward.ca.sds_files import (
    DATA_LINK,
    current_version,
    repair,
    write_envoy_sds_configs,
    write_svid_files,
)
from meshward.ca.spiffe_id import SpiffeId
from meshward.ca.x509_svid import X509Svid, issue_x509_svid_with_key

WEB = SpiffeId.parse("spiffe://example.org/web")


@pytest.fixture
def make_svid(intermediate: Authority):  # type: ignore[no-untyped-def]
    return lambda: issue_x509_svid_with_key(intermediate, WEB)


@pytest.fixture
def bundle(root: Authority) -> TrustBundle:
    return TrustBundle("example.org", (root.certificate,))


def _matches(directory: Path) -> bool:
    cert = x509.load_pem_x509_certificate((directory / "cert.pem").read_bytes())
    key = load_pem_private_key((directory / "key.pem").read_bytes(), None)
    return cert.public_key() == key.public_key()


def test_layout_is_symlinks_through_data(tmp_path: Path, make_svid, bundle) -> None:  # type: ignore[no-untyped-def]
    svid: X509Svid = make_svid()
    version = write_svid_files(tmp_path, svid, bundle)
    assert os.readlink(tmp_path / DATA_LINK) == version.name
    for name in ("cert.pem", "key.pem", "bundle.pem"):
        assert os.readlink(tmp_path / name) == f"{DATA_LINK}/{name}"
    assert (tmp_path / "cert.pem").read_bytes() == svid.chain_pem()
    assert (tmp_path / "bundle.pem").read_bytes() == bundle.to_pem()
    assert stat.S_IMODE((version / "key.pem").stat().st_mode) == 0o600
    assert (tmp_path / "key.pem").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8


def test_new_version_replaces_old_and_key_matches_cert(tmp_path: Path, make_svid, bundle) -> None:  # type: ignore[no-untyped-def]
    first = write_svid_files(tmp_path, make_svid(), bundle)
    second = write_svid_files(tmp_path, make_svid(), bundle)
    assert not first.exists()
    assert current_version(tmp_path) == second
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("..2")) == [second.name]
    assert _matches(tmp_path)


def test_repair_removes_an_unpublished_version_and_keeps_the_published(
    tmp_path: Path,
    make_svid,  # type: ignore[no-untyped-def]
    bundle,  # type: ignore[no-untyped-def]
) -> None:
    published = write_svid_files(tmp_path, make_svid(), bundle)
    half = tmp_path / "..2099_01_01_00_00_00.000000.crash"
    half.mkdir()
    (half / "cert.pem").write_bytes(b"partial")
    (tmp_path / "..data_tmp").symlink_to(half.name)
    repair(tmp_path)
    assert not half.exists() and not (tmp_path / "..data_tmp").is_symlink()
    assert current_version(tmp_path) == published
    assert _matches(tmp_path)


def test_repair_restores_the_file_links_of_a_first_write_cut_short(
    tmp_path: Path,
    make_svid,  # type: ignore[no-untyped-def]
    bundle,  # type: ignore[no-untyped-def]
) -> None:
    # A crash right after `..data` was swapped in, before cert.pem and friends linked to
    # it: Envoy would find no certificate until the next renewal.
    published = write_svid_files(tmp_path, make_svid(), bundle)
    for name in ("cert.pem", "key.pem", "bundle.pem"):
        (tmp_path / name).unlink()
    repair(tmp_path)
    assert current_version(tmp_path) == published
    assert _matches(tmp_path)


def test_repair_leaves_a_dangling_data_link_to_the_next_renewal(tmp_path: Path) -> None:
    (tmp_path / DATA_LINK).symlink_to("..2000_01_01_00_00_00.000000.gone")
    repair(tmp_path)  # no error: the rotator sees unreadable files and renews
    assert current_version(tmp_path) is not None


def test_envoy_sds_configs_name_one_secret_each_and_watch_the_directory(tmp_path: Path) -> None:
    cert_config, bundle_config = write_envoy_sds_configs(tmp_path)
    cert_doc = json.loads(cert_config.read_text())
    bundle_doc = json.loads(bundle_config.read_text())
    assert len(cert_doc["resources"]) == len(bundle_doc["resources"]) == 1
    tls = cert_doc["resources"][0]["tls_certificate"]
    assert tls["certificate_chain"]["filename"] == str(tmp_path.resolve() / "cert.pem")
    assert tls["watched_directory"]["path"] == str(tmp_path.resolve())
    validation = bundle_doc["resources"][0]["validation_context"]
    assert validation["trusted_ca"]["filename"] == str(tmp_path.resolve() / "bundle.pem")


def test_a_version_another_running_writer_staged_is_left_to_it(
    tmp_path: Path,
    make_svid,  # type: ignore[no-untyped-def]
    bundle,  # type: ignore[no-untyped-def]
) -> None:
    # Two writers on one directory: removing the version the other has staged but not yet
    # published would leave `..data` pointing at nothing once it publishes.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        staged = tmp_path / f"..2026_01_01_00_00_00.000000.0.pid{other.pid}"
        staged.mkdir(parents=True)
        # The older layout ended in a counter: one equal to a running pid names no writer.
        older = tmp_path / f"..2025_01_01_00_00_00.000000.1.{other.pid}"
        older.mkdir()
        write_svid_files(tmp_path, make_svid(), bundle)
        repair(tmp_path)
        assert staged.is_dir() and not older.exists()
    finally:
        other.kill()
        other.wait(timeout=10)
    published = write_svid_files(tmp_path, make_svid(), bundle)  # its writer is gone
    assert not staged.exists() and current_version(tmp_path) == published
    assert _matches(tmp_path)


def test_repair_removes_temporary_sds_documents_of_a_write_cut_short(tmp_path: Path) -> None:
    write_envoy_sds_configs(tmp_path)
    dead = tmp_path / f".tmp-sds-cert.json.{_dead_pid()}"
    dead.write_text("{")
    repair(tmp_path)
    assert not dead.exists() and (tmp_path / "sds-cert.json").exists()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid
