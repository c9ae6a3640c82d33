"""Engines under test, each built from the same neutral workload description.

Every engine exposes ``decide(access) -> bool`` and builds its own input from the
:class:`~bench.workload.Access` on every call, as a server would from a check request.
Peers are optional: constructing one whose package is missing raises
:class:`PeerUnavailable`; one that refuses a size raises :class:`PeerRefused`.

Forms (each peer's fastest honest form):

- ``meshward``: the policy text rendered from the mesh, parsed, checked and compiled to
  decision tables; :func:`meshward.policy.evaluate` on a :class:`~meshward.policy.Request`.
  ``meshward (source)``: the same, from the Python sources a compiled wheel ships beside its
  extensions (:func:`source_policy_package`).
- ``naive``: :class:`~bench.workload.NaiveScan`, a dict by destination scanned in order.
- ``cedar``: cedarpy, one pre-parsed ``PolicySet`` per destination (a resource slice);
  the caller is a ``Workload`` entity whose parent is its ``Namespace``. ``cedar-caller``
  slices further, one set per (destination, caller principal or namespace).
- ``rego``: regorus, rules as data keyed by destination and then by caller (principal or
  namespace), one Rego module compiled to an RVM program (``Program.compile_from_modules``)
  and run on one ``Rvm``; ``rego-dst`` keys the data by destination only.
- ``casbin``: pycasbin ``FastEnforcer`` indexed by destination (``cache_key_order``), one
  policy line per (rule, source, path template), custom matcher functions with
  precompiled regular expressions.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any

from .workload import Access, ClaimCondition, Mesh, NaiveScan, RuleSpec, path_regex
from .workload import render_meshward as render_meshward
from .workload import template_segments as template_segments


class PeerUnavailable(RuntimeError):
    """The peer's package is not installed."""


class PeerRefused(RuntimeError):
    """The peer cannot take this policy set (too large, or an engine limit)."""


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """How a row of the results table was produced."""

    name: str
    form: str
    version: str


def workload_namespace(principal: str | None) -> str | None:
    """The namespace of a ``spiffe://td/ns/<ns>/sa/<sa>`` ID (what every adapter derives)."""
    if principal is None:
        return None
    parts = principal.split("/")
    if len(parts) == 7 and parts[0] == "spiffe:" and parts[3] == "ns" and parts[5] == "sa":
        return parts[4]
    return None


# --- meshward ------------------------------------------------------------------------

SOURCE_PACKAGE = "meshward_policy_source"
SOURCE_ROW = "meshward (source)"


class MeshwardEngine:
    """meshward's decision tables; ``policy`` is the ``meshward.policy`` package to use
    (by default the installed one; :func:`source_policy_package` for its Python source)."""

    def __init__(self, mesh: Mesh, policy: ModuleType | None = None) -> None:
        if policy is None:
            import meshward.policy as policy
        self.texts = render_meshward(mesh)
        t0 = time.perf_counter()
        self.policy = policy.load_texts(self.texts).policy
        t1 = time.perf_counter()
        self.compiled = policy.compile_policy(self.policy)
        self.parse_check_s = t1 - t0  # policy text to checked model
        self.compile_s = time.perf_counter() - t1  # checked model to decision tables
        self._evaluate = policy.evaluate
        self._request = policy.Request
        self._none: Mapping[str, str] = MappingProxyType({})  # no headers

    @staticmethod
    def info(policy: ModuleType | None = None) -> EngineInfo:
        from importlib.metadata import version

        if policy is None:
            import meshward.policy as policy
        build = "compiled" if policy.hot_path_compiled() else "Python source"
        name = "meshward" if policy.__name__ == "meshward.policy" else SOURCE_ROW
        return EngineInfo(name, f"decision tables, evaluator {build}", version("meshward"))

    def decide(self, access: Access) -> bool:
        # Positional, as meshward's ext_authz server builds it: keywords cost a third more.
        a = access
        request = self._request(
            a.destination, a.method, a.path, None, None, self._none, a.principal, None, a.claims
        )
        return self._evaluate(self.compiled, request).allowed


class _SourceOnly(importlib.abc.MetaPathFinder):
    """Finds the modules of :data:`SOURCE_PACKAGE` as Python source files only: the
    default finders would take a compiled extension beside a source file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != SOURCE_PACKAGE and not name.startswith(SOURCE_PACKAGE + "."):
            return None
        if name == SOURCE_PACKAGE:
            file, search = self.folder / "__init__.py", [str(self.folder)]
        else:
            file, search = self.folder / (name.rpartition(".")[2] + ".py"), None
        loader = importlib.machinery.SourceFileLoader(name, str(file))
        return importlib.util.spec_from_file_location(
            name, file, loader=loader, submodule_search_locations=search
        )


def source_policy_package() -> ModuleType | None:
    """The installed ``meshward.policy`` loaded once more from its Python sources, under
    another name, so the compiled and the source hot path run in one process; None when
    the installed one already runs from source (nothing to compare)."""
    import meshward.policy as installed

    if not installed.hot_path_compiled():
        return None
    if SOURCE_PACKAGE not in sys.modules:
        sys.meta_path.insert(0, _SourceOnly(Path(installed.__file__).parent))
    return importlib.import_module(SOURCE_PACKAGE)


# --- naive floor ---------------------------------------------------------------------


class NaiveEngine:
    """The hand-written floor: :class:`~bench.workload.NaiveScan`."""

    def __init__(self, mesh: Mesh) -> None:
        self.decide: Callable[[Access], bool] = NaiveScan(mesh).decide

    @staticmethod
    def info() -> EngineInfo:
        return EngineInfo("naive scan", "dict by destination, regex per template", "-")


# --- Cedar ---------------------------------------------------------------------------


def _cedar_str(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Cedar string literal


def _cedar_path(template: str) -> str:
    segments, rest = template_segments(template)
    n = len(segments)
    tests = [f"context.n {'>=' if rest else '=='} {n}"]
    for i, segment in enumerate(segments):
        if segment is None:
            tests.append(f'context.seg.s{i} != ""')
        else:
            tests.append(f"context.seg.s{i} == {_cedar_str(segment)}")
    return "(" + " && ".join(tests) + ")"


def _cedar_claim(claim: ClaimCondition) -> str:
    name = claim.claim
    guard = f"context has jwt && context.jwt has {name}"
    if claim.op == "contains":
        return f"({guard} && context.jwt.{name}.contains({_cedar_str(claim.value)}))"
    return f"({guard} && context.jwt.{name} == {_cedar_str(claim.value)})"


def _cedar_source(kind: str, value: str) -> str:
    if kind == "principal":
        return f"principal == Workload::{_cedar_str(value)}"
    return f"principal in Namespace::{_cedar_str(value)}"


def cedar_policy(rule: RuleSpec) -> str:
    """One Cedar policy for one rule (``permit`` or ``forbid``)."""
    effect = "permit" if rule.effect == "allow" else "forbid"
    if len(rule.sources) == 1:
        principal = _cedar_source(rule.sources[0].kind, rule.sources[0].value)
        conditions = []
    else:
        principal = "principal"
        conditions = ["(" + " || ".join(_cedar_source(s.kind, s.value) for s in rule.sources) + ")"]
    if rule.methods is None:
        action = "action"
    else:
        action = "action in [" + ", ".join(f'Action::"{m}"' for m in rule.methods) + "]"
    resource = f"resource == Service::{_cedar_str(rule.service)}"
    conditions.append("(" + " || ".join(_cedar_path(p) for p in rule.paths) + ")")
    if rule.claim is not None:
        conditions.append(_cedar_claim(rule.claim))
    return (
        f'@id("{rule.rule_id}")\n{effect} ({principal}, {action}, {resource})\n'
        f"when {{ {' && '.join(conditions)} }};"
    )


class CedarEngine:
    """cedarpy with one pre-parsed PolicySet per destination."""

    def __init__(self, mesh: Mesh) -> None:
        try:
            import cedarpy
        except ImportError as exc:
            raise PeerUnavailable("cedarpy is not installed") from exc
        self._is_authorized = cedarpy.is_authorized
        self.sets: dict[str, Any] = {
            service: cedarpy.PolicySet.from_str("\n".join(cedar_policy(r) for r in rules))
            for service, rules in mesh.rules_by_service().items()
        }
        self.rule_texts = sum(len(s) for s in self.sets.values())
        self._callers = CedarCallers(cedarpy.Entities)

    name = "cedarpy"
    form = "one PolicySet per destination"

    @classmethod
    def info(cls) -> EngineInfo:
        from importlib.metadata import version

        return EngineInfo(cls.name, cls.form, version("cedarpy"))

    def policies_for(self, access: Access) -> Any:
        """The pre-parsed PolicySet that can decide this request, or None (deny)."""
        return self.sets.get(access.destination)

    def decide(self, access: Access) -> bool:
        policies = self.policies_for(access)
        if policies is None:
            return False
        segments = access.path.split("/")[1:]
        context: dict[str, Any] = {
            "n": len(segments),
            "seg": {f"s{i}": s for i, s in enumerate(segments)},
        }
        if access.claims is not None:
            context["jwt"] = access.claims
        principal, entities = self._callers.of(access.principal)
        request = {
            "principal": principal,
            "action": {"type": "Action", "id": access.method},
            "resource": {"type": "Service", "id": access.destination},
            "context": context,
        }
        return bool(self._is_authorized(request, policies, entities).allowed)


class CedarCallers:
    """Each caller's principal and its entities (the workload, a child of its namespace)
    as a pre-parsed ``cedarpy.Entities`` handle, built on first sight: a server would keep
    them, as meshward keeps each caller's index masks."""

    def __init__(self, entities: Any) -> None:
        self._parse = entities.from_json_str
        self._known: dict[str | None, tuple[dict[str, str], Any]] = {}

    def of(self, caller: str | None) -> tuple[dict[str, str], Any]:
        found = self._known.get(caller)
        if found is None:
            found = self._known[caller] = self._build(caller)
        return found

    def _build(self, caller: str | None) -> tuple[dict[str, str], Any]:
        if caller is None:
            return {"type": "Anonymous", "id": ""}, self._parse("[]")
        principal = {"type": "Workload", "id": caller}
        namespace = workload_namespace(caller)
        parents = [] if namespace is None else [{"type": "Namespace", "id": namespace}]
        return principal, self._parse(
            json.dumps([{"uid": principal, "attrs": {}, "parents": parents}])
        )


class CedarByCallerEngine(CedarEngine):
    """cedarpy with one pre-parsed PolicySet per (destination, caller): the policies that
    name the caller's principal or its namespace. Callers the rules never name use their
    namespace's set; a request without an identity has no set (no rule admits it)."""

    name = "cedarpy (by caller)"
    form = "one PolicySet per (destination, caller)"

    def __init__(self, mesh: Mesh) -> None:
        try:
            import cedarpy
        except ImportError as exc:
            raise PeerUnavailable("cedarpy is not installed") from exc
        self._is_authorized = cedarpy.is_authorized
        self._callers = CedarCallers(cedarpy.Entities)
        parse = cedarpy.PolicySet.from_str
        self.sets = {}
        self.namespace_sets: dict[tuple[str, str], Any] = {}
        for service, rules in mesh.rules_by_service().items():
            text = {r.rule_id: cedar_policy(r) for r in rules}
            by_principal: dict[str, list[str]] = defaultdict(list)
            by_namespace: dict[str, list[str]] = defaultdict(list)
            for rule in rules:
                for source in rule.sources:
                    group = by_principal if source.kind == "principal" else by_namespace
                    group[source.value].append(rule.rule_id)
            for namespace in mesh.namespaces:
                ids = by_namespace.get(namespace, [])
                self.namespace_sets[(service, namespace)] = parse("\n".join(text[i] for i in ids))
            for principal, ids in by_principal.items():
                namespace = workload_namespace(principal) or ""
                ids = list(dict.fromkeys(ids + by_namespace.get(namespace, [])))
                self.sets[(service, principal)] = parse("\n".join(text[i] for i in ids))

    def policies_for(self, access: Access) -> Any:
        if access.principal is None:
            return None
        found = self.sets.get((access.destination, access.principal))
        if found is None:
            namespace = workload_namespace(access.principal)
            if namespace is not None:
                found = self.namespace_sets.get((access.destination, namespace))
        return found


# --- Rego (regorus RVM) --------------------------------------------------------------

_REGO_COMMON = """
method_ok(m) if m == "*"

method_ok(m) if m[input.method]

path_ok(p) if {
	not p.rest
	count(p.segs) == count(input.segs)
	not mismatch(p)
}

path_ok(p) if {
	p.rest
	count(p.segs) <= count(input.segs)
	not mismatch(p)
}

mismatch(p) if {
	some i, s in p.segs
	not seg_ok(s, input.segs[i])
}

seg_ok(s, x) if s == x

seg_ok(s, x) if {
	s == "{*}"
	x != ""
}

claim_ok(c) if c == null

claim_ok(c) if {
	c.op == "contains"
	v := input.jwt[c.name]
	is_array(v)
	c.value in v
}

claim_ok(c) if {
	c.op == "=="
	v := input.jwt[c.name]
	is_string(v)
	v == c.value
}
"""

# Rules as data sliced by destination: every rule of the destination is tried.
REGO_MODULE = (
    """package meshward.bench

import rego.v1

default allow := false

svc := data.services[input.destination]

allow if {
	not denied
	some r in svc.allow
	matches(r)
	claim_ok(r.claim)
}

denied if {
	some r in svc.deny
	matches(r)
}

matches(r) if {
	method_ok(r.methods)
	source_ok(r)
	some p in r.paths
	path_ok(p)
}

source_ok(r) if r.principals[input.principal]

source_ok(r) if r.namespaces[input.namespace]
"""
    + _REGO_COMMON
)

# Rules as data keyed by destination, then by caller (principal or namespace), then by
# method ("*" for rules on any method): a lookup finds the rules that name this caller
# and this method, and only their paths and claims are tried.
REGO_MODULE_BY_CALLER = (
    """package meshward.bench

import rego.v1

default allow := false

svc := data.services[input.destination]

groups contains g if g := svc.principals[input.principal][input.method]

groups contains g if g := svc.principals[input.principal]["*"]

groups contains g if g := svc.namespaces[input.namespace][input.method]

groups contains g if g := svc.namespaces[input.namespace]["*"]

allow if {
	not denied
	some g in groups
	some r in g.allow
	on_path(r)
	claim_ok(r.claim)
}

denied if {
	some g in groups
	some r in g.deny
	on_path(r)
}

on_path(r) if {
	some p in r.paths
	path_ok(p)
}
"""
    + _REGO_COMMON
)
# The modules avoid `every`: gordon-to-regorus 0.13.0's RVM lets an `every` whose body
# calls a multi-clause function succeed when it should fail (the interpreter is right);
# `not mismatch(p)` states the same thing and both agree on it.

REGO_MAX_POLICY_BYTES = 1 << 20


def _rego_rule(rule: RuleSpec, with_sources: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "methods": "*" if rule.methods is None else dict.fromkeys(rule.methods, True),
        "paths": [
            {
                "segs": ["{*}" if s is None else s for s in template_segments(p)[0]],
                "rest": template_segments(p)[1],
            }
            for p in rule.paths
        ],
        "claim": None
        if rule.claim is None
        else {"name": rule.claim.claim, "op": rule.claim.op, "value": rule.claim.value},
    }
    if with_sources:
        doc["principals"] = {s.value: True for s in rule.sources if s.kind == "principal"}
        doc["namespaces"] = {s.value: True for s in rule.sources if s.kind == "namespace"}
    return doc


def rego_data(mesh: Mesh) -> dict[str, Any]:
    """Rules as data: ``services[destination] = {"allow": [...], "deny": [...]}``."""
    services: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for service, rules in mesh.rules_by_service().items():
        slot = services[service] = {"allow": [], "deny": []}
        for rule in rules:
            slot[rule.effect].append(_rego_rule(rule, with_sources=True))
    return {"services": services}


def rego_data_by_caller(mesh: Mesh) -> dict[str, Any]:
    """Rules as data keyed by caller and method:
    ``services[destination].principals[id][method]`` and ``.namespaces[name][method]``,
    each ``{"allow": [...], "deny": [...]}``, with ``"*"`` for rules on any method; a rule
    appears under each of its sources and methods."""
    services: dict[str, dict[str, dict[str, dict[str, dict[str, list[dict[str, Any]]]]]]] = {}
    for service, rules in mesh.rules_by_service().items():
        slot = services[service] = {"principals": {}, "namespaces": {}}
        for rule in rules:
            doc = _rego_rule(rule, with_sources=False)
            for source in rule.sources:
                kind = "principals" if source.kind == "principal" else "namespaces"
                by_method = slot[kind].setdefault(source.value, {})
                for method in rule.methods or ("*",):
                    group = by_method.setdefault(method, {"allow": [], "deny": []})
                    group[rule.effect].append(doc)
    return {"services": services}


class RegoEngine:
    """regorus: rules as data keyed by destination, caller and method, one module compiled
    to an RVM program."""

    module = REGO_MODULE_BY_CALLER
    layout = staticmethod(rego_data_by_caller)
    name = "regorus"
    form = "RVM, rules as data by destination, caller and method"

    def __init__(self, mesh: Mesh) -> None:
        try:
            import regorus
        except ImportError as exc:
            raise PeerUnavailable("regorus (gordon-to-regorus) is not installed") from exc
        data = json.dumps(self.layout(mesh))
        self.data_bytes = len(data)
        try:
            program = regorus.Program.compile_from_modules(
                data, [("bench.rego", self.module)], ["data.meshward.bench.allow"]
            )
            self._vm = regorus.Rvm()
            self._vm.load_program(program)
            self._vm.set_data_json(data)
        except Exception as exc:  # regorus raises RuntimeError/ValueError on its limits
            raise PeerRefused(f"regorus refused the program: {exc}") from exc
        self._dumps = json.JSONEncoder(separators=(",", ":")).encode

    @classmethod
    def info(cls) -> EngineInfo:
        from importlib.metadata import version

        return EngineInfo(cls.name, cls.form, version("gordon-to-regorus"))

    def decide(self, access: Access) -> bool:
        document = {
            "destination": access.destination,
            "method": access.method,
            "segs": access.path.split("/")[1:],
            "principal": access.principal,
            "namespace": workload_namespace(access.principal),
            "jwt": access.claims,
        }
        vm = self._vm
        vm.set_input_json(self._dumps(document))
        return vm.execute() == "true"


class RegoByDestinationEngine(RegoEngine):
    """regorus: rules as data sliced by destination only (every rule of it is tried)."""

    module = REGO_MODULE
    layout = staticmethod(rego_data)
    name = "regorus (by destination)"
    form = "RVM, rules as data by destination"


# --- pycasbin ------------------------------------------------------------------------

CASBIN_MODEL = """
[request_definition]
r = dst, sub, ns, act, path, jwt

[policy_definition]
p = dst, sub, act, path, claim, eft

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = r.dst == p.dst && (r.sub == p.sub || r.ns == p.sub) && methodMatch(r.act, p.act) \
&& pathMatch(r.path, p.path) && claimMatch(r.jwt, p.claim)
"""


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@cache
def _method_set(methods: str) -> frozenset[str] | None:
    return None if methods == "*" else frozenset(methods.split("|"))


def _method_match(method: str, methods: str) -> bool:
    allowed = _method_set(methods)
    return allowed is None or method in allowed


def _path_match(path: str, pattern: str) -> bool:
    return _compiled(pattern).match(path) is not None


def _claim_match(claims: Mapping[str, Any] | None, claim: str) -> bool:
    if not claim:
        return True
    name, op, value = claim.split("\x1f")
    return ClaimCondition(name, "contains" if op == "contains" else "==", value).holds(claims)


def casbin_lines(mesh: Mesh) -> list[list[str]]:
    """One policy line per (rule, source, path template): ``dst, sub, act, path, claim,
    eft``; a namespace source is written ``ns:<name>``."""
    lines = []
    for rule in mesh.rules:
        act = "*" if rule.methods is None else "|".join(rule.methods)
        claim = (
            ""
            if rule.claim is None
            else "\x1f".join((rule.claim.claim, rule.claim.op, rule.claim.value))
        )
        for source in rule.sources:
            sub = source.value if source.kind == "principal" else "ns:" + source.value
            for template in rule.paths:
                lines.append([rule.service, sub, act, path_regex(template), claim, rule.effect])
    return lines


class CasbinEngine:
    """pycasbin FastEnforcer indexed by destination."""

    def __init__(self, mesh: Mesh) -> None:
        try:
            import casbin
            from casbin.model import FastModel
        except ImportError as exc:
            raise PeerUnavailable("casbin is not installed") from exc
        model = FastModel([0])
        model.load_model_from_text(CASBIN_MODEL)
        enforcer = casbin.FastEnforcer(model, cache_key_order=[0])
        enforcer.add_function("methodMatch", _method_match)
        enforcer.add_function("pathMatch", _path_match)
        enforcer.add_function("claimMatch", _claim_match)
        self.lines = casbin_lines(mesh)
        enforcer.add_policies(self.lines)
        self._enforce = enforcer.enforce

    @staticmethod
    def info() -> EngineInfo:
        from importlib.metadata import version

        return EngineInfo("pycasbin", "FastEnforcer indexed by destination", version("casbin"))

    def decide(self, access: Access) -> bool:
        namespace = workload_namespace(access.principal)
        return bool(
            self._enforce(
                access.destination,
                access.principal or "",
                "ns:" + namespace if namespace is not None else "",
                access.method,
                access.path,
                access.claims,
            )
        )


PEERS: dict[str, type[CedarEngine] | type[RegoEngine] | type[CasbinEngine]] = {
    "cedar": CedarEngine,
    "cedar-caller": CedarByCallerEngine,
    "rego": RegoEngine,
    "rego-dst": RegoByDestinationEngine,
    "casbin": CasbinEngine,
}
