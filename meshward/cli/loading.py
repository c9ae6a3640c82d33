"""Exit codes and policy loading shared by the command modules."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from meshward.policy import PolicyError, bundle, load_paths
from meshward.policy.diagnostics import render_human, render_json
from meshward.policy.loader import LoadedPolicy

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


def load_or_report(paths: list[str], error_format: str) -> LoadedPolicy | int:
    """Load a policy set, or print every error and return the exit code."""
    compiled = next((p for p in paths if _is_bundle(Path(p))), None)
    if compiled is not None:
        print(
            f"meshward: {compiled} is a compiled bundle, and this command reads policy source "
            "(a bundle keeps no source text); `meshward eval` accepts bundles",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        return load_paths(paths)
    except PolicyError as exc:
        if error_format == "json":
            print(render_json(exc.diagnostics))
        else:
            print(render_human(exc.diagnostics, exc.sources), file=sys.stderr)
            n = len(exc.diagnostics)
            print(f"\n{n} error{'s' if n != 1 else ''}; nothing was compiled", file=sys.stderr)
        return EXIT_FINDINGS
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError) as exc:
        if error_format == "json":  # tools read stdout: no policy was read at all
            print(json.dumps({"diagnostics": [], "error": str(exc)}, indent=2))
        print(f"meshward: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _is_bundle(path: Path) -> bool:
    """Whether ``path`` is a file `meshward compile` wrote (its format marker comes first;
    no policy text starts with `{`)."""
    if path.suffix == ".policy" or not path.is_file():
        return False
    try:
        with path.open("rb") as f:
            head = f.read(64)
    except OSError:
        return False  # the loader reports it
    return head.lstrip().startswith(b"{") and bundle.FORMAT.encode() in head
