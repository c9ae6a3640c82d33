"""The syntax tree of a policy file, as written, with a source span on every node.

Nothing here is resolved or validated: names are still names, identities still text.
The checker turns these nodes into the checked model (``model.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from .diagnostics import Span


@dataclass(frozen=True, slots=True)
class Comment:
    text: str
    span: Span


# --- sources -------------------------------------------------------------------------

SourceKind = Literal[
    "id",
    "namespace",
    "sa",
    "trust_domain",
    "cidr",
    "any",
    "authenticated",
    "unauthenticated",
    "set",
]


@dataclass(frozen=True, slots=True)
class SourceTerm:
    """One alternative after ``from`` (or inside a principal set)."""

    kind: SourceKind
    value: str | None
    span: Span


# --- conditions ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attribute:
    """``source.namespace``, ``request.headers["x-id"]``, ``jwt.realm.roles`` ..."""

    parts: tuple[str, ...]
    span: Span

    @property
    def dotted(self) -> str:
        return dotted_name(self.parts)


def dotted_name(parts: tuple[str, ...]) -> str:
    """An attribute as a policy writes it: ``jwt.realm.roles``, ``request.headers["x-a"]``."""
    out = parts[0]
    for part in parts[1:]:
        # A quoted name is a policy string: JSON escapes, so `"` or a newline round-trips.
        out += f".{part}" if part.isidentifier() else f"[{json.dumps(part, ensure_ascii=False)}]"
    return out


@dataclass(frozen=True, slots=True)
class Literal_:
    """A literal value: str, int/float, bool, or a list of literals."""

    value: str | int | float | bool | tuple[Literal_, ...]
    span: Span


CompareOp = Literal["==", "!=", "in", "contains", "matches", "within"]


@dataclass(frozen=True, slots=True)
class Compare:
    op: CompareOp
    attribute: Attribute
    operand: Literal_
    span: Span


@dataclass(frozen=True, slots=True)
class Has:
    attribute: Attribute
    span: Span


@dataclass(frozen=True, slots=True)
class Not:
    operand: Condition
    span: Span


@dataclass(frozen=True, slots=True)
class And:
    left: Condition
    right: Condition
    span: Span


@dataclass(frozen=True, slots=True)
class Or:
    left: Condition
    right: Condition
    span: Span


Condition = Compare | Has | Not | And | Or

# Deeper conditions are a syntax error (and refused in a bundle): the checker, compiler,
# formatter and linter walk them recursively. A chain `a or b or ...` nests one level per
# operator; a long list of alternatives is written `in [...]`.
MAX_CONDITION_DEPTH = 200
# Lists inside lists: walked recursively as well. Numbers: a claim is a JSON number, and
# past this many digits a float is infinite (and an int too long to convert).
MAX_LIST_DEPTH = 32
MAX_NUMBER_DIGITS = 40


# --- rules, services, files ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Text:
    """A token's text and where it was written."""

    value: str
    span: Span


@dataclass(frozen=True, slots=True)
class Rule:
    effect: Literal["allow", "deny"]
    audit: bool
    rule_id: Text | None
    methods: tuple[Text, ...] | None  # None is `*`
    paths: tuple[Text, ...]
    hosts: tuple[Text, ...]
    ports: tuple[Text, ...]
    sources: tuple[SourceTerm, ...]
    when: Condition | None
    unless: Condition | None
    span: Span


@dataclass(frozen=True, slots=True)
class ServiceBlock:
    name: Text
    port: Text | None
    audit: bool
    default: Text | None
    rules: tuple[Rule, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class PrincipalSet:
    name: Text
    members: tuple[SourceTerm, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class PolicyFile:
    path: str
    trust_domain: Text | None
    principal_sets: tuple[PrincipalSet, ...]
    services: tuple[ServiceBlock, ...]
    comments: tuple[Comment, ...]
    extra_trust_domains: tuple[Text, ...] = ()  # a second `trust_domain` is an error
