"""Lint findings for machines: JSON, SARIF 2.1.0 (GitHub code scanning) and GitHub
workflow annotations. (People read :func:`.diagnostics.render_human`.)"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections import Counter
from collections.abc import Callable, Sequence
from urllib.parse import quote

from .diagnostics import Diagnostic, Severity, SourceSet
from .lint import CHECKS, describe

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_SARIF_LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
# GitHub shows at most this many annotations of each kind per step.
GITHUB_ANNOTATION_CAP = 10

RelativePath = Callable[[str], str]


def counts(findings: Sequence[Diagnostic]) -> dict[str, int]:
    """How many findings of each severity."""
    c = Counter(f.severity.value for f in findings)
    return {s.value: c.get(s.value, 0) for s in Severity}


def render_json(findings: Sequence[Diagnostic], suppressed: int = 0) -> str:
    """``{"findings": [...], "counts": {...}, "suppressed": n}``."""
    return json.dumps(
        {
            "findings": [f.to_json() for f in findings],
            "counts": counts(findings),
            "suppressed": suppressed,
        },
        indent=2,
    )


def fingerprint(finding: Diagnostic, relative: str, sources: SourceSet, occurrence: int) -> str:
    """A location fingerprint that survives lines moving: the code, the file and the
    text of the line (whitespace-trimmed), plus which occurrence of that triple it is."""
    line = (sources.line(finding.span.file, finding.span.line) or "").strip()
    digest = hashlib.sha256(f"{finding.code}\0{relative}\0{line}".encode()).hexdigest()
    return f"{digest[:32]}:{occurrence}"


def render_sarif(
    findings: Sequence[Diagnostic],
    sources: SourceSet,
    relative: RelativePath,
    version: str,
) -> str:
    """A SARIF 2.1.0 log with one run: every check as a rule (with its help), every
    finding as a result at a repository-relative location, with a fingerprint."""
    codes = list(CHECKS)
    codes += sorted({f.code for f in findings} - set(CHECKS))
    rules = []
    for code in codes:
        check = describe(code)
        rules.append(
            {
                "id": code,
                "name": "".join(w.capitalize() for w in code.split("-")),
                "shortDescription": {"text": check.summary},
                "fullDescription": {"text": f"{check.area}: {check.summary}"},
                "help": {
                    "text": check.help,
                    "markdown": f"**{check.summary}**\n\n{check.help}",
                },
                "defaultConfiguration": {
                    "level": _SARIF_LEVELS[check.severity] if check.severity else "none",
                    "enabled": check.severity is not None,
                },
                "properties": {"tags": [check.area]},
            }
        )
    index = {code: i for i, code in enumerate(codes)}
    seen: Counter[tuple[str, str, str]] = Counter()
    results = []
    for f in findings:
        uri = relative(f.span.file)
        line = (sources.line(f.span.file, f.span.line) or "").strip()
        key = (f.code, uri, line)
        seen[key] += 1
        message = f.message
        if f.suggestion:
            message += f" (did you mean {f.suggestion}?)"
        region: dict[str, int] = {"startLine": max(1, f.span.line)}
        if f.span.column > 0:
            region["startColumn"] = f.span.column
        if f.span.end_line >= f.span.line and f.span.end_column > 0:
            region["endLine"] = f.span.end_line
            if f.span.end_line > f.span.line or f.span.end_column > f.span.column:
                region["endColumn"] = f.span.end_column
        results.append(
            {
                "ruleId": f.code,
                "ruleIndex": index[f.code],
                "level": _SARIF_LEVELS[f.severity],
                "message": {"text": message},
                "locations": [
                    {
                        "physicalLocation": {
                            # A URI reference: `my policies/a.policy` is `my%20policies/...`.
                            "artifactLocation": {"uri": quote(uri), "uriBaseId": "%SRCROOT%"},
                            "region": region,
                        }
                    }
                ],
                "partialFingerprints": {
                    "primaryLocationLineHash": fingerprint(f, uri, sources, seen[key])
                },
            }
        )
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "meshward",
                        "version": version,
                        "rules": rules,
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2)


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


_COMMANDS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def render_github(findings: Sequence[Diagnostic], relative: RelativePath) -> str:
    """GitHub workflow commands: one annotation per finding up to GitHub's cap of each
    kind, the rest as plain log lines, then one notice that says what was left out."""
    lines = []
    plain: list[str] = []  # findings beyond the cap, for the log
    shown: Counter[Severity] = Counter()
    hidden: Counter[Severity] = Counter()
    for f in findings:
        path = relative(f.span.file)
        if shown[f.severity] < GITHUB_ANNOTATION_CAP:
            shown[f.severity] += 1
            props = [f"file={_escape_property(path)}", f"line={f.span.line}"]
            if f.span.column > 0:
                props.append(f"col={f.span.column}")
            if f.span.end_line >= f.span.line > 0:
                props.append(f"endLine={f.span.end_line}")
            if f.span.end_line == f.span.line and f.span.end_column > f.span.column:
                props.append(f"endColumn={f.span.end_column}")
            props.append(f"title={_escape_property(f'meshward {f.code}')}")
            text = f.message
            if f.suggestion:
                text += f" (did you mean {f.suggestion}?)"
            if f.help:
                text += f"\nhelp: {f.help}"
            lines.append(f"::{_COMMANDS[f.severity]} {','.join(props)}::{_escape_data(text)}")
        else:
            hidden[f.severity] += 1
            where = f"{path}:{f.span.line}:{f.span.column}"
            plain.append(_escape_data(f"{where}: {f.severity.value}[{f.code}]: {f.message}"))
    if plain:
        # Paths and messages are the policy author's text: in the log, GitHub would run a
        # line of theirs that reads as a command (`::add-mask::...`, even indented, or
        # `##[...]` anywhere). The runner processes no command between these two lines;
        # the token is random, so no finding can end the region early.
        token = secrets.token_hex(16)
        lines += [f"::stop-commands::{token}", *plain, f"::{token}::"]
    if hidden:
        parts = ", ".join(
            f"{n} {sev.value}{'s' if n != 1 else ''}" for sev, n in hidden.items() if n
        )
        lines.append(
            f"::notice title=meshward lint::{sum(hidden.values())} more findings ({parts}) "
            f"are beyond GitHub's {GITHUB_ANNOTATION_CAP} annotations per kind; they are "
            "listed in the log above"
        )
    return "\n".join(lines)
