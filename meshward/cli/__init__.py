"""The ``meshward`` command line: one sub-module per group of verbs.

Each command module exposes ``register(subparsers)``, adding its verbs with
``set_defaults(func=...)``; ``func(args)`` returns the process exit code
(0 ok, 1 findings or policy errors, 2 usage or internal error).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from . import ca_commands, policy_commands, serve_commands, tooling_commands

COMMAND_MODULES = (policy_commands, ca_commands, serve_commands, tooling_commands)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meshward",
        description="Policy-as-code security engine for service meshes.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def _version() -> str:
    from importlib.metadata import version

    from meshward.policy import hot_path_compiled

    build = "compiled" if hot_path_compiled() else "Python source"
    return f"meshward {version('meshward')} (decision hot path: {build})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception:  # a bug: exit as an internal error, never as policy findings (1)
        traceback.print_exc()
        print("meshward: internal error (traceback above)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
