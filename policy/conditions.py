"""`when` / `unless` conditions compiled once into closures, and their semantics.

A condition is evaluated left to right with short-circuit `and` / `or` (so
``has jwt.x and jwt.x == "a"`` is safe). A missing attribute or a value of the wrong
type cannot be evaluated; the caller makes the rule fail closed (a deny matches, an
allow does not) and reports the message. Inside, a missing attribute (the common case:
a request without that claim) travels as a :class:`Failure` value built at compile
time, not as an exception, because raising costs more than the rest of a decision.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from . import model
from .identity import Identity
from .request import Request, canonical_ip, source_address


class EvalError(Exception):
    """A condition that cannot be evaluated for this request."""


@dataclass(frozen=True, slots=True)
class Failure:
    """The outcome of a condition that cannot be evaluated, with the reason."""

    message: str


class Context:
    """A request as conditions see it: identity parsed, path canonical, host without port.

    A plain class, not a frozen dataclass: one is built per conditional decision, and a
    frozen dataclass costs three times as much to build (twelve times once compiled).
    """

    __slots__ = ("host", "identity", "path", "request")

    def __init__(
        self, request: Request, identity: Identity | None, path: str, host: str | None
    ) -> None:
        self.request = request
        self.identity = identity
        self.path = path
        self.host = host


Getter = Callable[[Context], Any]
Predicate = Callable[[Context], bool]
# True, False, or a Failure; a value of the wrong type still raises EvalError.
Outcome = bool | Failure
Evaluator = Callable[[Context], Outcome]
_MISSING: Final[Any] = object()


def compile_condition(cond: model.Cond) -> Predicate:
    """Compile a checked condition into a predicate that raises :class:`EvalError` when
    the condition cannot be evaluated."""
    evaluate = _compile(cond)

    def predicate(ctx: Context) -> bool:
        outcome = evaluate(ctx)
        if outcome.__class__ is Failure:
            raise EvalError(outcome.message)
        return outcome is True

    return predicate


def _compile(cond: model.Cond) -> Evaluator:
    if isinstance(cond, model.AllOf):
        parts = tuple(_compile(c) for c in cond.operands)

        def all_of(ctx: Context) -> Outcome:
            for part in parts:
                outcome = part(ctx)
                if outcome is not True:
                    return outcome  # False, or a failure
            return True

        return all_of
    if isinstance(cond, model.AnyOf):
        parts = tuple(_compile(c) for c in cond.operands)

        def any_of(ctx: Context) -> Outcome:
            for part in parts:
                outcome = part(ctx)
                if outcome is not False:
                    return outcome  # True, or a failure
            return False

        return any_of
    if isinstance(cond, model.NotCond):
        inner = _compile(cond.operand)

        def not_(ctx: Context) -> Outcome:
            outcome = inner(ctx)
            return outcome if outcome.__class__ is Failure else outcome is False

        return not_
    getter = attribute_getter(cond.attribute)
    if isinstance(cond, model.HasAttr):
        return lambda ctx: getter(ctx) is not _MISSING
    name = cond.attribute.dotted
    test = _operator(cond.op, cond.operand, name)
    missing = Failure(f"{name} is missing")

    def compare(ctx: Context) -> Outcome:
        value = getter(ctx)
        if value is _MISSING:
            return missing
        return test(value)

    return compare


def attribute_getter(attr: model.AttributeRef) -> Getter:
    """A function returning the attribute's value for a request, or the MISSING marker."""
    parts = attr.parts
    root = parts[0]
    if root == "jwt":
        claim_path = parts[1:]

        def jwt(ctx: Context) -> Any:
            value: Any = ctx.request.jwt
            for key in claim_path:
                # Claims are decoded JSON, so dicts: a branch of their own is one cheap
                # type check and a direct lookup once compiled.
                if isinstance(value, dict):  # noqa: SIM114 (the typed branch is the point)
                    value = value.get(key, _MISSING)
                elif isinstance(value, Mapping):
                    value = value.get(key, _MISSING)
                else:
                    return _MISSING
                if value is _MISSING:
                    return _MISSING
            return _MISSING if value is None else value

        return jwt
    if parts[:2] == ("request", "headers"):
        header = parts[2]
        return lambda ctx: ctx.request.headers.get(header, _MISSING)
    getter = _FIXED_GETTERS[parts]
    return lambda ctx: _or_missing(getter(ctx))


def _or_missing(value: Any) -> Any:
    return _MISSING if value is None else value


def _identity_field(name: str) -> Getter:
    return lambda ctx: getattr(ctx.identity, name) if ctx.identity is not None else None


_FIXED_GETTERS: dict[tuple[str, ...], Getter] = {
    ("source", "principal"): _identity_field("spiffe_id"),
    ("source", "namespace"): _identity_field("namespace"),
    ("source", "service_account"): _identity_field("service_account"),
    ("source", "trust_domain"): _identity_field("trust_domain"),
    ("source", "ip"): lambda ctx: _canonical_ip(ctx.request.source_ip),
    ("request", "method"): lambda ctx: ctx.request.method,
    ("request", "path"): lambda ctx: ctx.path,
    ("request", "host"): lambda ctx: ctx.host,
    ("destination", "service"): lambda ctx: ctx.request.destination,
    ("destination", "port"): lambda ctx: ctx.request.port,
    ("connection", "sni"): lambda ctx: ctx.request.sni,
}
assert set(_FIXED_GETTERS) == set(model.FIXED_ATTRIBUTES)


def _canonical_ip(ip: str | None) -> str | None:
    return None if ip is None else canonical_ip(ip)


def _same_kind(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, str):
        return isinstance(b, str)
    return isinstance(a, int | float) and isinstance(b, int | float)


def _operator(op: str, operand: model.Value, name: str) -> Callable[[Any], bool]:
    def wrong(value: Any, wanted: str) -> EvalError:
        return EvalError(f"{name} is {type(value).__name__}, not {wanted}")

    if op in ("==", "!="):
        negate = op == "!="

        def eq(value: Any) -> bool:
            if not _same_kind(value, operand):
                raise wrong(value, type(operand).__name__)
            return bool(value == operand) != negate

        return eq
    if op == "in":
        options = operand if isinstance(operand, tuple) else (operand,)
        # All-string options (the usual case): only a string can equal one, so a set test.
        texts = frozenset(options) if all(isinstance(o, str) for o in options) else None

        kinds = " or ".join(sorted({model.kind_of(o) for o in options}))

        def member(value: Any) -> bool:
            # A value of a kind no option has is a type error, as for `==`: it cannot be
            # evaluated (so a deny matches), not merely absent from the list.
            if texts is not None:
                if not isinstance(value, str):
                    raise wrong(value, kinds)
                return value in texts
            if not any(_same_kind(value, o) for o in options):
                raise wrong(value, kinds)
            return any(_same_kind(value, o) and value == o for o in options)

        return member
    if op == "contains":
        # Among JSON values only strings equal a string: list membership is the test.
        text_operand = isinstance(operand, str)

        def contains(value: Any) -> bool:
            if isinstance(value, str):
                if not text_operand:  # words of a string are strings, never a number
                    raise wrong(value, "a list")
                # Space-separated claims (OAuth `scope`): whole tokens, never substrings.
                return operand in value.split()
            if isinstance(value, list | tuple):
                if text_operand:
                    if operand in value:  # only a string equals a string
                        return True
                elif any(_same_kind(v, operand) and v == operand for v in value):
                    return True
                if value and not any(_same_kind(v, operand) for v in value):
                    # Not one element of the operand's kind: a type error, not a miss.
                    raise EvalError(f"{name} holds no {model.kind_of(operand)} values")
                return False
            raise wrong(value, "a list")

        return contains
    if op == "matches":
        regex = re.compile(fnmatch.translate(str(operand)), re.DOTALL)

        def glob(value: Any) -> bool:
            if not isinstance(value, str):
                raise wrong(value, "a string")
            return regex.match(value) is not None

        return glob
    if op == "within":
        networks = [ipaddress.ip_network(str(n)) for n in _as_tuple(operand)]

        def within(value: Any) -> bool:
            if not isinstance(value, str):
                raise wrong(value, "an IP address")
            try:
                address = source_address(value)
            except ValueError:
                raise EvalError(f"{name} is not an IP address: {value!r}") from None
            return any(address in n for n in networks)

        return within
    raise AssertionError(f"unknown operator {op}")  # the checker admits no other


def _as_tuple(value: model.Value) -> tuple[model.Value, ...]:
    return value if isinstance(value, tuple) else (value,)


@dataclass(frozen=True, slots=True)
class RuleCondition:
    """A rule's `when` and `unless`, compiled: matches iff when holds and unless does not."""

    when: Evaluator | None
    unless: Evaluator | None

    def verdict(self, ctx: Context, effect: str) -> tuple[bool, str | None]:
        """Whether the rule matches, failing closed: a condition that cannot be
        evaluated makes a deny match and an allow fail. Returns the error, if any."""
        try:
            if self.when is not None:
                outcome = self.when(ctx)
                if outcome is False:
                    return False, None
                if outcome is not True:
                    return effect == "deny", outcome.message
            if self.unless is not None:
                outcome = self.unless(ctx)
                if outcome is True:
                    return False, None
                if outcome is not False:
                    return effect == "deny", outcome.message
            return True, None
        except EvalError as exc:
            return effect == "deny", str(exc)

    def holds(self, ctx: Context) -> bool:
        """Whether when holds and unless does not; raises :class:`EvalError` when the
        conditions cannot be evaluated."""
        matched, error = self.verdict(ctx, "allow")
        if error is not None:
            raise EvalError(error)
        return matched


def compile_rule_condition(rule: model.Rule) -> RuleCondition | None:
    """None when the rule has no conditions at all (the common, fast case)."""
    if rule.when is None and rule.unless is None:
        return None
    return RuleCondition(
        _compile(rule.when) if rule.when is not None else None,
        _compile(rule.unless) if rule.unless is not None else None,
    )
