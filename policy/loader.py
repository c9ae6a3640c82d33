"""Files to a checked policy set: find ``.policy`` files, parse each, check them together."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from . import bundle, model, nodes
from .checker import check
from .compiler import compile_policy
from .diagnostics import Diagnostic, PolicyError, SourceSet
from .gc_pause import paused_gc
from .parser import ParseResult, parse
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
    recursively for ``*.policy`` (see :func:`search`), in a stable order."""
    out: list[Path] = []
    for p in map(Path, paths):
        out.extend(search(p, (POLICY_SUFFIX,)) if p.is_dir() else [p])
    return list(dict.fromkeys(out))


def search(directory: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """The regular files under ``directory`` whose names end in one of ``suffixes``,
    sorted. Names starting with ``.`` are skipped, and hidden folders never entered:
    editors' lock and swap files, and the ``..data`` link and timestamped copies of a
    Kubernetes ConfigMap volume, whose files appear again as links at its top (read twice,
    every rule would be a duplicate) and whose old copy the kubelet deletes at any time
    (a folder that vanishes mid-search is skipped, not an error)."""
    found = []
    for root, folders, files in os.walk(directory):
        folders[:] = [f for f in folders if not f.startswith(".")]
        for name in files:
            path = Path(root, name)
            # (a regular file: not a FIFO, which would block a read, nor a dangling link)
            if not name.startswith(".") and name.endswith(suffixes) and path.is_file():
                found.append(path)
    return sorted(found)


class ParseCache:
    """Parsed files by name and content, kept between loads: parsing is most of a load's
    cost, and most reloads change one file. Holds only the files of the latest load."""

    def __init__(self) -> None:
        self._files: dict[str, tuple[str, ParseResult]] = {}

    def parse_all(self, texts: Mapping[str, str]) -> list[ParseResult]:
        fresh: dict[str, tuple[str, ParseResult]] = {}
        for name, text in texts.items():
            key = hashlib.sha256(text.encode()).hexdigest()
            hit = self._files.get(name)
            fresh[name] = hit if hit is not None and hit[0] == key else (key, parse(text, name))
        self._files = fresh
        return [result for _, result in fresh.values()]


@paused_gc()
def load_texts(texts: Mapping[str, str], cache: ParseCache | None = None) -> LoadedPolicy:
    """Parse and check in-memory texts keyed by file name; raises :class:`PolicyError`
    carrying every diagnostic of every file. A ``cache`` re-parses only changed files."""
    sources = SourceSet(dict(texts))
    diagnostics: list[Diagnostic] = []
    files: list[nodes.PolicyFile] = []
    results = (
        cache.parse_all(texts) if cache is not None else [parse(t, n) for n, t in texts.items()]
    )
    for result in results:
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
    return load_texts({str(f): read_policy_text(f) for f in files})


class NotPolicySource(ValueError):
    """A file named as policy source is a compiled bundle."""


def read_policy_text(path: Path) -> str:
    """A policy file's text; a file that is not UTF-8 is refused with its name, and a
    compiled bundle (whose format marker comes first: no policy text starts with `{`)
    with :class:`NotPolicySource`."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        reason = f"{exc.reason}: {path} is not UTF-8 text"
        raise UnicodeDecodeError(exc.encoding, exc.object, exc.start, exc.end, reason) from None
    if text.lstrip().startswith("{") and bundle.FORMAT in text[:64]:
        raise NotPolicySource(
            f"{path} is a compiled bundle, and policy source is needed here (a bundle "
            "keeps no source text); `meshward eval` and `meshward serve --bundle` take bundles"
        )
    return text


def load_bundle(path: str | Path) -> CompiledPolicy:
    """Compile a bundle file written by ``meshward compile``; raises
    :class:`~meshward.policy.bundle.BundleError` when it is not a valid bundle."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise bundle.BundleError("not a meshward bundle (not UTF-8 text)") from None
    return compile_policy(bundle.loads(text))
