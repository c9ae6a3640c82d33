"""`meshward check | compile | eval | explain`: the policy language's verbs."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from meshward.ca.fsio import replace_file
from meshward.policy import (
    BundleError,
    CompiledPolicy,
    Request,
    compile_policy,
    evaluate,
    explain,
)
from meshward.policy import bundle as bundles
from meshward.policy.diagnostics import render_json
from meshward.policy.loader import load_bundle
from meshward.policy.testing import render_trace

from .loading import EXIT_OK, EXIT_USAGE, load_or_report


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("check", help="parse and check policies; nothing else")
    _paths(p)
    _error_format(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("compile", help="check policies and write a compiled bundle")
    _paths(p)
    _error_format(p)
    p.add_argument("-o", "--output", required=True, help="bundle file to write")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("eval", help="decide requests (JSON, or JSON lines) against policies")
    p.add_argument("policy", nargs="+", help="policy files/directories, or one bundle file")
    p.add_argument("--request", required=True, help="request JSON file, or - for stdin")
    _error_format(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("explain", help="decide one request and say why each rule (not) matched")
    _paths(p)
    p.add_argument("--request", required=True, help="request JSON file, or - for stdin")
    p.add_argument("--format", choices=("human", "json"), default="human")
    _error_format(p)
    p.set_defaults(func=cmd_explain)


def _paths(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="policy files or directories")


def _error_format(p: argparse.ArgumentParser) -> None:
    p.add_argument("--error-format", choices=("human", "json"), default="human")


def cmd_check(args: argparse.Namespace) -> int:
    loaded = load_or_report(args.paths, args.error_format)
    if isinstance(loaded, int):
        return loaded
    if args.error_format == "json":
        print(render_json(()))
    else:
        rules = len(loaded.policy.rules())
        print(
            f"ok: {len(loaded.files)} files, {len(loaded.policy.services)} services, {rules} rules"
        )
    return EXIT_OK


def cmd_compile(args: argparse.Namespace) -> int:
    loaded = load_or_report(args.paths, args.error_format)
    if isinstance(loaded, int):
        return loaded
    try:  # replaced whole: a server rereading it never finds half a bundle
        replace_file(Path(args.output), bundles.dumps(loaded.policy).encode())
    except OSError as exc:
        print(f"meshward: cannot write the bundle: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote {args.output}: {len(loaded.policy.rules())} rules", file=sys.stderr)
    return EXIT_OK


def _compiled(paths: list[str], error_format: str) -> CompiledPolicy | int:
    if len(paths) == 1 and Path(paths[0]).is_file() and not paths[0].endswith(".policy"):
        try:
            return load_bundle(paths[0])
        except (BundleError, OSError) as exc:
            print(f"meshward: {paths[0]}: {exc}", file=sys.stderr)
            return EXIT_USAGE
    loaded = load_or_report(paths, error_format)
    return loaded if isinstance(loaded, int) else compile_policy(loaded.policy)


# What reading requests may raise besides OSError: RequestError, JSON and UTF-8 errors are
# ValueErrors; RecursionError is JSON nested too deeply.
_BAD_REQUEST = (ValueError, RecursionError)


def read_requests(source: str) -> Iterator[Request]:
    """Requests from a file or stdin: one JSON document, a JSON array, or JSON lines."""
    stream: TextIO = sys.stdin if source == "-" else open(source, encoding="utf-8")  # noqa: SIM115
    with stream:
        text = stream.read()
    try:
        doc: Any = json.loads(text)
        docs = doc if isinstance(doc, list) else [doc]
    except json.JSONDecodeError:
        docs = [json.loads(line) for line in text.splitlines() if line.strip()]
    for d in docs:
        yield Request.from_json(d)


def _bad_request(exc: BaseException) -> int:
    why = "JSON nested too deeply" if isinstance(exc, RecursionError) else str(exc)
    print(f"meshward: bad request: {why}", file=sys.stderr)
    return EXIT_USAGE


def cmd_eval(args: argparse.Namespace) -> int:
    compiled = _compiled(args.policy, args.error_format)
    if isinstance(compiled, int):
        return compiled
    try:
        for request in read_requests(args.request):
            print(json.dumps(evaluate(compiled, request).to_json()))
    except (OSError, *_BAD_REQUEST) as exc:
        return _bad_request(exc)
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    loaded = load_or_report(args.paths, args.error_format)
    if isinstance(loaded, int):
        return loaded
    try:
        requests = list(read_requests(args.request))
    except (OSError, *_BAD_REQUEST) as exc:
        return _bad_request(exc)
    for request in requests:
        ex = explain(loaded.policy, request)
        if args.format == "json":
            print(
                json.dumps(
                    {
                        "decision": ex.decision.to_json(),
                        "canonical_path": ex.canonical_path,
                        "rules": [
                            {
                                "rule": t.rule_id,
                                "effect": t.effect,
                                "audit": t.audit,
                                "matched": t.matched,
                                "why": list(t.reasons),
                                "location": t.span,
                            }
                            for t in ex.traces
                        ],
                    }
                )
            )
            continue
        d = ex.decision
        verdict = "ALLOW" if d.allowed else "DENY"
        print(f"{verdict} {request.method} {request.path} -> {ex.destination}: {d.reason}")
        for a in d.audit:
            print(f"  audit: {a}")
        for e in d.errors:
            print(f"  error in {e.rule_id}: {e.message}")
        for line in render_trace(ex):
            print(f"  {line}")
    return EXIT_OK
