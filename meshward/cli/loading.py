"""Exit codes and policy loading shared by the command modules."""

from __future__ import annotations

import json
import sys

from meshward.policy import PolicyError, load_paths
from meshward.policy.diagnostics import render_human, render_json
from meshward.policy.loader import LoadedPolicy, NotPolicySource

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


def load_or_report(paths: list[str], error_format: str) -> LoadedPolicy | int:
    """Load a policy set, or print every error and return the exit code."""
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
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError, NotPolicySource) as exc:
        if error_format == "json":  # tools read stdout: no policy was read at all
            print(json.dumps({"diagnostics": [], "error": str(exc)}, indent=2))
        print(f"meshward: {exc}", file=sys.stderr)
        return EXIT_USAGE
