"""``meshward fmt``: one canonical layout for policy files, printed from the syntax tree.

Layout: declarations separated by one blank line; inside a service, ``default`` and the
rules separated by one blank line; ``@id`` on its own line above its rule; the rule head
(effect, methods, paths, hosts, ports) on one line, ``from`` joining it while the line
fits in 100 columns; ``when`` and ``unless`` on their own lines, indented; strings in
double quotes with JSON escapes; a principal set on one line while it fits, else one
member per line with a trailing comma.

Comments are kept: a comment alone on its line stays above the thing that follows it
(a rule, its head, its `when` or `unless` line, a set member, the closing brace); a
comment at the end of a line stays at the end of the line that holds the thing it
followed (when several end up on one joined line, all but the last go above it). One
blank line before or after a comment block is kept. Formatting twice changes nothing.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field

from . import nodes
from .diagnostics import PolicyError, SourceSet, Span
from .parser import parse

INDENT = "  "
CONTINUATION = "    "  # a rule's `from`, `when` and `unless` lines
WIDTH = 100

Position = tuple[int, int]


def format_text(text: str, path: str = "<policy>") -> str:
    """The canonical form of a policy file's text; raises :class:`PolicyError` on
    syntax errors (a file that does not parse cannot be formatted)."""
    result = parse(text, path)
    if result.file is None:
        raise PolicyError(result.diagnostics, SourceSet({path: text}))
    return format_file(result.file, text)


def format_file(file: nodes.PolicyFile, text: str) -> str:
    """Print a parsed file in the canonical layout; ``text`` is its source (for where
    comments and blank lines were)."""
    return _Printer(file, text.split("\n")).run()


# --- anchors: where each comment goes -------------------------------------------------


@dataclass(eq=False)
class _Anchor:
    """Something a comment can sit above or behind, with where it was written."""

    start: Position
    end: Position
    owner: object  # the node whose leading comments a comment above this goes to
    line_owner: object  # the printed line a comment behind this goes to


@dataclass
class _Comments:
    leading: dict[int, list[nodes.Comment]] = field(default_factory=lambda: defaultdict(list))
    trailing: dict[int, list[nodes.Comment]] = field(default_factory=lambda: defaultdict(list))
    end_of_file: list[nodes.Comment] = field(default_factory=list)


def _start(span: Span) -> Position:
    return (span.line, span.column)


def _end(span: Span) -> Position:
    return (span.end_line, span.end_column)


def _key(owner: object) -> int:
    """Comments are filed by the node they belong to, or by a (part, node id) pair."""
    return hash(owner) if isinstance(owner, tuple) else id(owner)


class _Printer:
    def __init__(self, file: nodes.PolicyFile, lines: list[str]):
        self.file = file
        self.lines = lines
        self.out: list[str] = []
        self.comments = _Comments()
        self.multiline_sets: set[int] = set()
        self._place_comments()

    # --- comment placement -----------------------------------------------------------

    def _anchors(self) -> list[_Anchor]:
        f = self.file
        anchors: list[_Anchor] = []
        for td in (*((f.trust_domain,) if f.trust_domain else ()), *f.extra_trust_domains):
            anchors.append(_Anchor(_start(td.span), _end(td.span), td, td))
        for ps in f.principal_sets:
            head_end = _end(ps.name.span)
            anchors.append(_Anchor(_start(ps.span), head_end, ps, ps))
            for member in ps.members:
                anchors.append(_Anchor(_start(member.span), _end(member.span), member, member))
            close = (ps.span.end_line, ps.span.end_column - 1)
            anchors.append(_Anchor(close, _end(ps.span), ("close", id(ps)), ("close", id(ps))))
        for block in f.services:
            head_end = _end(block.port.span if block.port else block.name.span)
            anchors.append(_Anchor(_start(block.span), head_end, block, block))
            if block.default is not None:
                d = block.default
                anchors.append(_Anchor(_start(d.span), _end(d.span), d, d))
            for rule in block.rules:
                anchors.extend(self._rule_anchors(rule))
            close = (block.span.end_line, block.span.end_column - 1)
            anchors.append(
                _Anchor(close, _end(block.span), ("close", id(block)), ("close", id(block)))
            )
        anchors.sort(key=lambda a: a.start)
        return anchors

    def _rule_anchors(self, rule: nodes.Rule) -> list[_Anchor]:
        out = []
        head_start = _start(rule.span)
        if rule.rule_id is not None:
            out.append(_Anchor(head_start, _end(rule.rule_id.span), rule, ("id", id(rule))))
        parts = [
            *(rule.methods or ()),
            *rule.paths,
            *rule.hosts,
            *rule.ports,
        ]
        head_end = max((_end(p.span) for p in parts), default=head_start)
        for term in rule.sources:
            head_end = max(head_end, _end(term.span))
        first = min((_start(p.span) for p in parts), default=head_start)
        # A comment above the head (below @id) or above a clause stays exactly there.
        head_owner: object = ("head", id(rule)) if rule.rule_id is not None else rule
        out.append(_Anchor(first, head_end, head_owner, ("head", id(rule))))
        for clause, cond in (("when", rule.when), ("unless", rule.unless)):
            if cond is not None:
                key = (clause, id(rule))
                out.append(_Anchor(_start(cond.span), _end(cond.span), key, key))
        return out

    def _own_line(self, comment: nodes.Comment) -> bool:
        line = self.lines[comment.span.line - 1] if comment.span.line <= len(self.lines) else ""
        return not line[: comment.span.column - 1].strip()

    def _place_comments(self) -> None:
        anchors = self._anchors()
        closes = {("close", id(b)) for b in self.file.services}
        for comment in self.file.comments:
            pos = _start(comment.span)
            for ps in self.file.principal_sets:
                if _start(ps.span) < pos < _end(ps.span):
                    self.multiline_sets.add(id(ps))
            if self._own_line(comment):
                nxt = next((a for a in anchors if a.start > pos), None)
                if nxt is None:
                    self.comments.end_of_file.append(comment)
                else:
                    self.comments.leading[_key(nxt.owner)].append(comment)
                continue
            # Behind code: it follows the last thing that ends before it on its line (or,
            # inside something spanning lines, the innermost thing around it).
            before = [a for a in anchors if a.end <= pos and a.end[0] == pos[0]]
            if not before:
                before = [a for a in anchors if a.start <= pos]
            if not before:
                self.comments.end_of_file.append(comment)
                continue
            anchor = max(before, key=lambda a: a.end)
            if anchor.owner in closes:
                # Behind a one-line block (`service x { default allow }  # ...`): the
                # comment is about what the block holds, and stays on that line when the
                # block is laid out (a lint suppression there must keep covering it).
                inside = [
                    a
                    for a in before
                    if a.owner not in closes and not isinstance(a.owner, nodes.ServiceBlock)
                ]
                if inside:
                    anchor = max(inside, key=lambda a: a.end)
            self.comments.trailing[_key(anchor.line_owner)].append(comment)

    # --- output ----------------------------------------------------------------------

    def _blank_before(self, line: int) -> bool:
        return line >= 2 and line - 2 < len(self.lines) and not self.lines[line - 2].strip()

    def _blank_after(self, line: int) -> bool:
        return line < len(self.lines) and not self.lines[line].strip()

    def blank(self) -> None:
        if self.out and self.out[-1] != "" and not self.out[-1].rstrip().endswith(("{", "[")):
            self.out.append("")

    def hoist(self, key: int, indent: str) -> None:
        """One comment fits behind a line: several that end up on one line (the line
        joins what was written on several) go above it, in order, but the last."""
        trailing = self.comments.trailing.get(key, [])
        for c in trailing[:-1]:
            self.out.append(indent + c.text.rstrip())
        del trailing[:-1]

    def emit(self, indent: str, text: str, key: int | None = None) -> None:
        line = indent + text
        if key is not None:
            self.hoist(key, indent)
            trailing = self.comments.trailing.pop(key, [])
            if trailing:
                line += "  " + trailing[0].text.rstrip()
        self.out.append(line.rstrip())

    def leading(self, key: int, indent: str) -> None:
        comments = self.comments.leading.pop(key, [])
        for c in comments:
            if self._blank_before(c.span.line):
                self.blank()
            self.out.append(indent + c.text.rstrip())
        if comments and self._blank_after(comments[-1].span.line):
            self.blank()

    def run(self) -> str:
        f = self.file
        items: list[tuple[Position, nodes.Text | nodes.PrincipalSet | nodes.ServiceBlock]] = []
        for td in (*((f.trust_domain,) if f.trust_domain else ()), *f.extra_trust_domains):
            items.append((_start(td.span), td))
        items.extend((_start(ps.span), ps) for ps in f.principal_sets)
        items.extend((_start(b.span), b) for b in f.services)
        items.sort(key=lambda pair: pair[0])
        previous: object = None
        for _, item in items:
            # Principal sets written together stay together; everything else is set
            # apart by one blank line.
            grouped = isinstance(item, nodes.PrincipalSet) and isinstance(
                previous, nodes.PrincipalSet
            )
            if not grouped or self._blank_before(item.span.line):
                self.blank()
            previous = item
            self.leading(id(item), "")
            if isinstance(item, nodes.Text):
                self.emit("", f"trust_domain {_string(item.value)}", id(item))
            elif isinstance(item, nodes.PrincipalSet):
                self.principal_set(item)
            elif isinstance(item, nodes.ServiceBlock):
                self.service(item)
        if self.comments.end_of_file:
            first = self.comments.end_of_file[0]
            if self._blank_before(first.span.line):
                self.blank()
            for i, c in enumerate(self.comments.end_of_file):
                if i > 0 and self._blank_before(c.span.line):
                    self.blank()
                self.out.append(c.text.rstrip())
        while self.out and not self.out[-1]:
            self.out.pop()
        # Anything still unplaced (should not happen) is kept rather than lost.
        rest = [c for cs in self.comments.leading.values() for c in cs]
        rest += [c for cs in self.comments.trailing.values() for c in cs]
        self.out.extend(c.text.rstrip() for c in sorted(rest, key=lambda c: _start(c.span)))
        return "\n".join(self.out) + "\n" if self.out else ""

    def principal_set(self, ps: nodes.PrincipalSet) -> None:
        members = [_source(m) for m in ps.members]
        one_line = f"principals {ps.name.value} = [{', '.join(members)}]"
        close_key = _key(("close", id(ps)))
        if id(ps) not in self.multiline_sets and len(one_line) <= WIDTH:
            self.comments.trailing[id(ps)].extend(self.comments.trailing.pop(close_key, []))
            self.emit("", one_line, id(ps))
            return
        self.emit("", f"principals {ps.name.value} = [", id(ps))
        for member, text in zip(ps.members, members, strict=True):
            self.leading(id(member), INDENT)
            self.emit(INDENT, text + ",", id(member))
        self.leading(close_key, INDENT)
        self.emit("", "]", close_key)

    def service(self, block: nodes.ServiceBlock) -> None:
        head = ("audit " if block.audit else "") + f"service {block.name.value}"
        if block.port is not None:
            head += f":{block.port.value}"
        close_key = _key(("close", id(block)))
        comments = self.comments
        if not block.rules and block.default is None and close_key not in comments.leading:
            # `{}` on one line: the comments behind `{` and behind `}` share it.
            comments.trailing[id(block)] += comments.trailing.pop(close_key, [])
            self.emit("", head + " {}", id(block))
            return
        self.emit("", head + " {", id(block))
        if block.default is not None:
            self.leading(id(block.default), INDENT)
            self.emit(INDENT, f"default {block.default.value}", id(block.default))
        for rule in block.rules:
            self.blank()
            self.rule(rule)
        self.leading(close_key, INDENT)
        self.emit("", "}", close_key)

    def rule(self, rule: nodes.Rule) -> None:
        self.leading(id(rule), INDENT)
        head_key = _key(("head", id(rule)))
        if rule.rule_id is not None:
            self.emit(INDENT, f"@id({_string(rule.rule_id.value)})", _key(("id", id(rule))))
            self.leading(head_key, INDENT)
        head = ("audit " if rule.audit else "") + rule.effect + " "
        head += "*" if rule.methods is None else ", ".join(m.value for m in rule.methods)
        if rule.paths:
            head += " " + ", ".join(p.value for p in rule.paths)
        if rule.hosts:
            head += " host " + ", ".join(_string(h.value) for h in rule.hosts)
        if rule.ports:
            head += " port " + ", ".join(p.value for p in rule.ports)
        if rule.sources:
            sources = "from " + ", ".join(_source(s) for s in rule.sources)
            if len(INDENT + head + " " + sources) <= WIDTH:
                self.emit(INDENT, head + " " + sources, head_key)
            else:
                self.hoist(head_key, INDENT)
                self.out.append(INDENT + head)
                self.emit(CONTINUATION, sources, head_key)
        else:
            self.emit(INDENT, head, head_key)
        for clause, cond in (("when", rule.when), ("unless", rule.unless)):
            if cond is not None:
                key = _key((clause, id(rule)))
                self.leading(key, CONTINUATION)
                self.emit(CONTINUATION, f"{clause} {condition(cond)}", key)


# --- pieces --------------------------------------------------------------------------


def _string(value: str) -> str:
    text = json.dumps(value, ensure_ascii=False)
    # A lone surrogate (from a `\ud800` escape) cannot be written as UTF-8: keep the escape.
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _source(term: nodes.SourceTerm) -> str:
    value = term.value or ""
    if term.kind == "id":
        return _string(value)
    if term.kind in ("namespace", "sa", "trust_domain"):
        return f"{term.kind} {_string(value)}"
    if term.kind == "cidr":
        return f"ip {_string(value)}"
    if term.kind == "set":
        return value
    return term.kind  # any, authenticated, unauthenticated


_PRECEDENCE = {nodes.Or: 1, nodes.And: 2, nodes.Not: 3}


def condition(cond: nodes.Condition) -> str:
    """A condition with the fewest parentheses that keep its tree."""
    if isinstance(cond, nodes.Or | nodes.And):
        word = "or" if isinstance(cond, nodes.Or) else "and"
        mine = _PRECEDENCE[type(cond)]
        left = _wrap(cond.left, mine, same_ok=True)
        right = _wrap(cond.right, mine, same_ok=False)
        return f"{left} {word} {right}"
    if isinstance(cond, nodes.Not):
        return "not " + _wrap(cond.operand, 3, same_ok=True)
    if isinstance(cond, nodes.Has):
        return "has " + _attribute(cond.attribute)
    attr = _attribute(cond.attribute)
    if cond.op == "matches":
        return f"{attr} matches {_literal(cond.operand)}"
    return f"{attr} {cond.op} {_literal(cond.operand)}"


def _wrap(cond: nodes.Condition, parent: int, same_ok: bool) -> str:
    text = condition(cond)
    mine = _PRECEDENCE.get(type(cond), 4)
    if mine < parent or (mine == parent and not same_ok and mine < 3):
        return f"({text})"
    return text


def _attribute(attr: nodes.Attribute) -> str:
    out = attr.parts[0]
    for part in attr.parts[1:]:
        if _is_name(part):
            out += f".{part}"
        else:
            out += f"[{_string(part)}]"
    return out


def _is_name(text: str) -> bool:
    return text.isascii() and text.isidentifier() and text not in _KEYWORDS


_KEYWORDS = frozenset(
    {"and", "or", "not", "has", "in", "contains", "matches", "within", "true", "false"}
)


def _literal(lit: nodes.Literal_) -> str:
    value = lit.value
    if isinstance(value, tuple):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, int):
        return str(value)
    text = repr(value)
    if "e" in text or "E" in text or "inf" in text or "nan" in text:
        text = f"{value:.17f}".rstrip("0")
        if text.endswith("."):
            text += "0"
    return text
