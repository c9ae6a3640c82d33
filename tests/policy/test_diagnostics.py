"""Rendering diagnostics: the quoted line and its caret."""

from __future__ import annotations

from meshward.policy.diagnostics import QUOTE_WIDTH, Diagnostic, SourceSet, Span, render_human


def _rendered(line: str, column: int, width: int = 1) -> tuple[str, str]:
    d = Diagnostic("syntax", "bad", Span("p.policy", 2, column, 2, column + width))
    out = render_human([d], SourceSet({"p.policy": "first\n" + line + "\nlast"}))
    quoted, caret = out.split("\n")[1:3]
    return quoted.removeprefix("   2 | "), caret.removeprefix("       ")


def test_a_short_line_is_quoted_whole_with_the_caret_under_the_span():
    assert _rendered("allow GIT /x", 7, 3) == ("allow GIT /x", "      ^^^")


def test_a_long_line_is_cut_around_the_caret():
    # A line of megabytes (a generated or garbage file) must not be copied into every
    # message, log line and /readyz body.
    line = "a" * 5_000 + "XYZ" + "b" * 5_000
    quoted, caret = _rendered(line, 5_001, 3)
    assert len(quoted) <= QUOTE_WIDTH + 2 and quoted.startswith("…") and quoted.endswith("…")
    start = caret.index("^")
    assert quoted[start : start + 3] == "XYZ" and caret.count("^") == 3
    quoted, caret = _rendered(line, 1)  # at the start: no leading ellipsis
    assert quoted == line[:QUOTE_WIDTH] + "…" and caret == "^"
    quoted, caret = _rendered(line, len(line))  # at the end: none trailing
    assert quoted.startswith("…") and quoted.endswith("b") and quoted[caret.index("^")] == "b"
