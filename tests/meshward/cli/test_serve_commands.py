"""``meshward serve`` and ``meshward envoy-config`` on the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from meshward.cli import main


def test_envoy_config_prints_a_bootstrap_and_an_istio_snippet(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["envoy-config", "--mode", "grpc", "--authz-port", "7001"]) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    clusters = {c["name"] for c in config["static_resources"]["clusters"]}
    assert clusters == {"app", "meshward_authz"}
    assert main(["envoy-config", "--istio", "--mode", "http"]) == 0
    [provider] = yaml.safe_load(capsys.readouterr().out)["meshConfig"]["extensionProviders"]
    assert provider["name"] == "meshward-http"
    assert provider["envoyExtAuthzHttp"]["service"] == "meshward.meshward-system.svc.cluster.local"


def test_envoy_config_follows_a_custom_check_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["envoy-config", "--check-prefix", "/authz"]) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    [authz, _] = hcm["typed_config"]["http_filters"]
    assert authz["typed_config"]["http_service"]["path_prefix"] == "/authz"
    assert main(["envoy-config", "--istio", "--check-prefix", "/authz"]) == 0
    [provider] = yaml.safe_load(capsys.readouterr().out)["meshConfig"]["extensionProviders"]
    assert provider["envoyExtAuthzHttp"]["pathPrefix"] == "/authz"


def test_serve_refuses_invalid_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "authz.yaml"
    config.write_text("policy: {paths: [x]}\nidentity: {mode: trust-everyone}\n")
    assert main(["serve", "--config", str(config)]) == 2
    assert "invalid settings" in capsys.readouterr().err
    assert main(["serve"]) == 2  # no policy source at all
