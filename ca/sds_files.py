"""The file layout Envoy's file-based SDS watches, written with the atomic-writer pattern.

A workload directory looks like this (the Kubernetes atomic-writer layout)::

    ..2026_01_31_12_00_00.000001.ab12cd/   cert.pem  key.pem  bundle.pem   (one version)
    ..data -> ..2026_01_31_12_00_00.000001.ab12cd
    cert.pem -> ..data/cert.pem            key.pem -> ..data/key.pem
    bundle.pem -> ..data/bundle.pem

A new version is written into a fresh timestamped directory and fsynced, then ``..data``
is replaced by a rename, so a reader (Envoy, watching the directory) sees either the old or
the new certificate, key and bundle together, never a mix and never a partial file.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .bundle import TrustBundle
from .fsio import TEMP_PREFIX, atomic_write, fsync_dir, write_new_file
from .x509_svid import X509Svid

DATA_LINK = "..data"
CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
BUNDLE_FILE = "bundle.pem"
SDS_CERT_CONFIG = "sds-cert.json"
SDS_BUNDLE_CONFIG = "sds-bundle.json"
# The names of the two secrets in those documents.
CERT_SECRET = "spiffe_svid"
BUNDLE_SECRET = "spiffe_bundle"
_SECRET = frozenset({KEY_FILE})
_versions = itertools.count()
_SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"


def _writer() -> str:
    """The end of the names of this process's versions and temporary links (see
    :func:`_written_by_another_live_process`); asked at each write: a fork changes it."""
    return f".pid{os.getpid()}"


def stage_version(
    directory: Path, files: Mapping[str, bytes], secret: frozenset[str], *, sync: bool = True
) -> Path:
    """Write ``files`` into a new, not yet published version directory; names in ``secret``
    get mode 0600. With ``sync=False`` the caller must flush (``os.sync()``) before
    :func:`publish_version`, or a crash could publish empty files."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y_%m_%d_%H_%M_%S.%f")
    version = directory / f"..{stamp}.{next(_versions)}{_writer()}"
    os.mkdir(version, 0o755)
    for name, data in files.items():
        write_new_file(version / name, data, 0o600 if name in secret else 0o644, sync=sync)
    if sync:
        fsync_dir(version)
    return version


def publish_version(directory: Path, version: Path, *, sync: bool = True) -> None:
    """Make a staged version current by renaming ``..data`` onto it, then drop older ones."""
    tmp_link = directory / f"..data_tmp{_writer()}"
    _symlink_over(version.name, tmp_link)
    os.replace(tmp_link, directory / DATA_LINK)
    for name in os.listdir(version):
        _ensure_user_link(directory, name)
    if sync:
        fsync_dir(directory)
    _remove_old_versions(directory, keep=version.name)


def write_version(directory: Path, files: Mapping[str, bytes], secret: frozenset[str]) -> Path:
    """Publish ``files`` as the directory's new version, durably, and return it."""
    version = stage_version(directory, files, secret)
    publish_version(directory, version)
    return version


def _symlink_over(target: str, link: Path) -> None:
    # A leftover of an interrupted run may sit there; the common case costs one syscall.
    try:
        os.symlink(target, link)
    except FileExistsError:
        link.unlink()
        os.symlink(target, link)


def _ensure_user_link(directory: Path, name: str) -> None:
    link = directory / name
    target = f"{DATA_LINK}/{name}"
    try:
        if os.readlink(link) == target:
            return
    except OSError:
        pass  # missing, or not a link: (re)create it
    tmp = directory / f"..{name}.tmp{_writer()}"
    _symlink_over(target, tmp)
    os.replace(tmp, link)


def _remove_old_versions(directory: Path, keep: str) -> None:
    with os.scandir(directory) as entries:
        for entry in entries:
            if not entry.name.startswith("..") or entry.name in (keep, DATA_LINK):
                continue
            if _written_by_another_live_process(entry.name):
                continue  # a version it staged and is about to publish: not ours to remove
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)


def _written_by_another_live_process(name: str) -> bool:
    """Whether a version, a temporary link or a temporary file was made by another
    process that still runs (its name ends in ``.pid<N>``, or for an :func:`atomic_write`
    temporary in ``.<N>``). Two writers on one directory (two rotation services, or
    ``ca issue --out`` into a managed directory) then never delete what the other has
    staged but not yet published, which would leave ``..data`` dangling. Process ids are
    only told apart within one process namespace: writers in different containers
    sharing a volume are not. A process id reused after a crash only delays a leftover's
    removal."""
    last = name.rsplit(".", 1)[-1]
    if name.startswith(TEMP_PREFIX):
        pid_text = last
    elif last.startswith("pid"):
        pid_text = last[3:]
    else:
        return False  # no writer named: a leftover of an older layout
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid <= 1 or pid == os.getpid():  # (0 would name our process group)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        return True
    except OverflowError:
        return False
    return True


def current_version(directory: Path) -> Path | None:
    """The version directory ``..data`` points to, or None before the first write."""
    link = directory / DATA_LINK
    if not link.is_symlink():
        return None
    return directory / os.readlink(link)


def repair(directory: Path) -> None:
    """Finish or undo what an interrupted :func:`write_version` left behind: remove an
    unpublished version directory or a temporary link (not another running writer's),
    and temporary SDS documents, and restore the links to the
    published version's files (a crash right after the ``..data`` swap of a first write
    leaves none). The published version is never touched."""
    current = current_version(directory)
    if directory.is_dir():
        _remove_old_versions(directory, keep=current.name if current else "")
        # An SDS document's atomic write cut short (`--envoy-config`).
        for leftover in directory.glob(f"{TEMP_PREFIX}*"):
            if not _written_by_another_live_process(leftover.name):
                leftover.unlink(missing_ok=True)
    if current is not None and current.is_dir():  # (a dangling `..data`: the next renewal)
        for name in os.listdir(current):
            _ensure_user_link(directory, name)


def _svid_files(svid: X509Svid, bundle_pem: bytes) -> dict[str, bytes]:
    return {CERT_FILE: svid.chain_pem(), KEY_FILE: svid.private_key_pem(), BUNDLE_FILE: bundle_pem}


def write_svid_files(directory: Path, svid: X509Svid, bundle: TrustBundle) -> Path:
    """Publish an SVID (chain, key) and the trust bundle in the SDS layout."""
    return write_version(directory, _svid_files(svid, bundle.to_pem()), _SECRET)


def write_svid_files_batch(
    items: Sequence[tuple[Path, X509Svid]], bundle: TrustBundle
) -> dict[Path, OSError]:
    """Publish many SVIDs with two filesystem flushes in all, instead of several fsyncs per
    directory: stage every version, ``os.sync()``, swap every ``..data``, ``os.sync()``.
    Returns the directories that failed, with their error."""
    bundle_pem = bundle.to_pem()
    failed: dict[Path, OSError] = {}
    staged: list[tuple[Path, Path]] = []
    for directory, svid in items:
        try:
            staged.append(
                (
                    directory,
                    stage_version(directory, _svid_files(svid, bundle_pem), _SECRET, sync=False),
                )
            )
        except OSError as exc:
            failed[directory] = exc
    os.sync()  # every staged file is on disk before any directory points at it
    for directory, version in staged:
        try:
            publish_version(directory, version, sync=False)
        except OSError as exc:
            failed[directory] = exc
    os.sync()
    return failed


def envoy_secrets(
    directory: Path, cert_secret: str = CERT_SECRET, bundle_secret: str = BUNDLE_SECRET
) -> dict[str, dict[str, Any]]:
    """Envoy ``Secret`` resources reading this directory, keyed by secret name.

    Both watch the directory, so Envoy reloads certificate, key and bundle together when
    ``..data`` moves.
    """
    directory = directory.resolve()
    watched = {"path": str(directory)}
    return {
        cert_secret: {
            "@type": _SECRET_TYPE,
            "name": cert_secret,
            "tls_certificate": {
                "certificate_chain": {"filename": str(directory / CERT_FILE)},
                "private_key": {"filename": str(directory / KEY_FILE)},
                "watched_directory": watched,
            },
        },
        bundle_secret: {
            "@type": _SECRET_TYPE,
            "name": bundle_secret,
            "validation_context": {
                "trusted_ca": {"filename": str(directory / BUNDLE_FILE)},
                "watched_directory": watched,
            },
        },
    }


def write_envoy_sds_configs(
    directory: Path, cert_secret: str = CERT_SECRET, bundle_secret: str = BUNDLE_SECRET
) -> tuple[Path, Path]:
    """Write the two file-based SDS documents Envoy's ``path_config_source`` points at
    (Envoy wants one secret per SDS file). Returns (certificate config, bundle config)."""
    directory.mkdir(parents=True, exist_ok=True)
    secrets = envoy_secrets(directory, cert_secret, bundle_secret)
    paths = (directory / SDS_CERT_CONFIG, directory / SDS_BUNDLE_CONFIG)
    for path, name in zip(paths, (cert_secret, bundle_secret), strict=True):
        atomic_write(path, json.dumps({"resources": [secrets[name]]}, indent=2).encode())
    return paths
