"""Compiled policy bundles: a versioned, checksummed file that loads without the grammar.

The bundle carries the checked model (every rule in resolved, validated form); loading
rebuilds the decision tables from it, which takes milliseconds and keeps the file
independent of in-memory index layouts. Nothing in a bundle is executable.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, cast

from . import model
from .diagnostics import Span
from .paths import parse_path_pattern

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
    """Parse a bundle; raises :class:`BundleError` with what is wrong."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BundleError(f"not a meshward bundle (invalid JSON: {exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BundleError("not a meshward bundle (missing format marker)")
    if doc.get("version") != VERSION:
        raise BundleError(
            f"bundle version {doc.get('version')!r} is not supported (this meshward reads "
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
        for s in payload["services"]:
            svc = _load_service(s)
            services[svc.key] = svc
        return model.PolicySet(services, frozenset(payload["trust_domains"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"malformed bundle payload: {exc!r}") from None


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


def _load_value(v: Any) -> model.Value:
    if isinstance(v, dict):
        return tuple(_load_value(x) for x in v["list"])
    if not isinstance(v, str | int | float | bool):
        raise TypeError(f"bad literal {v!r}")
    return v


def _load_cond(d: Any) -> model.Cond | None:
    if d is None:
        return None
    if "all" in d:
        return model.AllOf(tuple(cast(model.Cond, _load_cond(x)) for x in d["all"]))
    if "any" in d:
        return model.AnyOf(tuple(cast(model.Cond, _load_cond(x)) for x in d["any"]))
    if "not" in d:
        return model.NotCond(cast(model.Cond, _load_cond(d["not"])))
    if "has" in d:
        return model.HasAttr(model.AttributeRef(tuple(d["has"]["attr"]), d["has"]["type"]))
    attr = model.AttributeRef(tuple(d["attr"]), d["type"])
    return model.Cmp(d["cmp"], attr, _load_value(d["value"]))


def _load_service(s: dict[str, Any]) -> model.ServicePolicy:
    key = model.ServiceKey(s["name"], s["port"])
    rules = []
    for r in s["rules"]:
        rules.append(
            model.Rule(
                rule_id=r["id"],
                effect=r["effect"],
                audit=bool(r["audit"]),
                methods=frozenset(r["methods"]) if r["methods"] is not None else None,
                paths=tuple(parse_path_pattern(p) for p in r["paths"])
                if r["paths"] is not None
                else None,
                hosts=tuple(model.HostPattern(h) for h in r["hosts"])
                if r["hosts"] is not None
                else None,
                ports=frozenset(r["ports"]) if r["ports"] is not None else None,
                sources=tuple(model.Source(k, v) for k, v in r["sources"]),
                when=_load_cond(r["when"]),
                unless=_load_cond(r["unless"]),
                span=Span(*r["span"]),
                explicit_id=bool(r["explicit_id"]),
            )
        )
    return model.ServicePolicy(key, tuple(rules), s["default"])
