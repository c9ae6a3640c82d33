"""Source text to syntax tree: the lark grammar, people-grade syntax errors, comments.

A text that parses is turned into ``nodes`` while lark reduces it (no lark tree is
built). A text that does not is parsed again for its errors: every syntax error lark can
reach is reported in one run, since after each one the broken statement is blanked out
(keeping line and column positions) and the text parsed again.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cache
from typing import Any, NamedTuple, cast

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from . import nodes
from .diagnostics import Diagnostic, Span, did_you_mean
from .nodes import MAX_CONDITION_DEPTH, MAX_LIST_DEPTH, MAX_NUMBER_DIGITS

log = logging.getLogger("meshward.policy.parser")

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
    "ANNOTATION": '`@id("...")`',
    "$END": "the end of the file",
}
# What an unexpected token of these kinds is called, before its text.
_FOUND_WORDS = {"STRING": "string", "PATH": "path", "NUMBER": "number", "PORT_NUMBER": "port"}
# Lines that start a statement: where recovery resumes after a syntax error.
_STATEMENT_WORDS = ("allow", "deny", "audit", "default", "service", "principals", "trust_domain")
_STATEMENT_START = re.compile(r"^\s*(@|\}|(" + "|".join(_STATEMENT_WORDS) + r")\b)")
_SERVICE_HEADER = re.compile(r"^\s*(audit\s+)?service\b")
# A bare first word; `source.namespace` or `jwt["x"]` continues a condition.
_FIRST_WORD = re.compile(r"^\s*([a-z_]+)\b(?![.\[])")
# Source keywords a string follows, and the word just before a position.
_WORDS_BEFORE_A_STRING = ("namespace", "sa", "trust_domain", "ip")
_WORD_BEFORE = re.compile(r"(?:^|\s)([a-z_]{3,})\s+$")  # a whole word, not a path's tail
_MAX_ERRORS = 50


@cache
def grammar() -> Lark:
    """The policy language's LALR parser (plain lark, building a tree), built once per
    process. It parses every text that has an error: its errors are the ones reported."""
    return _lark()


def _lark(**options: Any) -> Lark:
    return Lark.open_from_package(
        "meshward.grammar",
        "meshward.lark",
        parser="lalr",
        strict=True,
        keep_all_tokens=True,
        maybe_placeholders=True,
        **options,
    )


@cache
def _compiled_node_parser() -> Lark | None:
    """The parser for the common case, building ``nodes`` as it reduces (no lark tree),
    on lark's compiled LALR plugin (``lark-cython``, installed where it has wheels): its
    lexer and parser run about a third faster; the node callbacks are the same Python.
    None when the plugin is missing or does not fit this lark. The plugin's error path
    differs from lark's, so a text that fails here is parsed again by :func:`grammar`.
    """
    try:
        import lark_cython

        return _lark(transformer=_NodeBuilder(), _plugins=lark_cython.plugins)
    except Exception:
        return None


@cache
def _node_parser() -> Lark:
    """Plain lark building ``nodes``: where the plugin is missing."""
    return _lark(transformer=_NodeBuilder())


# One parse at a time per process: the node builder keeps the file's path and its
# escape errors while lark runs its callbacks. Parsing holds the GIL anyway.
_parse_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class ParseResult:
    file: nodes.PolicyFile | None
    diagnostics: tuple[Diagnostic, ...]


def parse(text: str, path: str = "<policy>") -> ParseResult:
    """Parse one policy file. On syntax errors, ``file`` is None and all are reported."""
    with _parse_lock:
        compiled = _compiled_node_parser()
        if compiled is not None:
            try:
                return _build(compiled, text, path)
            except UnexpectedInput:
                errors = _syntax_errors(text, path)
                if errors:
                    return ParseResult(None, errors)
                # Plain lark accepts what the plugin refused: trust lark.
            except Exception:  # a fault of the plugin itself: plain lark decides
                log.warning("lark-cython failed on %s; parsing it with plain lark", path)
        try:
            return _build(_node_parser(), text, path)
        except UnexpectedInput as exc:
            errors = _syntax_errors(text, path) or (_syntax_diagnostic(exc, text, path),)
            return ParseResult(None, errors)


def _build(parser: Lark, text: str, path: str) -> ParseResult:
    builder = cast(_NodeBuilder, parser.options.transformer)
    builder.start_file(path)
    file = cast(nodes.PolicyFile, parser.parse(text))
    builder.token_errors.extend(_too_deep(file))
    if builder.token_errors:
        return ParseResult(None, tuple(sorted(builder.token_errors, key=lambda d: d.span)))
    return ParseResult(replace(file, comments=_comments(text, path)), ())


def _too_deep(file: nodes.PolicyFile) -> Iterator[Diagnostic]:
    """A diagnostic for each condition deeper than :data:`MAX_CONDITION_DEPTH`. Found
    here, by a loop, because every later stage walks conditions recursively."""
    for block in file.services:
        for rule in block.rules:
            for top in (rule.when, rule.unless):
                # depth: how many `and`, `or` and `not` enclose the node
                stack: list[tuple[nodes.Condition, int]] = [(top, 0)] if top else []
                while stack:
                    cond, depth = stack.pop()
                    if depth > MAX_CONDITION_DEPTH:
                        yield Diagnostic(
                            "syntax",
                            f"a condition nests more than {MAX_CONDITION_DEPTH} levels deep "
                            "(each `and`, `or` and `not` is one)",
                            cond.span,
                            help="split the rule, or write a long list of alternatives as "
                            "`in [...]`",
                        )
                        break
                    if isinstance(cond, nodes.And | nodes.Or):
                        stack += ((cond.left, depth + 1), (cond.right, depth + 1))
                    elif isinstance(cond, nodes.Not):
                        stack.append((cond.operand, depth + 1))
                    elif isinstance(cond, nodes.Compare):
                        yield from _list_too_deep(cond.operand)


def _list_too_deep(top: nodes.Literal_) -> Iterator[Diagnostic]:
    stack = [(top, 0)]  # depth: how many lists enclose the literal
    while stack:
        lit, depth = stack.pop()
        if isinstance(lit.value, tuple):
            if depth == MAX_LIST_DEPTH:
                yield Diagnostic(
                    "syntax", f"lists nest more than {MAX_LIST_DEPTH} levels deep", lit.span
                )
                return
            stack += ((item, depth + 1) for item in lit.value)


def _syntax_errors(text: str, path: str) -> tuple[Diagnostic, ...]:
    """Every syntax error of ``text`` lark can reach: after each one, blank the broken
    statement (keeping every position) and parse again."""
    diagnostics: list[Diagnostic] = []
    work = text
    for _ in range(_MAX_ERRORS):
        try:
            grammar().parse(work)
        except UnexpectedInput as exc:
            diagnostic = _syntax_diagnostic(exc, work, path)
            # An error on a line already reported is a cascade of the recovery, not news.
            if not any(d.span.line == diagnostic.span.line for d in diagnostics):
                diagnostics.append(diagnostic)
            blanked = _blank_statement(work, exc.line, exc.column)
            if blanked == work:
                break
            work = blanked
            continue
        break
    return tuple(diagnostics)


# `#` comments outside strings.
_COMMENT_OR_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*')


def _comments(text: str, path: str) -> tuple[nodes.Comment, ...]:
    if "#" not in text:
        return ()
    out = []
    # Lines counted on from the last comment, not from the start: linear in the text.
    line, line_start, scanned = 1, 0, 0
    for m in _COMMENT_OR_STRING.finditer(text):
        if m.group().startswith("#"):
            start = m.start()
            newlines = text.count("\n", scanned, start)
            if newlines:
                line += newlines
                line_start = text.rfind("\n", scanned, start) + 1
            scanned = start
            column = start - line_start + 1
            span = Span(path, line, column, line, column + len(m.group()))
            out.append(nodes.Comment(m.group(), span))
    return tuple(out)


def _syntax_diagnostic(exc: UnexpectedInput, text: str, path: str) -> Diagnostic:
    line, column = exc.line, exc.column
    if isinstance(exc, UnexpectedCharacters):
        expected = _expected_words(_acceptable(exc))
        pos = exc.pos_in_stream or 0
        found = text[pos : pos + 1]
        message = f"unexpected character {found!r}"
        if found == "@":
            message += ': an annotation is written @id("rule-id")'
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
        if suggestion is None and token.type == "STRING":
            # `from nmespace "x"`: the misspelt word parsed as a set name; the string
            # after it is where the parser noticed.
            word = _WORD_BEFORE.search(text.split("\n")[line - 1][: column - 1])
            if word is not None:
                suggestion = did_you_mean(word.group(1), _WORDS_BEFORE_A_STRING)
                if suggestion is not None:
                    message += f" after `{word.group(1)}`"
        if suggestion:
            suggestion = f"`{suggestion}`"
    else:  # pragma: no cover - lark raises only the kinds above
        raise exc
    span = Span(path, line, column, line, column + width)
    return Diagnostic("syntax", message, span, expected=expected, suggestion=suggestion)


def _acceptable(exc: UnexpectedCharacters) -> set[str]:
    """The terminals the parser would have taken. The lexer's own list (``allowed``)
    folds keywords such as `namespace` into NAME; the parse table still has them."""
    state = exc.state
    try:
        actions = state.parse_conf.parse_table.states[state.position]
    except AttributeError:  # no parser state: the lexer's list is all there is
        return set(exc.allowed or ())
    return {name for name in actions if name.isupper() or name.startswith("$")}


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
    kind = _FOUND_WORDS.get(token.type)
    return f"{kind} {token}" if kind else f"`{token}`"


def _end_position(text: str) -> tuple[int, int]:
    # As lark counts lines (see SourceSet.line); a final newline ends the last line.
    lines = (text[:-1] if text.endswith("\n") else text).split("\n")
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
        while end < len(lines) and not _starts_statement(lines[end]):
            end += 1
    if not any(x.strip() for x in lines[start:end]):
        return text
    for i in range(start, end):
        lines[i] = " " * len(lines[i])
    return "\n".join(lines)


def _starts_statement(line: str) -> bool:
    """Whether a line starts a statement, or would but for a misspelt keyword (`alow`):
    recovery must not blank it as part of the broken statement before it, or its own
    error would go unreported."""
    if _STATEMENT_START.match(line):
        return True
    word = _FIRST_WORD.match(line)
    return word is not None and did_you_mean(word.group(1), _STATEMENT_WORDS) is not None


def _block_end(lines: list[str], start: int) -> int:
    depth = 0
    for i in range(start, len(lines)):
        depth += lines[i].count("{") - lines[i].count("}")
        if depth <= 0 and "{" in "".join(lines[start : i + 1]):
            return i + 1
    return len(lines)


class _Part(NamedTuple):
    """A piece of the syntax that is not a node of its own (a `trust_domain` line, a
    service's port or default, a parenthesised condition), with the span it covers."""

    kind: str
    value: Any
    span: Span


_Item = Any  # what a callback receives: a Token, a node or _Part (all have a span), None


class _NodeBuilder:
    """lark's callbacks, one per grammar rule (or alias): each turns the children of a
    reduction into ``nodes``; every node's span runs from its first token to its last.

    Keywords and punctuation arrive as tokens too (``keep_all_tokens``): they give spans.
    A token that parses but cannot be accepted (a bad escape in a string, a second
    ``@id`` on a rule) is kept in ``token_errors``, not raised, so that a file with
    syntax errors reports those rather than the first such token before them.
    """

    def __init__(self) -> None:
        self.path = "<policy>"
        self.token_errors: list[Diagnostic] = []

    def start_file(self, path: str) -> None:
        self.path = path
        self.token_errors = []

    # --- spans and tokens

    def _span(self, items: list[_Item]) -> Span:
        first, last = items[0], items[-1]
        if first is None:  # an absent optional part: only `audit` can lead
            first = next(x for x in items if x is not None)
        if last is None:
            last = next(x for x in reversed(items) if x is not None)
        start: Any = getattr(first, "span", first)  # a node or part, or a token
        end: Any = getattr(last, "span", last)
        return Span(self.path, start.line, start.column, end.end_line, end.end_column)

    def _token_span(self, token: _Item) -> Span:
        return Span(self.path, token.line, token.column, token.end_line, token.end_column)

    def _text(self, token: Token) -> nodes.Text:
        return nodes.Text(token.value, self._token_span(token))

    def _string(self, token: Token) -> nodes.Text:
        span = self._token_span(token)
        return nodes.Text(self._unquote(token.value, span), span)

    def _unquote(self, quoted: str, span: Span) -> str:
        if "\\" not in quoted:  # no escapes: the common case needs no decoder
            return quoted[1:-1]
        try:
            return cast(str, json.loads(quoted))
        except json.JSONDecodeError:
            self.token_errors.append(
                Diagnostic(
                    "syntax",
                    "invalid escape in string",
                    span,
                    help='strings use JSON escapes: \\" \\\\ \\n \\t \\uXXXX',
                )
            )
            return quoted[1:-1]

    def _named(self, items: list[_Item], kinds: frozenset[str]) -> list[Token]:
        return [x for x in items if getattr(x, "type", None) in kinds]

    # --- declarations

    def start(self, items: list[_Item]) -> nodes.PolicyFile:
        trust_domains = [x.value for x in items if isinstance(x, _Part)]
        return nodes.PolicyFile(
            path=self.path,
            trust_domain=trust_domains[0] if trust_domains else None,
            principal_sets=tuple(x for x in items if isinstance(x, nodes.PrincipalSet)),
            services=tuple(x for x in items if isinstance(x, nodes.ServiceBlock)),
            comments=(),
            extra_trust_domains=tuple(trust_domains[1:]),
        )

    def trust_domain(self, items: list[_Item]) -> _Part:
        return _Part("trust_domain", self._string(items[1]), self._span(items))

    def principal_set(self, items: list[_Item]) -> nodes.PrincipalSet:
        members = tuple(x for x in items[4:] if isinstance(x, nodes.SourceTerm))
        return nodes.PrincipalSet(self._text(items[1]), members, self._span(items))

    def service(self, items: list[_Item]) -> nodes.ServiceBlock:
        audit, _, name, port = items[:4]
        defaults = [x for x in items[5:-1] if isinstance(x, _Part)]
        for extra in defaults[1:]:
            self.token_errors.append(
                Diagnostic(
                    "syntax",
                    "a service has one `default`; this is a second one",
                    extra.span,
                    help="keep one `default` per service block",
                )
            )
        return nodes.ServiceBlock(
            name=self._text(name),
            port=port.value if port is not None else None,
            audit=audit is not None,
            default=defaults[0].value if defaults else None,
            rules=tuple(x for x in items[5:-1] if isinstance(x, nodes.Rule)),
            span=self._span(items),
        )

    def service_port(self, items: list[_Item]) -> _Part:
        return _Part("port", self._text(items[1]), self._span(items))

    def default_decision(self, items: list[_Item]) -> _Part:
        return _Part("default", self._text(items[1]), self._span(items))

    # --- rules

    def rule(self, items: list[_Item]) -> nodes.Rule:
        # The parts are inlined: tokens (and condition nodes) in the order written. A
        # part's keyword opens its section; before any, the head: id, effect, methods,
        # paths.
        rule_id: nodes.Text | None = None
        audit = effect = None
        methods: list[nodes.Text] | None = []
        paths: list[nodes.Text] = []
        sections: dict[str, list[_Item]] = {}
        current: list[_Item] | None = None
        for item in items:
            kind = getattr(item, "type", None)  # a condition node has none
            if kind in _SECTION_KEYWORDS:
                current = sections[kind] = []
            elif current is not None:
                current.append(item)
            elif kind == "METHOD":
                cast(list[nodes.Text], methods).append(self._text(item))
            elif kind == "PATH":
                paths.append(self._text(item))
            elif kind == "ANNOTATION":
                if rule_id is None:
                    rule_id = self._rule_id(item)
                else:
                    self.token_errors.append(
                        Diagnostic(
                            "syntax",
                            "a rule has one @id; this is a second one",
                            self._token_span(item),
                            help="keep one id per rule",
                        )
                    )
            elif kind == "EFFECT":
                effect = item
            elif kind == "ANY_METHOD":
                methods = None
            elif kind == "AUDIT":
                audit = item
        hosts = sections.get("HOST", ())
        ports = sections.get("PORT", ())
        when, unless = sections.get("WHEN"), sections.get("UNLESS")
        return nodes.Rule(
            effect=cast(Any, cast(Token, effect).value),
            audit=audit is not None,
            rule_id=rule_id,
            methods=tuple(methods) if methods is not None else None,
            paths=tuple(paths),
            hosts=tuple(self._string(t) for t in hosts if t.type == "STRING"),
            ports=tuple(self._text(t) for t in ports if t.type == "PORT_NUMBER"),
            sources=tuple(x for x in sections.get("FROM", ()) if isinstance(x, nodes.SourceTerm)),
            when=_condition(when[0]) if when else None,
            unless=_condition(unless[0]) if unless else None,
            span=self._span(items),
        )

    def _rule_id(self, token: _Item) -> nodes.Text:
        # One token, `@id("...")`: the id's span is that of its quoted string.
        offset = token.value.index('"')
        quoted = token.value[offset : token.value.rindex('"') + 1]
        column = token.column + offset
        span = Span(self.path, token.line, column, token.line, column + len(quoted))
        return nodes.Text(self._unquote(quoted, span), span)

    # --- sources

    def source(self, items: list[_Item]) -> nodes.SourceTerm:
        # The first token says the kind (a keyword, or a bare ID or set name); the
        # last one, if a string or a name, is the value.
        first, last = items[0], items[-1]
        value: str | None = None
        if last.type == "STRING":
            value = self._unquote(last.value, self._token_span(last))
        elif last.type == "NAME":
            value = last.value
        return nodes.SourceTerm(_SOURCE_KINDS[first.type], value, self._span(items))

    # --- conditions

    def atom(self, items: list[_Item]) -> _Part:
        # "(" condition ")": the condition keeps its own span; what holds it counts the
        # parentheses too.
        return _Part("parenthesised", _condition(items[1]), self._span(items))

    def or_(self, items: list[_Item]) -> nodes.Or:
        return nodes.Or(_condition(items[0]), _condition(items[2]), self._span(items))

    def and_(self, items: list[_Item]) -> nodes.And:
        return nodes.And(_condition(items[0]), _condition(items[2]), self._span(items))

    def not_(self, items: list[_Item]) -> nodes.Not:
        return nodes.Not(_condition(items[1]), self._span(items))

    def has(self, items: list[_Item]) -> nodes.Has:
        return nodes.Has(items[1], self._span(items))

    def compare(self, items: list[_Item]) -> nodes.Compare:
        return nodes.Compare(items[1].value, items[0], items[2], self._span(items))

    def _operator(self, op: nodes.CompareOp, items: list[_Item]) -> nodes.Compare:
        return nodes.Compare(op, items[0], items[2], self._span(items))

    def in_(self, items: list[_Item]) -> nodes.Compare:
        return self._operator("in", items)

    def contains(self, items: list[_Item]) -> nodes.Compare:
        return self._operator("contains", items)

    def within(self, items: list[_Item]) -> nodes.Compare:
        return self._operator("within", items)

    def matches(self, items: list[_Item]) -> nodes.Compare:
        pattern = self._string(items[2])
        return nodes.Compare(
            "matches", items[0], nodes.Literal_(pattern.value, pattern.span), self._span(items)
        )

    def attribute(self, items: list[_Item]) -> nodes.Attribute:
        parts = []
        for token in self._named(items, _ATTRIBUTE_PART):
            if token.type == "STRING":
                parts.append(self._unquote(token.value, self._token_span(token)))
            else:
                parts.append(token.value)
        return nodes.Attribute(tuple(parts), self._span(items))

    # --- literals

    def string(self, items: list[_Item]) -> nodes.Literal_:
        return nodes.Literal_(self._string(items[0]).value, self._span(items))

    def number(self, items: list[_Item]) -> nodes.Literal_:
        raw = items[0].value
        span = self._span(items)
        if sum(c.isdigit() for c in raw) > MAX_NUMBER_DIGITS:
            self.token_errors.append(
                Diagnostic(
                    "syntax",
                    f"a number has at most {MAX_NUMBER_DIGITS} digits",
                    span,
                    help="compare such a value as a string",
                )
            )
            return nodes.Literal_(0, span)
        return nodes.Literal_(float(raw) if "." in raw else int(raw), span)

    def true(self, items: list[_Item]) -> nodes.Literal_:
        return nodes.Literal_(True, self._span(items))

    def false(self, items: list[_Item]) -> nodes.Literal_:
        return nodes.Literal_(False, self._span(items))

    def list(self, items: list[_Item]) -> nodes.Literal_:
        values = tuple(x for x in items if isinstance(x, nodes.Literal_))
        return nodes.Literal_(values, self._span(items))


def _condition(item: nodes.Condition | _Part) -> nodes.Condition:
    return cast(nodes.Condition, item.value) if isinstance(item, _Part) else item


_SECTION_KEYWORDS = frozenset({"HOST", "PORT", "FROM", "WHEN", "UNLESS"})
_SOURCE_KINDS: dict[str, nodes.SourceKind] = {
    "STRING": "id",
    "NAME": "set",
    "NAMESPACE": "namespace",
    "SA": "sa",
    "TRUST_DOMAIN": "trust_domain",
    "IP": "cidr",
    "ANY": "any",
    "AUTHENTICATED": "authenticated",
    "UNAUTHENTICATED": "unauthenticated",
}
_ATTRIBUTE_PART = frozenset({"NAME", "STRING"})
