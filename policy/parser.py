"""Source text to syntax tree: the lark grammar, people-grade syntax errors, comments.

The parser reports every syntax error of a file it can reach in one run: after an error
it blanks out the broken statement (keeping line and column positions) and parses again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from . import nodes
from .diagnostics import Diagnostic, Span, did_you_mean

# Words for the grammar's terminals, so errors never show lark's token names.
_TERMINAL_WORDS = {
    "METHOD": "a method like GET",
    "ANY_METHOD": "`*`",
    "PATH": "a path like /reviews/{*}",
    "STRING": 'a quoted string like "ns/default/sa/web"',
    "NAME": "a name",
    "SERVICE_NAME": "a service name like reviews.default",
    "PORT_NUMBER": "a port number",
    "NUMBER": "a number",
    "EFFECT": "`allow` or `deny`",
    "DEFAULT_EFFECT": "`allow` or `deny`",
    "AUDIT": "`audit`",
    "COMPARATOR": "`==` or `!=`",
    "$END": "the end of the file",
}
# Lines that start a statement: where recovery resumes after a syntax error.
_STATEMENT_START = re.compile(
    r"^\s*(@|allow\b|deny\b|audit\b|default\b|service\b|principals\b|trust_domain\b|\})"
)
_SERVICE_HEADER = re.compile(r"^\s*(audit\s+)?service\b")
_MAX_ERRORS = 50


@cache
def grammar() -> Lark:
    """The policy language's LALR parser, built once per process.

    Positions come from the tokens (``keep_all_tokens``, see :func:`_positions`) rather
    than lark's ``propagate_positions``, which measured a third slower on large sets.
    """
    return Lark.open_from_package(
        "meshward.grammar",
        "meshward.lark",
        parser="lalr",
        strict=True,
        keep_all_tokens=True,
        maybe_placeholders=True,
    )


# Terminals the syntax tree keeps; keywords and punctuation only give positions.
_NAMED_TERMINALS = frozenset(
    {
        "AUDIT",
        "EFFECT",
        "DEFAULT_EFFECT",
        "ANY_METHOD",
        "METHOD",
        "PATH",
        "PORT_NUMBER",
        "NUMBER",
        "COMPARATOR",
        "SERVICE_NAME",
        "NAME",
        "STRING",
    }
)


def _positions(tree: Tree[Token]) -> Tree[Token]:
    """Give every subtree the span from its first to its last token, drop keyword and
    punctuation tokens, and unwrap parenthesised conditions: the tree lark builds with
    ``propagate_positions`` and without ``keep_all_tokens``, built cheaper."""
    return _position(tree)[0]


_Edge = Any  # a Token or a Meta: anything with line/column/end_line/end_column


def _position(tree: Tree[Token]) -> tuple[Tree[Token], _Edge, _Edge]:
    # Returns the tree and its container's first and last edges; a parenthesised
    # condition is replaced by the condition inside, but its parentheses still count
    # for the span of what contains it (as with lark's own position propagation).
    kids: list[Tree[Token] | Token | None] = []
    first: _Edge = None
    last: _Edge = None
    for child in tree.children:
        if isinstance(child, Tree):
            child, child_first, child_last = _position(child)
            if child_first is not None:
                first = first or child_first
                last = child_last
            kids.append(child)
        elif child is None:
            kids.append(None)
        else:
            first = first or child
            last = child
            if child.type in _NAMED_TERMINALS:
                kids.append(child)
    if tree.data == "atom":  # "(" condition ")"
        return cast(Tree[Token], kids[0]), first, last
    tree.children = kids  # type: ignore[assignment]  # lark types omit placeholders
    if first is not None:
        meta = tree.meta
        meta.line, meta.column = first.line, first.column
        meta.end_line, meta.end_column = last.end_line, last.end_column
        meta.empty = False
    return tree, first, last


@dataclass(frozen=True, slots=True)
class ParseResult:
    file: nodes.PolicyFile | None
    diagnostics: tuple[Diagnostic, ...]


def parse(text: str, path: str = "<policy>") -> ParseResult:
    """Parse one policy file. On syntax errors, ``file`` is None and all are reported."""
    diagnostics: list[Diagnostic] = []
    work = text
    for _ in range(_MAX_ERRORS):
        comments: list[Token] = []
        try:
            tree = _parse(work, comments)
        except UnexpectedInput as exc:
            diagnostic = _syntax_diagnostic(exc, work, path)
            # An error on a line already reported is a cascade of the recovery, not news.
            cascade = any(d.span.line == diagnostic.span.line for d in diagnostics)
            if not cascade:
                diagnostics.append(diagnostic)
            blanked = _blank_statement(work, exc.line, exc.column)
            if blanked == work:
                break
            work = blanked
            continue
        if diagnostics:
            break
        try:
            return ParseResult(_Builder(path, comments).file(tree), ())
        except _TokenError as exc:
            return ParseResult(None, (exc.diagnostic,))
    return ParseResult(None, tuple(diagnostics))


def _parse(text: str, comments: list[Token]) -> Tree[Token]:
    # lexer_callbacks are fixed at construction, so collect comments by re-lexing instead.
    tree = _positions(grammar().parse(text))
    comments.extend(_COMMENT.finditer_tokens(text))
    return tree


class _CommentScanner:
    """Finds `#` comments outside strings, with their positions."""

    _pattern = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*')

    def finditer_tokens(self, text: str) -> list[Token]:
        out = []
        for m in self._pattern.finditer(text):
            if m.group().startswith("#"):
                line = text.count("\n", 0, m.start()) + 1
                col = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
                out.append(
                    Token(
                        "COMMENT",
                        m.group(),
                        start_pos=m.start(),
                        line=line,
                        column=col,
                        end_line=line,
                        end_column=col + len(m.group()),
                    )
                )
        return out


_COMMENT = _CommentScanner()


def _syntax_diagnostic(exc: UnexpectedInput, text: str, path: str) -> Diagnostic:
    line, column = exc.line, exc.column
    if isinstance(exc, UnexpectedCharacters):
        expected = _expected_words(exc.allowed or set())
        pos = exc.pos_in_stream or 0
        found = text[pos : pos + 1]
        message = f"unexpected character {found!r}"
        width = 1
        suggestion = None
    elif isinstance(exc, UnexpectedToken | UnexpectedEOF):
        token = exc.token
        accepts = exc.accepts if isinstance(exc, UnexpectedToken) else set(map(str, exc.expected))
        expected = _expected_words(accepts)
        if token.type == "$END":
            message = "unexpected end of file"
            line, column = _end_position(text)
            width = 1
        else:
            message = f"unexpected {_describe_token(token)}"
            line, column = token.line or line, token.column or column
            width = max(1, len(str(token)))
        keywords = _keyword_terminals(exc.accepts if isinstance(exc, UnexpectedToken) else set())
        suggestion = did_you_mean(str(token), keywords) if keywords else None
        if suggestion:
            suggestion = f"`{suggestion}`"
    else:  # pragma: no cover - lark raises only the kinds above
        raise exc
    span = Span(path, line, column, line, column + width)
    return Diagnostic("syntax", message, span, expected=expected, suggestion=suggestion)


def _expected_words(terminals: set[str] | frozenset[str] | list[str]) -> tuple[str, ...]:
    words: list[str] = []
    for name in sorted(terminals):
        word = _TERMINAL_WORDS.get(name)
        if word is None:
            try:
                pattern = grammar().get_terminal(name).pattern
            except KeyError:
                continue
            word = f"`{pattern.value}`" if pattern.type == "str" else name.lower()
        if word not in words:
            words.append(word)
    return tuple(words)


def _keyword_terminals(terminals: set[str] | frozenset[str]) -> list[str]:
    out = []
    for name in terminals:
        try:
            pattern = grammar().get_terminal(name).pattern
        except KeyError:
            continue
        if pattern.type == "str" and pattern.value.isalpha():
            out.append(pattern.value)
        elif name in ("EFFECT", "DEFAULT_EFFECT"):
            out.extend(("allow", "deny"))
    return out


def _describe_token(token: Token) -> str:
    kind = _TERMINAL_WORDS.get(token.type)
    if token.type in ("STRING", "PATH", "NUMBER", "PORT_NUMBER"):
        return f"{kind or 'token'} {token}"
    return f"`{token}`"


def _end_position(text: str) -> tuple[int, int]:
    lines = text.splitlines() or [""]
    return len(lines), len(lines[-1]) + 1


def _blank_statement(text: str, line: int, column: int) -> str:
    """Replace the statement holding ``line`` with spaces, keeping every position."""
    lines = text.split("\n")
    if not 0 < line <= len(lines):
        return text
    current = lines[line - 1]
    if column == len(current) - len(current.lstrip()) + 1 and _STATEMENT_START.match(current):
        # The error is the first token of a statement: the one before it is unfinished.
        while line > 1 and not lines[line - 2].strip():
            line -= 1
        line = max(1, line - 1)
    start = line - 1
    while start > 0 and not _STATEMENT_START.match(lines[start]):
        start -= 1
    if _SERVICE_HEADER.match(lines[start]) and start != line - 1:
        start = line - 1  # a broken line inside a block: keep the block
    if _SERVICE_HEADER.match(lines[start]):
        # A broken `service` header: blank the whole block, or its rules would look top-level.
        end = _block_end(lines, start)
    else:
        end = line  # exclusive; extend over continuation lines of the statement
        while end < len(lines) and not _STATEMENT_START.match(lines[end]):
            end += 1
    if not any(x.strip() for x in lines[start:end]):
        return text
    for i in range(start, end):
        lines[i] = " " * len(lines[i])
    return "\n".join(lines)


def _block_end(lines: list[str], start: int) -> int:
    depth = 0
    for i in range(start, len(lines)):
        depth += lines[i].count("{") - lines[i].count("}")
        if depth <= 0 and "{" in "".join(lines[start : i + 1]):
            return i + 1
    return len(lines)


class _TokenError(Exception):
    def __init__(self, diagnostic: Diagnostic):
        self.diagnostic = diagnostic


class _Builder:
    """Turns lark's tree into ``nodes``; rejects bad token contents (string escapes)."""

    def __init__(self, path: str, comments: list[Token]):
        self.path = path
        self.comments = comments

    def span(self, item: Tree[Token] | Token) -> Span:
        if isinstance(item, Token):
            return Span(
                self.path,
                item.line or 0,
                item.column or 0,
                item.end_line or item.line or 0,
                item.end_column or item.column or 0,
            )
        m = item.meta
        return Span(self.path, m.line, m.column, m.end_line, m.end_column)

    def text(self, token: Token) -> nodes.Text:
        return nodes.Text(str(token), self.span(token))

    def string(self, token: Token) -> nodes.Text:
        if "\\" not in token:  # no escapes: the common case needs no decoder
            return nodes.Text(token[1:-1], self.span(token))
        try:
            value = json.loads(str(token))
        except json.JSONDecodeError:
            raise _TokenError(
                Diagnostic(
                    "syntax",
                    "invalid escape in string",
                    self.span(token),
                    help='strings use JSON escapes: \\" \\\\ \\n \\t \\uXXXX',
                )
            ) from None
        return nodes.Text(cast(str, value), self.span(token))

    def file(self, tree: Tree[Token]) -> nodes.PolicyFile:
        trust_domains: list[nodes.Text] = []
        sets: list[nodes.PrincipalSet] = []
        services: list[nodes.ServiceBlock] = []
        for child in tree.children:
            assert isinstance(child, Tree)
            if child.data == "trust_domain":
                trust_domains.append(self.string(cast(Token, child.children[0])))
            elif child.data == "principal_set":
                name, *members = child.children
                sets.append(
                    nodes.PrincipalSet(
                        self.text(cast(Token, name)),
                        tuple(self.source(cast(Tree[Token], m)) for m in members if m is not None),
                        self.span(child),
                    )
                )
            else:
                services.append(self.service(child))
        comments = tuple(nodes.Comment(str(c), self.span(c)) for c in self.comments)
        return nodes.PolicyFile(
            path=self.path,
            trust_domain=trust_domains[0] if trust_domains else None,
            principal_sets=tuple(sets),
            services=tuple(services),
            comments=comments,
            extra_trust_domains=tuple(trust_domains[1:]),
        )

    def service(self, tree: Tree[Token]) -> nodes.ServiceBlock:
        audit, name, port, *items = tree.children
        default: nodes.Text | None = None
        rules: list[nodes.Rule] = []
        for item in items:
            assert isinstance(item, Tree)
            if item.data == "default_decision":
                default = self.text(cast(Token, item.children[0]))
            else:
                rules.append(self.rule(item))
        return nodes.ServiceBlock(
            name=self.text(cast(Token, name)),
            port=self.text(cast(Token, port.children[0])) if isinstance(port, Tree) else None,
            audit=audit is not None,
            default=default,
            rules=tuple(rules),
            span=self.span(tree),
        )

    def rule(self, tree: Tree[Token]) -> nodes.Rule:
        children = list(tree.children)
        annotations = [c for c in children if isinstance(c, Tree) and c.data == "annotation"]
        rest = children[len(annotations) :]
        audit, effect, methods, paths, hosts, ports, sources, when, unless = rest
        rule_id = None
        if annotations:
            # Several @id annotations: the checker reports it; keep the first.
            rule_id = self.string(cast(Token, annotations[0].children[0]))
        method_tokens = cast(Tree[Token], methods).children
        method_list: tuple[nodes.Text, ...] | None
        if len(method_tokens) == 1 and cast(Token, method_tokens[0]).type == "ANY_METHOD":
            method_list = None
        else:
            method_list = tuple(self.text(cast(Token, t)) for t in method_tokens)
        return nodes.Rule(
            effect=cast(Any, str(effect)),
            audit=audit is not None,
            rule_id=rule_id,
            methods=method_list,
            paths=self._tokens(paths, self.text),
            hosts=self._tokens(hosts, self.string),
            ports=self._tokens(ports, self.text),
            sources=tuple(self.source(cast(Tree[Token], s)) for s in sources.children)
            if isinstance(sources, Tree)
            else (),
            when=self.condition(cast(Tree[Token], when.children[0]))
            if isinstance(when, Tree)
            else None,
            unless=self.condition(cast(Tree[Token], unless.children[0]))
            if isinstance(unless, Tree)
            else None,
            span=self.span(tree),
        )

    def _tokens(
        self, tree: Tree[Token] | Token | None, conv: Callable[[Token], nodes.Text]
    ) -> tuple[nodes.Text, ...]:
        if not isinstance(tree, Tree):
            return ()
        return tuple(conv(cast(Token, t)) for t in tree.children)

    def source(self, tree: Tree[Token]) -> nodes.SourceTerm:
        kind = tree.data.removeprefix("source_")
        value: str | None = None
        if tree.children:
            token = cast(Token, tree.children[0])
            value = self.string(token).value if token.type == "STRING" else str(token)
        return nodes.SourceTerm(cast(Any, kind), value, self.span(tree))

    def condition(self, tree: Tree[Token]) -> nodes.Condition:
        kind = tree.data
        span = self.span(tree)
        c = tree.children
        if kind == "and_":
            return nodes.And(self.condition(_t(c[0])), self.condition(_t(c[1])), span)
        if kind == "or_":
            return nodes.Or(self.condition(_t(c[0])), self.condition(_t(c[1])), span)
        if kind == "not_":
            return nodes.Not(self.condition(_t(c[0])), span)
        if kind == "has":
            return nodes.Has(self.attribute(_t(c[0])), span)
        if kind == "compare":
            op = cast(Any, str(c[1]))
            return nodes.Compare(op, self.attribute(_t(c[0])), self.literal(c[2]), span)
        if kind == "matches":
            pattern = self.string(cast(Token, c[1]))
            return nodes.Compare(
                "matches",
                self.attribute(_t(c[0])),
                nodes.Literal_(pattern.value, pattern.span),
                span,
            )
        op = {"in_": "in", "contains": "contains", "within": "within"}[kind]
        return nodes.Compare(cast(Any, op), self.attribute(_t(c[0])), self.literal(c[1]), span)

    def attribute(self, tree: Tree[Token]) -> nodes.Attribute:
        parts = []
        for token in tree.children:
            tok = cast(Token, token)
            parts.append(self.string(tok).value if tok.type == "STRING" else str(tok))
        return nodes.Attribute(tuple(parts), self.span(tree))

    def literal(self, item: Tree[Token] | Token) -> nodes.Literal_:
        tree = _t(item)
        span = self.span(tree)
        if tree.data == "string":
            return nodes.Literal_(self.string(cast(Token, tree.children[0])).value, span)
        if tree.data == "number":
            raw = str(tree.children[0])
            return nodes.Literal_(float(raw) if "." in raw else int(raw), span)
        if tree.data == "true":
            return nodes.Literal_(True, span)
        if tree.data == "false":
            return nodes.Literal_(False, span)
        items = tuple(self.literal(x) for x in tree.children if x is not None)
        return nodes.Literal_(items, span)


def _t(item: object) -> Tree[Token]:
    assert isinstance(item, Tree)
    return item
