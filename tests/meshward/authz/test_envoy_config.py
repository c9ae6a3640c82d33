"""The generated Envoy bootstrap is fail-closed and sets identity headers itself (loading it
into a real Envoy is the end-to-end tests' job)."""

from __future__ import annotations

from typing import Any

import yaml

from meshward.authz import envoy_config
from meshward.authz.envoy_config import EnvoyOptions, bootstrap


def _hcm(config: dict[str, Any]) -> dict[str, Any]:
    listener = config["static_resources"]["listeners"][0]
    return dict(listener["filter_chains"][0]["filters"][0]["typed_config"])


def _authz(config: dict[str, Any]) -> dict[str, Any]:
    return dict(_hcm(config)["http_filters"][0]["typed_config"])


def test_http_mode_is_fail_closed_and_sets_identity_headers() -> None:
    config = bootstrap(EnvoyOptions(mode="http", authz_port=7000, destination="reviews"))
    authz = _authz(config)
    assert authz["failure_mode_allow"] is False
    assert authz["status_on_error"] == {"code": 403}
    service = authz["http_service"]
    assert service["server_uri"]["uri"] == "http://127.0.0.1:7000"
    added = {h["key"]: h["value"] for h in service["authorization_request"]["headers_to_add"]}
    assert added == {
        "x-meshward-peer-uri-san": "%DOWNSTREAM_PEER_URI_SAN%",
        "x-meshward-destination": "reviews",
        "x-meshward-destination-port": "%DOWNSTREAM_LOCAL_PORT%",
        "x-meshward-destination-principal": "%DOWNSTREAM_LOCAL_URI_SAN%",
    }
    forwarded = [p["exact"] for p in authz["allowed_headers"]["patterns"]]
    assert "x-meshward-peer-uri-san" not in forwarded
    hcm = _hcm(config)
    assert hcm["forward_client_cert_details"] == "SANITIZE_SET"
    assert hcm["set_current_client_cert_details"] == {"uri": True}


def test_grpc_mode_names_the_destination_per_route() -> None:
    config = bootstrap(EnvoyOptions(mode="grpc", destination="reviews"))
    assert _authz(config)["grpc_service"]["envoy_grpc"]["cluster_name"] == "meshward_authz"
    route = _hcm(config)["route_config"]["virtual_hosts"][0]["routes"][0]
    per_route = route["typed_per_filter_config"]["envoy.filters.http.ext_authz"]
    assert per_route["check_settings"]["context_extensions"] == {"destination": "reviews"}
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    assert "typed_extension_protocol_options" in clusters["meshward_authz"]  # HTTP/2
    port = clusters["meshward_authz"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    assert port["endpoint"]["address"]["socket_address"]["port_value"] == 9192


def test_without_a_destination_neither_mode_names_one() -> None:
    http = _authz(bootstrap(EnvoyOptions(destination="")))["http_service"]
    keys = [h["key"] for h in http["authorization_request"]["headers_to_add"]]
    assert "x-meshward-destination" not in keys
    assert "x-meshward-destination-principal" in keys
    route = _hcm(bootstrap(EnvoyOptions(mode="grpc", destination="")))["route_config"]
    assert "typed_per_filter_config" not in route["virtual_hosts"][0]["routes"][0]


def test_tls_dir_requires_client_certificates() -> None:
    config = bootstrap(EnvoyOptions(tls_dir="/etc/svid"))
    chain = config["static_resources"]["listeners"][0]["filter_chains"][0]
    context = chain["transport_socket"]["typed_config"]
    assert context["require_client_certificate"] is True
    tls = context["common_tls_context"]
    # Through file-based SDS, so that Envoy picks up renewed certificates and bundles.
    [cert] = tls["tls_certificate_sds_secret_configs"]
    assert cert["sds_config"]["path_config_source"]["path"] == "/etc/svid/sds-cert.json"
    bundle = tls["validation_context_sds_secret_config"]["sds_config"]["path_config_source"]
    assert bundle["path"] == "/etc/svid/sds-bundle.json"
    assert "tls_certificates" not in tls and "validation_context" not in tls


def test_render_round_trips_and_istio_snippets() -> None:
    config = bootstrap(EnvoyOptions())
    assert yaml.safe_load(envoy_config.render_yaml(config)) == config
    http = yaml.safe_load(envoy_config.istio_snippet("http"))
    [provider] = http["meshConfig"]["extensionProviders"]
    assert provider["envoyExtAuthzHttp"]["pathPrefix"] == "/check"
    extra = provider["envoyExtAuthzHttp"]["includeAdditionalHeadersInCheck"]
    assert extra["x-meshward-destination-port"] == "%DOWNSTREAM_LOCAL_PORT%"
    assert extra["x-meshward-destination-principal"] == "%DOWNSTREAM_LOCAL_URI_SAN%"
    # Headers Envoy writes are never also taken from the client.
    assert not set(extra) & set(provider["envoyExtAuthzHttp"]["includeRequestHeadersInCheck"])
    grpc = yaml.safe_load(envoy_config.istio_snippet("grpc", "authz.example", 1234))
    [provider] = grpc["meshConfig"]["extensionProviders"]
    assert provider["envoyExtAuthzGrpc"] == {
        "service": "authz.example",
        "port": 1234,
        "timeout": "0.25s",
    }
