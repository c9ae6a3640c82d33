"""``meshward ca ...``: create the CA, issue identities, publish the bundle, rotate, serve.

Exit codes: 0 done, 1 the CA refused (bad CSR, nothing to activate, ...), 2 usage error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from meshward.ca.authority import load_authority, load_pem_certificates, utcnow
from meshward.ca.csr import approve_csr
from meshward.ca.errors import CaError
from meshward.ca.fsio import replace_file
from meshward.ca.keys import KeyAlgorithm
from meshward.ca.manager import MAX_JWT_TTL, CaSettings, TrustDomainCa
from meshward.ca.rotation import RenewalPolicy, Rotator
from meshward.ca.sds_files import write_envoy_sds_configs, write_svid_files
from meshward.ca.spiffe_id import SpiffeId
from meshward.ca.store import FileStore
from meshward.ca_service.options import parse_duration, parse_socket, parse_workload

Handler = Callable[[argparse.Namespace], int]


def _guarded(handler: Handler) -> Handler:
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except CaError as exc:
            print(f"meshward ca: {exc}", file=sys.stderr)
            return 1
        except (ValueError, OSError) as exc:
            print(f"meshward ca: {exc}", file=sys.stderr)
            return 2

    return run


def _duration(text: str) -> dt.timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _spiffe_id(text: str) -> SpiffeId:
    try:
        return SpiffeId.parse(text)
    except CaError as exc:
        raise argparse.ArgumentTypeError(f"{exc} [{exc.code}]") from None


def _open(args: argparse.Namespace) -> TrustDomainCa:
    return TrustDomainCa.open(FileStore(args.dir))


def _write_or_print(data: bytes, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(data.decode())
    else:  # replaced whole: a reader, or a crash, never sees a truncated bundle
        replace_file(out, data)


def cmd_init(args: argparse.Namespace) -> int:
    settings = CaSettings(
        key_algorithm=KeyAlgorithm(args.key_algorithm),
        root_ttl=args.root_ttl,
        intermediate_ttl=args.intermediate_ttl,
        name_constraints=args.name_constraints,
        rotate_at=args.rotate_at,
        activation_delay=args.activation_delay,
    )
    upstream = None
    upstream_bundle: list[Any] = []
    if args.upstream_cert or args.upstream_key:
        if not (args.upstream_cert and args.upstream_key):
            raise ValueError("--upstream-cert and --upstream-key go together")
        upstream = load_authority(
            args.upstream_cert.read_bytes(),
            args.upstream_key.read_bytes(),
            trust_domain=args.trust_domain,
        )
        if args.upstream_bundle:
            upstream_bundle = load_pem_certificates(args.upstream_bundle.read_bytes())
    ca = TrustDomainCa.init(
        FileStore(args.dir),
        args.trust_domain,
        settings,
        upstream=upstream,
        upstream_bundle=upstream_bundle,
    )
    print(f"initialised CA for trust domain {ca.trust_domain} in {args.dir}")
    for gen in ca.generations():
        print(f"  {gen.name:<18} {gen.status:<9} expires {gen.not_after}")
    return 0


def cmd_issue(args: argparse.Namespace) -> int:
    from meshward.ca_service import BOOTSTRAP_AUDIENCE

    ca = _open(args)
    if args.bootstrap_token or args.jwt:
        audience = [BOOTSTRAP_AUDIENCE] if args.bootstrap_token else args.audience
        if not audience:
            raise ValueError("a JWT-SVID needs --audience")
        ttl = args.ttl or (MAX_JWT_TTL if args.bootstrap_token else dt.timedelta(minutes=5))
        print(ca.issue_jwt(args.spiffe_id, audience, ttl=ttl))
        return 0
    if args.out is None:
        raise ValueError("give --out DIRECTORY (or --jwt / --bootstrap-token)")
    svid = ca.issue_x509(
        args.spiffe_id, ttl=args.ttl or dt.timedelta(hours=1), dns_names=args.dns_name
    )
    write_svid_files(args.out, svid, ca.bundle())
    if args.envoy_config:
        write_envoy_sds_configs(args.out)
    print(f"issued {svid.spiffe_id} serial {svid.leaf.serial_number:x} until {svid.not_after}")
    return 0


def cmd_sign_csr(args: argparse.Namespace) -> int:
    ca = _open(args)
    approved = approve_csr(args.csr.read_bytes(), args.spiffe_id)
    svid = ca.issue_x509(approved.spiffe_id, approved.public_key, ttl=args.ttl)
    _write_or_print(svid.chain_pem(), args.out)
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    bundle = _open(args).bundle()
    data = bundle.to_pem() if args.format == "pem" else (bundle.to_json() + "\n").encode()
    _write_or_print(data, args.out)
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    ca = _open(args)
    if args.stage == "prepare":
        name = ca.prepare(root=args.root)
        print(f"prepared {name}; it is in the bundle and signs nothing until `rotate activate`")
    elif args.stage == "activate":
        print(f"activated {ca.activate()}")
    elif args.stage == "retire":
        retired = ca.retire()
        print(f"retired {', '.join(retired)}" if retired else "nothing can retire yet")
    else:
        print("\n".join(ca.maintain()) or "nothing is due")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    ca = _open(args)
    bundle = ca.bundle()
    now = utcnow()
    issued = {k: vars(v) for k, v in sorted(ca.state.issued.items())}
    generations = [vars(g) for g in ca.generations()]
    if args.json:
        doc = {
            "trust_domain": ca.trust_domain,
            "bundle_sequence": bundle.sequence,
            "generations": generations,
            "issued": issued,
        }
        print(json.dumps(doc, indent=2))
        return 0
    print(f"trust domain {ca.trust_domain}, bundle sequence {bundle.sequence}")
    print("CA generations:")
    for g in generations:
        where = "in bundle" if g["in_bundle"] else "removed"
        print(f"  {g['name']:<18} {g['role']:<12} {g['status']:<9} {where:<9} {g['not_after']}")
    print(f"issued ({len(issued)}):")
    for spiffe_id, rec in issued.items():
        left = dt.datetime.fromisoformat(rec["not_after"]) - now
        state = "expired" if left.total_seconds() <= 0 else f"expires in {left}".split(".")[0]
        print(f"  {spiffe_id}  serial {rec['serial']}  by {rec['issuer']}  {state}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    # The servers' frameworks load only for the command that runs them: every other
    # command (a lint in CI, say) starts without them.
    from meshward.ca_service.api import create_app
    from meshward.ca_service.metrics import CaMetrics
    from meshward.ca_service.service import RotationService
    from meshward.ca_service.workload_api import start_workload_api

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    ca = _open(args)
    metrics = CaMetrics()
    policy = RenewalPolicy(ttl=args.ttl, fraction=args.renew_at, jitter=args.jitter)
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    sockets = [socket.resolve() for _, socket in args.workload_api]
    if len(set(sockets)) != len(sockets):  # one would be replaced by the next
        raise ValueError("two --workload-api identities name the same socket")
    rotator = Rotator(ca, args.workload, policy)
    if args.envoy_config:
        for workload in args.workload:
            write_envoy_sds_configs(workload.directory)
    service = RotationService(ca, rotator, metrics, interval=args.interval)
    if args.once:
        report = service.run_once(force=args.force)
        return 1 if report.failed else 0
    stop = threading.Event()
    # uvicorn restores these after its own graceful shutdown and re-raises the signal, so
    # every mode ends here with a clean exit.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    servers = [
        start_workload_api(ca, spiffe_id, socket, policy, metrics, stop)
        for spiffe_id, socket in args.workload_api
    ]
    try:
        if args.listen is None:
            service.run(stop)
            return 0
        import uvicorn  # only the API mode needs the ASGI server

        host, _, port = args.listen.rpartition(":")
        loop = threading.Thread(target=service.run, args=(stop,), name="rotation", daemon=True)
        loop.start()
        app = create_app(ca, metrics, max_ttl=args.ttl)
        try:
            uvicorn.run(
                app,
                host=host or "127.0.0.1",
                port=int(port),
                log_level="warning",
                ssl_certfile=args.tls_cert,
                ssl_keyfile=args.tls_key,
            )
        finally:
            stop.set()
            loop.join(timeout=30)
        return 0
    finally:
        stop.set()
        for server in servers:
            server.stop(grace=5).wait(10)


def register(subparsers: Any) -> None:
    """Add the ``ca`` command group."""
    ca = subparsers.add_parser("ca", help="the built-in SPIFFE certificate authority")
    verbs = ca.add_subparsers(dest="ca_command", metavar="VERB", required=True)
    common = argparse.ArgumentParser(add_help=False)
    default_dir = os.environ.get("MESHWARD_CA_DIR")
    common.add_argument(
        "--dir",
        type=Path,
        default=Path(default_dir) if default_dir else None,
        required=default_dir is None,
        help="CA state directory (default: $MESHWARD_CA_DIR)",
    )

    p = verbs.add_parser("init", parents=[common], help="create a root and an intermediate")
    p.add_argument("--trust-domain", required=True)
    p.add_argument(
        "--key-algorithm",
        choices=[a.value for a in KeyAlgorithm],
        default=KeyAlgorithm.EC_P256,
        help="default ec-p256; Envoy's default TLS settings handshake with ec-p256 and RSA only",
    )
    p.add_argument("--root-ttl", type=_duration, default=dt.timedelta(days=365))
    p.add_argument("--intermediate-ttl", type=_duration, default=dt.timedelta(days=30))
    p.add_argument(
        "--rotate-at",
        type=float,
        default=0.5,
        help="replace a CA once this fraction of its life has passed (default 0.5)",
    )
    p.add_argument(
        "--activation-delay",
        type=_duration,
        default=dt.timedelta(minutes=10),
        help="how long a prepared CA is published before it signs (default 10m)",
    )
    p.add_argument(
        "--name-constraints",
        action="store_true",
        help="limit CA certificates to the trust domain (URI name constraint)",
    )
    p.add_argument("--upstream-cert", type=Path, help="use this CA (PEM, with its chain) as root")
    p.add_argument("--upstream-key", type=Path, help="private key of --upstream-cert")
    p.add_argument("--upstream-bundle", type=Path, help="trust anchors of the upstream CA")
    p.set_defaults(func=_guarded(cmd_init))

    p = verbs.add_parser("issue", parents=[common], help="issue an X.509-SVID or a JWT-SVID")
    p.add_argument("spiffe_id", type=_spiffe_id, metavar="SPIFFE_ID")
    p.add_argument("--out", type=Path, help="write cert/key/bundle here in the SDS layout")
    p.add_argument("--envoy-config", action="store_true", help="also write Envoy SDS files")
    p.add_argument(
        "--dns-name", action="append", default=[], help="add a DNS SAN (for a TLS server)"
    )
    p.add_argument("--ttl", type=_duration)
    p.add_argument("--jwt", action="store_true", help="print a JWT-SVID instead")
    p.add_argument("--audience", action="append", default=[])
    p.add_argument(
        "--bootstrap-token", action="store_true", help="print a token for the CA's HTTP API"
    )
    p.set_defaults(func=_guarded(cmd_issue))

    p = verbs.add_parser("sign-csr", parents=[common], help="sign a workload's CSR")
    p.add_argument("--csr", type=Path, required=True)
    p.add_argument("--spiffe-id", type=_spiffe_id, required=True)
    p.add_argument("--ttl", type=_duration, default=dt.timedelta(hours=1))
    p.add_argument("--out", type=Path, help="write the chain here instead of stdout")
    p.set_defaults(func=_guarded(cmd_sign_csr))

    p = verbs.add_parser("bundle", parents=[common], help="print the trust bundle")
    p.add_argument("--format", choices=["pem", "jwks"], default="pem")
    p.add_argument("--out", type=Path)
    p.set_defaults(func=_guarded(cmd_bundle))

    p = verbs.add_parser("rotate", parents=[common], help="run a CA rotation stage")
    p.add_argument("stage", choices=["prepare", "activate", "retire", "auto"])
    p.add_argument("--root", action="store_true", help="prepare a new root too")
    p.set_defaults(func=_guarded(cmd_rotate))

    p = verbs.add_parser("status", parents=[common], help="CA generations and issued SVIDs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_guarded(cmd_status))

    p = verbs.add_parser("serve", parents=[common], help="keep workload SVIDs fresh")
    p.add_argument(
        "--workload",
        type=parse_workload,
        action="append",
        default=[],
        metavar="SPIFFE_ID=DIR",
        help="a workload and its SDS directory (repeatable)",
    )
    p.add_argument("--ttl", type=_duration, default=dt.timedelta(hours=1))
    p.add_argument("--renew-at", type=float, default=0.5, help="fraction of lifetime")
    p.add_argument("--jitter", type=float, default=0.1, help="± fraction of lifetime")
    p.add_argument("--interval", type=_duration, default=dt.timedelta(seconds=30))
    p.add_argument("--envoy-config", action="store_true", help="write Envoy SDS files")
    p.add_argument("--listen", metavar="HOST:PORT", help="also serve the HTTP API")
    p.add_argument("--tls-cert", type=Path, help="serve the HTTP API over TLS with this chain")
    p.add_argument("--tls-key", type=Path, help="private key of --tls-cert")
    p.add_argument(
        "--workload-api",
        type=parse_socket,
        action="append",
        default=[],
        metavar="SPIFFE_ID=SOCKET",
        help="serve the SPIFFE Workload API for that identity on a Unix socket (repeatable)",
    )
    p.add_argument("--once", action="store_true", help="one pass, then exit")
    p.add_argument("--force", action="store_true", help="with --once: renew every workload")
    p.set_defaults(func=_guarded(cmd_serve))
