"""Errors as data: source spans, diagnostics, and their human and JSON renderings.

Every stage (parser, checker, linter) reports problems as :class:`Diagnostic` values
carrying a :class:`Span`, so a person sees ``file:line:col``, the source line and a
caret, and a tool sees the same facts as JSON.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple


class Span(NamedTuple):
    """A region of a source file; lines and columns count from 1. (A named tuple: a
    large policy set has millions, and a tuple is the cheapest immutable record.)"""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
        }


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in a policy, with where it is and how to fix it."""

    code: str
    message: str
    span: Span
    severity: Severity = Severity.ERROR
    help: str | None = None
    expected: tuple[str, ...] = ()
    suggestion: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "location": self.span.to_json(),
        }
        if self.help:
            out["help"] = self.help
        if self.expected:
            out["expected"] = list(self.expected)
        if self.suggestion:
            out["suggestion"] = self.suggestion
        return out


@dataclass
class SourceSet:
    """The texts diagnostics point into, by file name, for rendering source lines."""

    texts: dict[str, str] = field(default_factory=dict)
    _lines: dict[str, list[str]] = field(default_factory=dict, repr=False, compare=False)

    def line(self, file: str, line: int) -> str | None:
        text = self.texts.get(file)
        if text is None:
            return None
        # Lines as the parser counts them: split on \n only (str.splitlines also breaks
        # at form feeds and U+2028, which would quote the wrong line). Split once per
        # file: a file may have thousands of findings.
        lines = self._lines.get(file)
        if lines is None:
            lines = self._lines[file] = text.split("\n")
        return lines[line - 1].rstrip("\r") if 0 < line <= len(lines) else ""


class PolicyError(Exception):
    """Raised when a policy set has errors; carries every diagnostic found."""

    def __init__(self, diagnostics: Sequence[Diagnostic], sources: SourceSet | None = None):
        self.diagnostics = tuple(diagnostics)
        self.sources = sources or SourceSet()
        first = self.diagnostics[0] if self.diagnostics else None
        summary = f"{first.span}: {first.message}" if first else "policy error"
        more = len(self.diagnostics) - 1
        super().__init__(summary + (f" (and {more} more)" if more > 0 else ""))


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to a misspelt ``name``, if one is close enough."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def render_human(diagnostics: Iterable[Diagnostic], sources: SourceSet) -> str:
    """``file:line:col: severity[code]: message``, the source line, a caret, then help."""
    blocks = []
    for d in diagnostics:
        lines = [f"{d.span}: {d.severity.value}[{d.code}]: {d.message}"]
        src = sources.line(d.span.file, d.span.line)
        if src is not None:
            width = 1
            if d.span.end_line == d.span.line and d.span.end_column > d.span.column:
                width = d.span.end_column - d.span.column
            shown, column, width = _window(src.expandtabs(1), d.span.column, width)
            gutter = f"{d.span.line:>4} | "
            lines.append(gutter + shown)
            lines.append(" " * (len(gutter) + column - 1) + "^" * width)
        if d.expected:
            lines.append("  expected " + _join_alternatives(d.expected))
        if d.suggestion:
            lines.append(f"  did you mean {d.suggestion}?")
        if d.help:
            lines.append(f"  help: {d.help}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


# A quoted source line is cut to this many characters around the caret: a generated or
# garbage file may hold a line of megabytes, which would otherwise be copied into every
# message, log line and /readyz body that reports it.
QUOTE_WIDTH = 120


def _window(line: str, column: int, width: int) -> tuple[str, int, int]:
    """The part of ``line`` to quote, and the caret's column and width in it."""
    if len(line) <= QUOTE_WIDTH:
        return line, column, width
    start = max(0, min(column - 1 - QUOTE_WIDTH // 3, len(line) - QUOTE_WIDTH))
    end = start + QUOTE_WIDTH
    shown = ("…" if start else "") + line[start:end] + ("…" if end < len(line) else "")
    caret = column - start + (1 if start else 0)
    return shown, caret, max(1, min(width, end - (column - 1)))


def render_json(diagnostics: Iterable[Diagnostic]) -> str:
    return json.dumps({"diagnostics": [d.to_json() for d in diagnostics]}, indent=2)


def _join_alternatives(items: Sequence[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " or " + items[-1]
