"""Files to a checked policy set: find ``.policy`` files, parse each, check them together."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from . import bundle, model, nodes
from .checker import check
from .compiler import compile_policy
from .diagnostics import Diagnostic, PolicyError, SourceSet
from .parser import parse
from .tables import CompiledPolicy

POLICY_SUFFIX = ".policy"


@dataclass(frozen=True, slots=True)
class LoadedPolicy:
    """A checked policy set with the files and texts it came from."""

    policy: model.PolicySet
    files: tuple[nodes.PolicyFile, ...]
    sources: SourceSet


def policy_files(paths: Iterable[str | Path]) -> list[Path]:
    """The policy files named by ``paths``: files as given, directories searched
    recursively for ``*.policy``, in a stable order."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(p.rglob(f"*{POLICY_SUFFIX}")))
        else:
            out.append(p)
    return list(dict.fromkeys(out))


def load_texts(texts: dict[str, str]) -> LoadedPolicy:
    """Parse and check in-memory texts keyed by file name; raises :class:`PolicyError`
    carrying every diagnostic of every file."""
    sources = SourceSet(dict(texts))
    diagnostics: list[Diagnostic] = []
    files: list[nodes.PolicyFile] = []
    for name, text in texts.items():
        result = parse(text, name)
        diagnostics.extend(result.diagnostics)
        if result.file is not None:
            files.append(result.file)
    if not diagnostics:
        checked = check(files)
        diagnostics.extend(checked.diagnostics)
        if checked.policy is not None and not diagnostics:
            return LoadedPolicy(checked.policy, tuple(files), sources)
    raise PolicyError(diagnostics, sources)


def load_paths(paths: Iterable[str | Path]) -> LoadedPolicy:
    """Load the policy set stored in files and directories."""
    files = policy_files(paths)
    if not files:
        raise FileNotFoundError("no .policy files found in " + ", ".join(map(str, paths)))
    return load_texts({str(f): f.read_text(encoding="utf-8") for f in files})


def load_bundle(path: str | Path) -> CompiledPolicy:
    """Compile a bundle file written by ``meshward compile``; raises
    :class:`~meshward.policy.bundle.BundleError` when it is not a valid bundle."""
    return compile_policy(bundle.loads(Path(path).read_text(encoding="utf-8")))
