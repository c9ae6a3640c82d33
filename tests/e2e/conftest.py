"""Fixtures shared by the tests that drive a real Envoy."""

from __future__ import annotations

import os

import pytest

from meshward.testing.envoy import EnvoyError, envoy_binary


@pytest.fixture(scope="session")
def binary() -> str:
    """The Envoy binary from MESHWARD_ENVOY; missing, the test is skipped, or fails in CI."""
    try:
        return envoy_binary()
    except EnvoyError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
