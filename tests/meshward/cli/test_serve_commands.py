"""``meshward serve`` and ``meshward envoy-config`` on the command line."""

from __future__ import annotations

import json
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


def test_envoy_config_reads_the_tls_directory_through_sds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A relative --tls-dir is made absolute: Envoy may run from anywhere.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "svid").mkdir()
    assert main(["envoy-config", "--tls-dir", "svid"]) == 0
    out = capsys.readouterr()
    assert "sds-cert.json" in out.err  # written, as the directory had no SDS documents
    config = yaml.safe_load(out.out)
    context = config["static_resources"]["listeners"][0]["filter_chains"][0]["transport_socket"]
    [cert] = context["typed_config"]["common_tls_context"]["tls_certificate_sds_secret_configs"]
    document = Path(cert["sds_config"]["path_config_source"]["path"])
    assert document == tmp_path / "svid" / "sds-cert.json"
    secret = json.loads(document.read_text())["resources"][0]
    assert secret["name"] == cert["name"]
    assert secret["tls_certificate"]["watched_directory"]["path"] == str(tmp_path / "svid")
    # Present already: left alone, and nothing said.
    assert main(["envoy-config", "--tls-dir", "svid"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["envoy-config", "--tls-dir", "absent"]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_envoy_config_forwards_the_headers_the_policy_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.policy").write_text(
        'service app {\n  allow GET /x from any when request.headers["X-Partner"] == "acme"\n'
        '  allow GET /y from any unless has request.headers["x-debug"]\n}\n'
    )
    args = ["envoy-config", "--policy", str(tmp_path), "--header", "X-Tenant"]
    assert main(args) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    authz = hcm["typed_config"]["http_filters"][0]["typed_config"]
    forwarded = [p["exact"] for p in authz["allowed_headers"]["patterns"]]
    assert forwarded == ["x-forwarded-client-cert", "x-debug", "x-partner", "x-tenant"]
    assert main([*args, "--istio"]) == 0
    [provider] = yaml.safe_load(capsys.readouterr().out)["meshConfig"]["extensionProviders"]
    assert provider["envoyExtAuthzHttp"]["includeRequestHeadersInCheck"][-3:] == forwarded[1:]
    # meshward's own headers are Envoy's to set; a policy with errors is reported.
    assert main(["envoy-config", "--header", "x-meshward-peer-uri-san"]) == 2
    assert "set by Envoy" in capsys.readouterr().err
    assert main(["envoy-config", "--header", "bad name"]) == 2
    # A pseudo-header: HTTP mode warns that it cannot forward it; gRPC mode sends all.
    assert main(["envoy-config", "--header", ":path"]) == 0
    assert "cannot carry :path" in capsys.readouterr().err
    assert main(["envoy-config", "--mode", "grpc", "--header", "bad name"]) == 0
    (tmp_path / "b.policy").write_text("service app {\n  allow GET /x from nobody\n}\n")
    assert main(["envoy-config", "--policy", str(tmp_path / "b.policy")]) == 1


def test_serve_refuses_invalid_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "authz.yaml"
    config.write_text("policy: {paths: [x]}\nidentity: {mode: trust-everyone}\n")
    assert main(["serve", "--config", str(config)]) == 2
    assert "invalid settings" in capsys.readouterr().err
    assert main(["serve"]) == 2  # no policy source at all
