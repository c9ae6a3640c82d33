"""Envoy's side of the contract: a bootstrap that calls meshward, and an Istio snippet.

The generated listener is what makes identity headers safe to trust (see
``docs/ext_authz.md``): Envoy sets ``x-meshward-peer-uri-san`` itself from the TLS handshake
(``headers_to_add`` overrides any copy the client sent), forwards only the headers listed
in ``allowed_headers`` to meshward, and rewrites ``x-forwarded-client-cert`` with
``SANITIZE_SET`` so the only element is the one this Envoy wrote.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from meshward.ca.sds_files import (
    BUNDLE_SECRET,
    CERT_SECRET,
    SDS_BUNDLE_CONFIG,
    SDS_CERT_CONFIG,
)

_T = "type.googleapis.com/envoy.extensions."
HCM = _T + "filters.network.http_connection_manager.v3.HttpConnectionManager"
EXT_AUTHZ = _T + "filters.http.ext_authz.v3.ExtAuthz"
EXT_AUTHZ_PER_ROUTE = _T + "filters.http.ext_authz.v3.ExtAuthzPerRoute"
ROUTER = _T + "filters.http.router.v3.Router"
TLS_DOWNSTREAM = _T + "transport_sockets.tls.v3.DownstreamTlsContext"
TLS_UPSTREAM = _T + "transport_sockets.tls.v3.UpstreamTlsContext"
HTTP_OPTIONS = _T + "upstreams.http.v3.HttpProtocolOptions"

DEFAULT_AUTHZ_PORTS = {"http": 9191, "grpc": 9192}
ISTIO_SERVICE = "meshward.meshward-system.svc.cluster.local"  # meshward's Service in a mesh
PEER_HEADER = "x-meshward-peer-uri-san"
DESTINATION_HEADER = "x-meshward-destination"
DESTINATION_PORT_HEADER = "x-meshward-destination-port"
DESTINATION_PRINCIPAL_HEADER = "x-meshward-destination-principal"
# What Envoy sets on the check request only (headers_to_add), never for the application.
CHECK_HEADERS = (
    PEER_HEADER,
    DESTINATION_HEADER,
    DESTINATION_PORT_HEADER,
    DESTINATION_PRINCIPAL_HEADER,
)
# The port the request arrived on (the original destination port behind a redirect), and
# the identity of the workload it arrived for (the URI SAN of the certificate it serves).
LOCAL_PORT = "%DOWNSTREAM_LOCAL_PORT%"
LOCAL_URI_SAN = "%DOWNSTREAM_LOCAL_URI_SAN%"
# What meshward may set on the request to the application, and show a denied client.
UPSTREAM_HEADER_PATTERNS = [{"prefix": "x-meshward-"}]
CLIENT_HEADER_PATTERNS = [
    {"exact": "x-meshward-decision-id"},
    {"exact": "x-meshward-rule"},
    {"exact": "content-type"},
    {"exact": "www-authenticate"},
]


@dataclass(frozen=True, slots=True)
class EnvoyOptions:
    """What varies between deployments of the generated bootstrap."""

    mode: Literal["http", "grpc"] = "http"
    listen_port: int = 10000
    upstream_port: int = 8080
    authz_host: str = "127.0.0.1"
    authz_port: int | None = None
    admin_port: int = 9901
    destination: str = "app"  # empty: meshward maps the workload identity or the Host
    # cert.pem, key.pem, bundle.pem and their SDS documents: require mTLS downstream
    tls_dir: str | None = None
    timeout_ms: int = 250
    check_prefix: str = "/check"
    listen_host: str = "127.0.0.1"
    # Client headers the policy reads (HTTP mode sends only those listed; gRPC sends all).
    headers: tuple[str, ...] = ()


# An HTTP field name (RFC 9110's token).
_FIELD_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def forwarded_headers(names: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Client headers to send along with each HTTP check (lower-case, sorted, without
    duplicates or the ones Envoy always sends), and the names among ``names`` that no
    HTTP check can carry (pseudo-headers such as ``:path``). Raises ValueError for
    meshward's own headers, which only Envoy may set, and for what is no header name."""
    out = set()
    unforwardable = set()
    for name in names:
        lower = name.lower()
        if lower in _ALWAYS_SENT:
            continue
        if lower.startswith(":"):
            unforwardable.add(lower)
            continue
        if not _FIELD_NAME.fullmatch(name):
            raise ValueError(f"not a header name: {name!r}")
        if lower.startswith("x-meshward-"):
            raise ValueError(f"{lower}: meshward's own headers are set by Envoy, never forwarded")
        out.add(lower)
    return tuple(sorted(out)), tuple(sorted(unforwardable))


# What Envoy's HTTP check sends anyway, and the XFCC header the config always forwards.
_ALWAYS_SENT = {"host", ":authority", "content-length", "authorization", "x-forwarded-client-cert"}


def _address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def static_cluster(name: str, host: str, port: int, http2: bool = False) -> dict[str, Any]:
    """A cluster of one static endpoint (HTTP/2 for gRPC)."""
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _address(host, port)}}]}],
        },
    }
    if http2:
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": HTTP_OPTIONS,
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    return cluster


def tls_context(tls_dir: str | Path, downstream: bool, sni: str | None = None) -> dict[str, Any]:
    """A transport socket with this directory's certificate, key and trust bundle, read
    through the file-based SDS documents beside them (``sds-cert.json``,
    ``sds-bundle.json``: see :func:`meshward.ca.sds_files.write_envoy_sds_configs`). Envoy
    reloads SDS secrets when the directory's files move, so a renewed certificate or a new
    trust bundle is served without a restart; plain file names would be read once.
    Downstream contexts require a client certificate (mTLS)."""
    d = Path(tls_dir)

    def secret(name: str, document: str) -> dict[str, Any]:
        source = {"path_config_source": {"path": str(d / document)}, "resource_api_version": "V3"}
        return {"name": name, "sds_config": source}

    common = {
        "tls_certificate_sds_secret_configs": [secret(CERT_SECRET, SDS_CERT_CONFIG)],
        "validation_context_sds_secret_config": secret(BUNDLE_SECRET, SDS_BUNDLE_CONFIG),
    }
    context: dict[str, Any]
    if downstream:
        context = {
            "@type": TLS_DOWNSTREAM,
            "require_client_certificate": True,
            "common_tls_context": common,
        }
    else:
        context = {"@type": TLS_UPSTREAM, "common_tls_context": common}
        if sni:
            context["sni"] = sni
    return {"name": "envoy.transport_sockets.tls", "typed_config": context}


def ext_authz_filter(opts: EnvoyOptions) -> dict[str, Any]:
    """The ext_authz HTTP filter: fail closed (no failure_mode_allow, 403 on error)."""
    timeout = f"{opts.timeout_ms / 1000:g}s"
    config: dict[str, Any] = {
        "@type": EXT_AUTHZ,
        "transport_api_version": "V3",
        "failure_mode_allow": False,
        "status_on_error": {"code": 403},
    }
    port = opts.authz_port or DEFAULT_AUTHZ_PORTS[opts.mode]
    if opts.mode == "http":
        config["http_service"] = {
            "server_uri": {
                "uri": f"http://{opts.authz_host}:{port}",
                "cluster": "meshward_authz",
                "timeout": timeout,
            },
            "path_prefix": opts.check_prefix,
            "authorization_request": {
                # Set by Envoy from the handshake; overrides whatever the client sent.
                "headers_to_add": [
                    {"key": PEER_HEADER, "value": "%DOWNSTREAM_PEER_URI_SAN%"},
                    *(
                        [{"key": DESTINATION_HEADER, "value": opts.destination}]
                        if opts.destination
                        else []
                    ),
                    {"key": DESTINATION_PORT_HEADER, "value": LOCAL_PORT},
                    {"key": DESTINATION_PRINCIPAL_HEADER, "value": LOCAL_URI_SAN},
                ],
            },
            "authorization_response": {
                "allowed_upstream_headers": {"patterns": UPSTREAM_HEADER_PATTERNS},
                "allowed_client_headers": {"patterns": CLIENT_HEADER_PATTERNS},
            },
        }
        # Only these client headers reach meshward (beyond Host, Method, Path,
        # Content-Length and Authorization): never an identity header the client made up.
        forwarded = ("x-forwarded-client-cert", *opts.headers)
        config["allowed_headers"] = {"patterns": [{"exact": h} for h in forwarded]}
    else:
        config["grpc_service"] = {
            "envoy_grpc": {"cluster_name": "meshward_authz"},
            "timeout": timeout,
        }
    return {"name": "envoy.filters.http.ext_authz", "typed_config": config}


def bootstrap(opts: EnvoyOptions) -> dict[str, Any]:
    """A complete Envoy bootstrap: one listener protecting the application on
    ``upstream_port`` with meshward's ext_authz, the two clusters, and the admin listener."""
    port = opts.authz_port or DEFAULT_AUTHZ_PORTS[opts.mode]
    route: dict[str, Any] = {"match": {"prefix": "/"}, "route": {"cluster": "app"}}
    if opts.mode == "grpc" and opts.destination:
        # gRPC mode names the destination per route, as context_extensions.
        route["typed_per_filter_config"] = {
            "envoy.filters.http.ext_authz": {
                "@type": EXT_AUTHZ_PER_ROUTE,
                "check_settings": {"context_extensions": {"destination": opts.destination}},
            }
        }
    hcm: dict[str, Any] = {
        "@type": HCM,
        "stat_prefix": "ingress",
        "codec_type": "AUTO",
        # The only XFCC element meshward sees is the one this Envoy writes, from the
        # handshake; a client-sent header is replaced.
        "forward_client_cert_details": "SANITIZE_SET",
        "set_current_client_cert_details": {"uri": True},
        "route_config": {
            "name": "local",
            "virtual_hosts": [
                {
                    "name": "app",
                    "domains": ["*"],
                    "routes": [route],
                    # Envoy sets these for meshward's check alone: a client's copies must
                    # not reach the application either.
                    "request_headers_to_remove": list(CHECK_HEADERS),
                }
            ],
        },
        "http_filters": [
            ext_authz_filter(opts),
            {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}},
        ],
    }
    chain: dict[str, Any] = {
        "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]
    }
    if opts.tls_dir:
        chain["transport_socket"] = tls_context(opts.tls_dir, downstream=True)
    return {
        "admin": {"address": _address("127.0.0.1", opts.admin_port)},
        "static_resources": {
            "listeners": [
                {
                    "name": "ingress",
                    "address": _address(opts.listen_host, opts.listen_port),
                    "filter_chains": [chain],
                }
            ],
            "clusters": [
                static_cluster("app", "127.0.0.1", opts.upstream_port),
                static_cluster("meshward_authz", opts.authz_host, port, http2=opts.mode == "grpc"),
            ],
        },
    }


def istio_snippet(
    mode: str,
    host: str = ISTIO_SERVICE,
    port: int | None = None,
    check_prefix: str = "/check",
    headers: tuple[str, ...] = (),
) -> str:
    """An Istio ``meshConfig.extensionProviders`` entry for a CUSTOM AuthorizationPolicy;
    ``headers``: client headers the policy reads (HTTP mode forwards only those listed)."""
    port = port or DEFAULT_AUTHZ_PORTS[mode]
    if mode == "grpc":
        provider: dict[str, Any] = {
            "name": "meshward-grpc",
            "envoyExtAuthzGrpc": {"service": host, "port": port, "timeout": "0.25s"},
        }
    else:
        provider = {
            "name": "meshward-http",
            "envoyExtAuthzHttp": {
                "service": host,
                "port": port,
                "timeout": "0.25s",
                "pathPrefix": check_prefix,
                "includeRequestHeadersInCheck": [
                    "authorization",
                    "x-forwarded-client-cert",
                    *headers,
                ],
                "includeAdditionalHeadersInCheck": {
                    PEER_HEADER: "%DOWNSTREAM_PEER_URI_SAN%",
                    DESTINATION_PORT_HEADER: LOCAL_PORT,
                    DESTINATION_PRINCIPAL_HEADER: LOCAL_URI_SAN,
                },
                "headersToUpstreamOnAllow": ["x-meshward-*"],
                "headersToDownstreamOnDeny": [p["exact"] for p in CLIENT_HEADER_PATTERNS],
            },
        }
    doc = {"meshConfig": {"extensionProviders": [provider]}}
    return "# Istio: merge into your IstioOperator / meshConfig\n" + render_yaml(doc)


def render_yaml(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
