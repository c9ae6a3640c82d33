"""The Envoy launcher other tests and benchmarks build on."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshward.testing.envoy import ENV_VAR, Envoy, EnvoyError, envoy_binary

pytestmark = pytest.mark.e2e

DIRECT = {
    "static_resources": {
        "listeners": [
            {
                "name": "hello",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [
                    {
                        "filters": [
                            {
                                "name": "envoy.filters.network.direct_response",
                                "typed_config": {
                                    "@type": "type.googleapis.com/envoy.extensions.filters."
                                    "network.direct_response.v3.Config",
                                    "response": {"inline_string": "hi"},
                                },
                            }
                        ]
                    }
                ],
            }
        ]
    }
}


def test_start_inspect_stop(tmp_path: Path, binary: str) -> None:
    envoy = Envoy(DIRECT, workdir=tmp_path, binary=binary)
    with envoy:
        assert envoy.admin_url.startswith("http://127.0.0.1:")
        assert envoy.listener_port("hello") > 0
        assert envoy.stats()["server.live"] == 1
        with pytest.raises(EnvoyError, match="no listener"):
            envoy.listener_port("nope")
    with pytest.raises(EnvoyError, match="not running"):
        envoy.admin("/ready")
    envoy.stop()  # stopping twice is harmless


def test_a_rejected_config_raises_with_envoys_reason(tmp_path: Path, binary: str) -> None:
    broken = {"static_resources": {"clusters": [{"name": "x", "type": "NO_SUCH_TYPE"}]}}
    with pytest.raises(EnvoyError, match="NO_SUCH_TYPE"):
        Envoy(broken, workdir=tmp_path, binary=binary).start(timeout=30)


def test_a_missing_binary_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "no-envoy-here"))
    with pytest.raises(EnvoyError, match=ENV_VAR):
        envoy_binary()
