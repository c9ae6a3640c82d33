"""``meshward serve`` (the ext_authz service) and ``meshward envoy-config`` (Envoy's side)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError


def register(subparsers: Any) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="run the ext_authz service Envoy calls (HTTP mode, and gRPC mode if enabled)",
        description="Run the ext_authz service. Settings come from --config (YAML), then "
        "MESHWARD_AUTHZ_* environment variables, then the flags below.",
    )
    serve.add_argument("--config", help="settings file (YAML); see docs/ext_authz.md")
    serve.add_argument(
        "--policy",
        action="append",
        metavar="PATH",
        help="policy file or directory (repeatable); replaces the settings' policy source",
    )
    serve.add_argument("--bundle", metavar="FILE", help="compiled policy bundle to serve")
    serve.add_argument("--host", help="address of the HTTP listener")
    serve.add_argument("--port", type=int, help="port of the HTTP listener")
    serve.add_argument("--grpc-port", type=int, help="enable gRPC mode on this port")
    serve.set_defaults(func=_serve)

    envoy = subparsers.add_parser(
        "envoy-config",
        help="print an Envoy bootstrap (and an Istio snippet) that calls meshward",
        description="Print a working Envoy bootstrap with the ext_authz filter in HTTP or "
        "gRPC mode, or an Istio meshConfig extensionProviders snippet.",
    )
    envoy.add_argument("--mode", choices=("http", "grpc"), default="http")
    envoy.add_argument(
        "--istio", action="store_true", help="print the Istio extensionProviders snippet instead"
    )
    envoy.add_argument(
        "--listen-port",
        type=int,
        default=10000,
        help="port Envoy listens on for the protected service",
    )
    envoy.add_argument(
        "--upstream-port",
        type=int,
        default=8080,
        help="port of the protected application on 127.0.0.1",
    )
    envoy.add_argument(
        "--authz-host",
        help="address of meshward serve (default 127.0.0.1; with --istio, the in-cluster "
        "service name meshward.meshward-system.svc.cluster.local)",
    )
    envoy.add_argument("--authz-port", type=int, help="port of meshward serve (mode default)")
    envoy.add_argument("--admin-port", type=int, default=9901)
    envoy.add_argument(
        "--destination",
        default="app",
        help="service name sent to meshward for this listener (default: app; empty: "
        "meshward names it from the workload's SPIFFE ID or the Host, see "
        "destination.principals)",
    )
    envoy.add_argument(
        "--tls-dir",
        metavar="DIR",
        type=Path,
        help="require mTLS on the listener: DIR holds cert.pem, key.pem, bundle.pem (as "
        "`meshward ca` writes them), read through SDS so renewals need no restart",
    )
    envoy.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME",
        help="a client header the policy reads (`request.headers[...]`): HTTP mode sends "
        "meshward only the headers listed (repeatable)",
    )
    envoy.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar="PATH",
        help="send along every client header these policy files or folders read (repeatable)",
    )
    envoy.add_argument("--timeout-ms", type=int, default=250, help="ext_authz call timeout")
    envoy.add_argument(
        "--check-prefix",
        default="/check",
        help="HTTP mode: the path prefix of checks (meshward's http.check_prefix)",
    )
    envoy.set_defaults(func=_envoy_config)


def _serve(args: argparse.Namespace) -> int:
    from meshward.authz.server import run
    from meshward.authz.settings import load_settings

    flags: dict[str, Any] = {}
    if args.policy:
        flags["policy"] = {"paths": args.policy, "bundle": None}
    if args.bundle:
        flags["policy"] = {"paths": [], "bundle": args.bundle}
    http = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if http:
        flags["http"] = http
    if args.grpc_port is not None:
        flags["grpc"] = {"enabled": True, "port": args.grpc_port}
    try:
        settings = load_settings(args.config, flags)
    except (ValidationError, ValueError, OSError) as exc:
        print(f"meshward serve: invalid settings: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return run(settings)


def _envoy_config(args: argparse.Namespace) -> int:
    from meshward.authz import envoy_config

    from .loading import EXIT_USAGE, load_or_report

    names = list(args.header)
    if args.policy:
        loaded = load_or_report(args.policy, "human")
        if isinstance(loaded, int):
            return loaded
        names += loaded.policy.request_headers()
    headers: tuple[str, ...] = ()
    if args.mode == "http":  # gRPC checks carry every header
        try:
            headers, unforwardable = envoy_config.forwarded_headers(names)
        except ValueError as exc:
            print(f"meshward envoy-config: {exc}", file=sys.stderr)
            return EXIT_USAGE
        for name in unforwardable:
            print(
                f"meshward envoy-config: warning: an HTTP check cannot carry {name}; "
                "rules reading it see no value in HTTP mode (gRPC mode sees it)",
                file=sys.stderr,
            )
    if args.istio:
        host = args.authz_host or envoy_config.ISTIO_SERVICE
        snippet = envoy_config.istio_snippet(
            args.mode, host, args.authz_port, args.check_prefix, headers
        )
        sys.stdout.write(snippet)
        return 0
    options = envoy_config.EnvoyOptions(
        mode=args.mode,
        listen_port=args.listen_port,
        upstream_port=args.upstream_port,
        authz_host=args.authz_host or "127.0.0.1",
        authz_port=args.authz_port,
        admin_port=args.admin_port,
        destination=args.destination,
        tls_dir=None if args.tls_dir is None else str(args.tls_dir.resolve()),
        timeout_ms=args.timeout_ms,
        check_prefix=args.check_prefix,
        headers=headers,
    )
    if args.tls_dir is not None and not _sds_documents(args.tls_dir):
        return EXIT_USAGE
    sys.stdout.write(envoy_config.render_yaml(envoy_config.bootstrap(options)))
    return 0


def _sds_documents(tls_dir: Path) -> bool:
    """Make sure the TLS directory holds the SDS documents the listener reads its
    certificate through (as `meshward ca ... --envoy-config` writes them): write them when
    missing, saying so. False, with the reason on stderr, when that cannot be done."""
    from meshward.ca.sds_files import SDS_BUNDLE_CONFIG, SDS_CERT_CONFIG, write_envoy_sds_configs

    if not tls_dir.is_dir():
        print(f"meshward envoy-config: --tls-dir {tls_dir}: not a directory", file=sys.stderr)
        return False
    if (tls_dir / SDS_CERT_CONFIG).is_file() and (tls_dir / SDS_BUNDLE_CONFIG).is_file():
        return True
    try:
        written = write_envoy_sds_configs(tls_dir)
    except OSError as exc:
        print(f"meshward envoy-config: cannot write the SDS documents: {exc}", file=sys.stderr)
        return False
    names = " and ".join(str(path) for path in written)
    print(
        f"meshward envoy-config: wrote {names} (Envoy reads the certificate through them)",
        file=sys.stderr,
    )
    return True
