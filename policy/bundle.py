"""Compiled policy bundles: a versioned, checksummed file that loads without the grammar.

The bundle carries the checked model (every rule in resolved, validated form); loading
rebuilds the decision tables from it, which takes milliseconds and keeps the file
independent of in-memory index layouts. Nothing in a bundle is executable.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import re
from pathlib import Path
from typing import Any, cast, get_args, get_type_hints

from . import model
from .diagnostics import Span
from .identity import check_trust_domain, parse_spiffe_id
from .nodes import MAX_CONDITION_DEPTH, MAX_NUMBER_DIGITS
from .paths import parse_path_pattern
from .request import canonical_network

FORMAT = "meshward-bundle"
VERSION = 1


class BundleError(ValueError):
    """A bundle that is not one, is from another version, or was altered."""


def _payload(policy: model.PolicySet) -> tuple[dict[str, Any], str]:
    """The bundle's payload and the checksum of its canonical JSON."""
    payload = {
        "trust_domains": sorted(policy.trust_domains),
        "services": [_service(s) for s in policy.services.values()],
    }
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return payload, hashlib.sha256(body.encode()).hexdigest()


def fingerprint(policy: model.PolicySet) -> str:
    """A digest of a checked policy set's meaning: equal sets, equal fingerprints (and it
    is the checksum its bundle carries)."""
    return _payload(policy)[1]


def dumps(policy: model.PolicySet) -> str:
    payload, checksum = _payload(policy)
    return json.dumps(
        {"format": FORMAT, "version": VERSION, "sha256": checksum, "payload": payload},
        sort_keys=True,
    )


def loads(text: str) -> model.PolicySet:
    """Parse a bundle; raises :class:`BundleError` with what is wrong.

    The checksum finds accidents (a truncated or edited file); it is no signature. The
    payload is still validated field by field, as strictly as the checker would, so that a
    malformed bundle is refused instead of deciding differently from its source (an
    unknown effect read as an allow, a string read as a port).
    """
    try:
        doc = json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:  # JSONDecodeError, or a number too long to convert
        raise BundleError(f"not a meshward bundle (invalid JSON: {exc})") from None
    except RecursionError:
        raise BundleError("not a meshward bundle (JSON nested too deeply)") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BundleError("not a meshward bundle (missing format marker)")
    version = doc.get("version")
    if type(version) is not int or version != VERSION:  # not True, not 1.0
        raise BundleError(
            f"bundle version {version!r} is not supported (this meshward reads "
            f"version {VERSION}); recompile it with `meshward compile`"
        )
    payload = doc.get("payload")
    if not isinstance(payload, dict):
        raise BundleError("malformed bundle: no payload")
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    if hashlib.sha256(body.encode()).hexdigest() != doc.get("sha256"):
        raise BundleError("bundle checksum mismatch: the file was altered or truncated")
    try:
        services = {}
        for s in _list(payload.get("services"), "services"):
            svc = _load_service(s)
            if svc.key in services:
                raise BundleError(f"service {svc.key} appears twice")
            services[svc.key] = svc
        domains = _list(payload.get("trust_domains"), "trust_domains")
        for td in domains:
            check_trust_domain(_str(td, "a trust domain"))
        policy = model.PolicySet(services, frozenset(domains))
        seen: set[str] = set()
        for rule in policy.rules():
            if rule.rule_id in seen:  # decisions, logs and headers name rules by id
                raise BundleError(f"rule id {rule.rule_id!r} is used twice")
            seen.add(rule.rule_id)
        return policy
    except ValueError as exc:  # a BundleError, or a value the language refuses (path, CIDR...)
        raise BundleError(f"malformed bundle payload: {exc}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a policy can hold")


def write(policy: model.PolicySet, path: str | Path) -> None:
    Path(path).write_text(dumps(policy), encoding="utf-8")


def _service(s: model.ServicePolicy) -> dict[str, Any]:
    return {
        "name": s.key.name,
        "port": s.key.port,
        "default": s.default,
        "rules": [_rule(r) for r in s.rules],
    }


def _rule(r: model.Rule) -> dict[str, Any]:
    return {
        "id": r.rule_id,
        "explicit_id": r.explicit_id,
        "effect": r.effect,
        "audit": r.audit,
        "methods": sorted(r.methods) if r.methods is not None else None,
        "paths": [p.text for p in r.paths] if r.paths is not None else None,
        "hosts": [h.text for h in r.hosts] if r.hosts is not None else None,
        "ports": sorted(r.ports) if r.ports is not None else None,
        "sources": [[s.kind, s.value] for s in r.sources],
        "when": _cond(r.when),
        "unless": _cond(r.unless),
        "span": [r.span.file, r.span.line, r.span.column, r.span.end_line, r.span.end_column],
    }


def _cond(c: model.Cond | None) -> Any:
    if c is None:
        return None
    if isinstance(c, model.AllOf):
        return {"all": [_cond(x) for x in c.operands]}
    if isinstance(c, model.AnyOf):
        return {"any": [_cond(x) for x in c.operands]}
    if isinstance(c, model.NotCond):
        return {"not": _cond(c.operand)}
    attr = {"attr": list(c.attribute.parts), "type": c.attribute.type}
    if isinstance(c, model.HasAttr):
        return {"has": attr}
    return {"cmp": c.op, **attr, "value": _value(c.operand)}


def _value(v: model.Value) -> Any:
    return {"list": [_value(x) for x in v]} if isinstance(v, tuple) else v


# --- loading: every field checked for its type and its allowed values ---------------

_EFFECTS = ("allow", "deny")
_SOURCE_KINDS = get_args(model.SourceKind)
_OPERATORS = get_args(get_type_hints(model.Cmp)["op"])


def _str(v: Any, what: str) -> str:
    if not isinstance(v, str):
        raise BundleError(f"{what} is not a string: {v!r}")
    return v


def _bool(v: Any, what: str) -> bool:
    if not isinstance(v, bool):
        raise BundleError(f"{what} is not true or false: {v!r}")
    return v


def _port(v: Any, what: str) -> int:
    if type(v) is not int or not 0 < v <= 65535:
        raise BundleError(f"{what} is not a port number: {v!r}")
    return v


def _list(v: Any, what: str) -> list[Any]:
    if not isinstance(v, list):
        raise BundleError(f"{what} is not a list: {v!r}")
    return v


def _dict(v: Any, what: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise BundleError(f"{what} is not an object: {v!r}")
    return v


def _fields(v: Any, names: frozenset[str], what: str) -> dict[str, Any]:
    """An object with exactly these keys, as ``dumps`` writes it: none missing (read as
    "any"), none unknown (silently ignored)."""
    d = _dict(v, what)
    if d.keys() != names:
        raise BundleError(f"{what} has the keys {sorted(d)}, not {sorted(names)}")
    return d


_SERVICE_FIELDS = frozenset({"name", "port", "default", "rules"})
_RULE_FIELDS = frozenset(
    {"id", "explicit_id", "effect", "audit", "methods", "paths", "hosts", "ports", "sources"}
    | {"when", "unless", "span"}
)
_ATTR_FIELDS = frozenset({"attr", "type"})
_CMP_FIELDS = frozenset({"cmp", "value"}) | _ATTR_FIELDS


def _one_of(v: Any, options: tuple[str, ...], what: str) -> Any:
    if v not in options or not isinstance(v, str):
        raise BundleError(f"{what} {v!r} is not one of {', '.join(options)}")
    return v


def _strings(v: Any, what: str, pattern: re.Pattern[str] | None = None) -> list[str] | None:
    if v is None:
        return None
    out = [_str(x, what) for x in _list(v, what + "s")]
    if not out:  # the language writes no empty set: absent means any
        raise BundleError(f"an empty list of {what}s")
    for x in out:
        if pattern is not None and not pattern.fullmatch(x):
            raise BundleError(f"{what} as the checker would refuse it: {x!r}")
    return out


def _load_value(v: Any) -> model.Value:
    if isinstance(v, dict):
        items = _fields(v, frozenset({"list"}), "a list literal")["list"]
        return tuple(_load_value(x) for x in _list(items, "a list literal"))
    if not isinstance(v, str | int | float | bool):
        raise BundleError(f"bad literal {v!r}")
    if isinstance(v, float) and not math.isfinite(v):  # 1e999 reads as infinity
        raise BundleError(f"a number no policy can hold: {v!r}")
    if isinstance(v, int) and len(str(abs(v))) > MAX_NUMBER_DIGITS:
        raise BundleError(f"a number has at most {MAX_NUMBER_DIGITS} digits")
    return v


def _load_attr(d: dict[str, Any]) -> model.AttributeRef:
    parts = tuple(_str(p, "an attribute part") for p in _list(d.get("attr"), "attr"))
    kind = model.attribute_type(parts)
    if kind is None:
        raise BundleError(f"unknown attribute {'.'.join(parts)!r} (header names are lower-case)")
    # The type decides how constants are compared (addresses canonicalised, for one): it
    # must be the language's, not one the file chose.
    if d.get("type") != kind:
        raise BundleError(f"attribute {'.'.join(parts)} has type {kind}, not {d.get('type')!r}")
    return model.AttributeRef(parts, kind)


def _load_cond(v: Any, depth: int = 0) -> model.Cond | None:
    if v is None:
        return None
    if depth > MAX_CONDITION_DEPTH:
        raise BundleError(f"a condition nests more than {MAX_CONDITION_DEPTH} levels deep")
    d = _dict(v, "a condition")
    if len(d) == 1 and ("all" in d or "any" in d):
        kind, items = next(iter(d.items()))
        operands = tuple(_load_cond(_dict(x, "a condition"), depth + 1) for x in _list(items, kind))
        if not operands:
            raise BundleError(f"an empty {kind!r} condition")
        conds = cast(tuple[model.Cond, ...], operands)
        return model.AllOf(conds) if kind == "all" else model.AnyOf(conds)
    if len(d) == 1 and "not" in d:
        return model.NotCond(
            cast(model.Cond, _load_cond(_dict(d["not"], "a condition"), depth + 1))
        )
    if len(d) == 1 and "has" in d:
        return model.HasAttr(_load_attr(_fields(d["has"], _ATTR_FIELDS, "a `has` test")))
    d = _fields(d, _CMP_FIELDS, "a comparison")
    op = _one_of(d.get("cmp"), _OPERATORS, "operator")
    operand = _load_value(d.get("value"))
    literals = operand if isinstance(operand, tuple) else (operand,)
    if op in ("matches", "within") and not all(isinstance(x, str) for x in literals):
        raise BundleError(f"{op} takes strings: {operand!r}")
    if op == "within":
        for network in literals:
            ipaddress.ip_network(cast(str, network))
    attribute = _load_attr(d)
    mismatch = model.operand_mismatch(op, attribute, operand)
    if mismatch is not None:
        raise BundleError(mismatch)
    return model.Cmp(op, attribute, model.canonical_operand(op, attribute, operand))


def _load_source(v: Any) -> model.Source:
    pair = _list(v, "a source")
    if len(pair) != 2:
        raise BundleError(f"a source is [kind, value]: {v!r}")
    kind = _one_of(pair[0], _SOURCE_KINDS, "source kind")
    value = _str(pair[1], "a source value")
    if kind in ("any", "authenticated", "unauthenticated"):
        if value:
            raise BundleError(f"an {kind!r} source has no value: {value!r}")
    elif kind == "id":
        if not parse_spiffe_id(value).path:
            raise BundleError(f"an id source names a workload, not a trust domain: {value!r}")
    elif kind == "trust_domain":
        check_trust_domain(value)
    elif kind == "namespace":
        td, slash, ns = value.partition("/")
        check_trust_domain(td)
        if not slash or not ns:
            raise BundleError(f"a namespace source is trust-domain/namespace: {value!r}")
        if not model.NAMESPACE_PATTERN.fullmatch(ns):
            raise BundleError(f"not a namespace: {ns!r}")
    elif kind == "cidr":
        value = canonical_network(value)  # as the checker writes it today
    return model.Source(kind, value)


def _load_rule(v: Any) -> model.Rule:
    r = _fields(v, _RULE_FIELDS, "a rule")
    rule_id = _str(r.get("id"), "a rule id")
    if not rule_id.strip() or not rule_id.isprintable():
        raise BundleError(f"bad rule id {rule_id!r}")
    methods = _strings(r.get("methods"), "a method", model.METHOD_PATTERN)
    paths = _strings(r.get("paths"), "a path pattern")
    hosts = _strings(r.get("hosts"), "a host", model.HOST_PATTERN)
    ports = r.get("ports")
    span = _list(r.get("span"), "a span")
    if len(span) != 5 or not isinstance(span[0], str) or any(type(x) is not int for x in span[1:]):
        raise BundleError(f"a span is [file, line, column, end line, end column]: {span!r}")
    return model.Rule(
        rule_id=rule_id,
        effect=_one_of(r.get("effect"), _EFFECTS, "effect"),
        audit=_bool(r.get("audit"), "audit"),
        methods=frozenset(methods) if methods is not None else None,
        paths=tuple(parse_path_pattern(p) for p in paths) if paths is not None else None,
        hosts=tuple(model.HostPattern(h) for h in hosts) if hosts is not None else None,
        ports=(
            frozenset(_port(p, "a rule port") for p in _list(ports, "ports"))
            if ports is not None
            else None
        ),
        # (Empty for a rule `from` an empty principal set: it matches no caller.)
        sources=tuple(_load_source(x) for x in _list(r.get("sources"), "sources")),
        when=_load_cond(r.get("when")),
        unless=_load_cond(r.get("unless")),
        span=Span(*span),
        explicit_id=_bool(r.get("explicit_id"), "explicit_id"),
    )


def _load_service(v: Any) -> model.ServicePolicy:
    s = _fields(v, _SERVICE_FIELDS, "a service")
    port = s.get("port")
    name = _str(s.get("name"), "a service name")
    if not model.SERVICE_NAME_PATTERN.fullmatch(name):
        raise BundleError(f"a service name as the checker would refuse it: {name!r}")
    key = model.ServiceKey(name, None if port is None else _port(port, "a service port"))
    rules = tuple(_load_rule(r) for r in _list(s.get("rules"), "rules"))
    return model.ServicePolicy(key, rules, _one_of(s.get("default"), _EFFECTS, "default"))
