"""A seeded, engine-neutral service-mesh authorization workload.

The workload describes a mesh in plain data: services spread over ten namespaces, each
destination carrying allow rules (from specific workload principals or whole namespaces,
on method sets and path templates, some guarded by a JWT-claim condition) and a few deny
rules. A request stream exercises it with about half of the requests allowed. Every
benchmark translates the same description into its engine's own form, so all engines
answer the same questions.

API::

    mesh = generate_mesh(10_000, seed=7)          # Mesh with exactly 10,000 rules
    requests = generate_requests(mesh, 10_000)    # list[Access], about half allowed
    texts = render_meshward(mesh)                 # {file name: meshward policy text}
    oracle = NaiveScan(mesh)                      # plain-Python reference decisions
    oracle.decide(requests[0])                    # -> bool

Semantics (shared by every translation):

- A rule matches when the destination is its service, the method is in its method set
  (``None``: any method), the path matches one of its path templates, the caller matches
  one of its sources, and its claim condition (if any) holds.
- Path templates: literal segments, ``{*}`` (exactly one non-empty segment) and a final
  ``{**}`` (zero or more further segments). Request paths are already canonical.
- Sources: a principal (full SPIFFE ID) or a namespace (any workload whose SPIFFE ID is
  ``spiffe://<trust domain>/ns/<namespace>/sa/<name>``). Callers without an identity
  match neither.
- Claim conditions: ``jwt.scope contains "<value>"`` (``scope`` is a list of strings) or
  ``jwt.tier == "<value>"`` (a string). A request without a token, or without the claim,
  does not satisfy the condition. Only allow rules carry conditions.
- Any matching deny denies; otherwise any matching allow allows; otherwise deny
  (including destinations without rules).
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "METHODS",
    "NAMESPACES",
    "SERVICES",
    "SIZES",
    "TRUST_DOMAIN",
    "Access",
    "ClaimCondition",
    "Mesh",
    "NaiveScan",
    "RuleSpec",
    "Service",
    "Source",
    "allowed_fraction",
    "generate_mesh",
    "generate_requests",
    "path_regex",
    "render_meshward",
    "template_segments",
]

SIZES: tuple[int, ...] = (100, 1_000, 10_000, 100_000)
TRUST_DOMAIN = "cluster.local"
NAMESPACES: tuple[str, ...] = (
    "frontend",
    "checkout",
    "payments",
    "catalog",
    "inventory",
    "shipping",
    "identity",
    "analytics",
    "ops",
    "partners",
)
METHODS: tuple[str, ...] = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
SERVICES = 100  # ten per namespace, at every size: rules per destination grow with size

_METHOD_SETS: tuple[tuple[str, ...] | None, ...] = (
    ("GET",),
    ("GET", "HEAD"),
    ("GET", "HEAD"),
    ("POST",),
    ("PUT", "PATCH"),
    ("DELETE",),
    ("GET", "POST"),
    None,
)
_RESOURCES: tuple[str, ...] = (
    "orders",
    "items",
    "carts",
    "users",
    "accounts",
    "invoices",
    "payments",
    "refunds",
    "products",
    "reviews",
    "ratings",
    "stock",
    "shipments",
    "labels",
    "sessions",
    "tokens",
    "reports",
    "events",
    "metrics",
    "webhooks",
)
_SUBRESOURCES: tuple[str, ...] = ("items", "status", "history", "notes", "lines", "events")
_TIERS: tuple[str, ...] = ("gold", "silver", "bronze")


# --- the neutral description ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Source:
    """A caller a rule admits: ``principal`` (a full SPIFFE ID) or ``namespace`` (a name)."""

    kind: Literal["principal", "namespace"]
    value: str


@dataclass(frozen=True, slots=True)
class ClaimCondition:
    """``jwt.<claim> contains <value>`` (list claim) or ``jwt.<claim> == <value>``."""

    claim: str
    op: Literal["contains", "=="]
    value: str

    def holds(self, claims: Mapping[str, Any] | None) -> bool:
        """Does a verified-claims mapping satisfy the condition? (No token: no.)"""
        if claims is None or self.claim not in claims:
            return False
        value = claims[self.claim]
        if self.op == "contains":
            return isinstance(value, list) and self.value in value
        return isinstance(value, str) and value == self.value


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """One rule of one destination."""

    rule_id: str
    service: str
    effect: Literal["allow", "deny"]
    methods: tuple[str, ...] | None  # None: any method
    paths: tuple[str, ...]  # path templates, at least one
    sources: tuple[Source, ...]  # at least one
    claim: ClaimCondition | None = None


@dataclass(frozen=True, slots=True)
class Service:
    """A destination: ``<name>.<namespace>``, with the API resources it serves."""

    name: str
    namespace: str
    resources: tuple[str, ...]

    @property
    def principal(self) -> str:
        """The SPIFFE ID of this service's own workload."""
        return f"spiffe://{TRUST_DOMAIN}/ns/{self.namespace}/sa/{self.name.split('.')[0]}"


@dataclass(frozen=True, slots=True)
class Access:
    """One request of the stream: what a transport adapter hands an engine."""

    destination: str
    method: str
    path: str
    principal: str | None  # verified caller SPIFFE ID; None: no mTLS identity
    claims: Mapping[str, Any] | None  # verified JWT claims; None: no token


@dataclass(frozen=True, slots=True)
class Mesh:
    """A generated mesh: its services, principals and rules (in generation order)."""

    seed: int
    trust_domain: str
    namespaces: tuple[str, ...]
    services: tuple[Service, ...]
    principals: tuple[str, ...]  # every workload identity (services' own and clients)
    rules: tuple[RuleSpec, ...]
    _by_service: dict[str, tuple[RuleSpec, ...]] = field(default_factory=dict, repr=False)

    def rules_by_service(self) -> dict[str, tuple[RuleSpec, ...]]:
        """Rules grouped by destination, each group in generation order."""
        if not self._by_service:
            grouped: dict[str, list[RuleSpec]] = defaultdict(list)
            for rule in self.rules:
                grouped[rule.service].append(rule)
            self._by_service.update({k: tuple(v) for k, v in grouped.items()})
        return self._by_service


# --- path templates ------------------------------------------------------------------


def template_segments(template: str) -> tuple[tuple[str | None, ...], bool]:
    """A template as (segments, rest): ``None`` stands for ``{*}``; ``rest`` is a final
    ``{**}``. ``"/api/v1/orders/{*}/{**}"`` is ``(("api", "v1", "orders", None), True)``."""
    parts = template.split("/")[1:]
    rest = bool(parts) and parts[-1] == "{**}"
    if rest:
        parts = parts[:-1]
    return tuple(None if p == "{*}" else p for p in parts), rest


def path_regex(template: str) -> str:
    """An anchored regular expression equivalent to a path template."""
    segments, rest = template_segments(template)
    body = "".join("/[^/]+" if s is None else "/" + re.escape(s) for s in segments)
    return "^" + body + ("(?:/.*)?" if rest else "") + "$"


def _instantiate(template: str, rng: random.Random) -> str:
    """A concrete canonical path the template matches."""
    segments, rest = template_segments(template)
    parts = [s if s is not None else _ident(rng) for s in segments]
    if rest:
        parts.extend(_ident(rng) for _ in range(rng.choice((0, 1, 1, 2, 3))))
    return "/" + "/".join(parts)


def _ident(rng: random.Random) -> str:
    return rng.choice(("", "id-", "x")) + format(rng.getrandbits(24), "x")


# --- generation ----------------------------------------------------------------------


def generate_mesh(n_rules: int, seed: int = 7, services: int = SERVICES) -> Mesh:
    """A mesh with exactly ``n_rules`` rules over ``services`` destinations.

    The destinations are spread evenly over the ten namespaces and keep their number at
    every size, so a larger policy set means more rules per destination (1 to 1,000 for
    100 to 100,000 rules with the default 100 services): the per-destination slicing that
    every engine here gets stops helping, and only real indexing keeps a decision flat.
    About 10 % of the rules deny; about 20 % of the allow rules carry a JWT-claim
    condition. Sources are workload principals (60 %) or namespaces.
    """
    rng = random.Random(seed)
    n_services = max(1, min(services, n_rules))
    catalogue = []
    for i in range(n_services):
        namespace = NAMESPACES[i % len(NAMESPACES)]
        resources = tuple(rng.sample(_RESOURCES, rng.randint(4, 8)))
        catalogue.append(Service(f"svc-{i}.{namespace}", namespace, resources))
    # Client workloads that call but serve nothing: a few per namespace.
    clients = [
        f"spiffe://{TRUST_DOMAIN}/ns/{ns}/sa/client-{k}" for ns in NAMESPACES for k in range(5)
    ]
    principals = tuple([s.principal for s in catalogue] + clients)
    rules = []
    for index in range(n_rules):
        # Every service gets a rule first, so none is left without rules.
        service = catalogue[index] if index < n_services else rng.choice(catalogue)
        rules.append(_rule(f"r{index}", service, principals, rng))
    return Mesh(seed, TRUST_DOMAIN, NAMESPACES, tuple(catalogue), principals, tuple(rules))


def _templates(service: Service, rng: random.Random) -> tuple[str, ...]:
    def one() -> str:
        resource = rng.choice(service.resources)
        version = rng.choice(("v1", "v1", "v2"))
        base = f"/api/{version}/{resource}"
        shape = rng.random()
        if shape < 0.2:
            return base
        if shape < 0.5:
            return base + "/{*}"
        if shape < 0.7:
            return base + "/{*}/" + rng.choice(_SUBRESOURCES)
        if shape < 0.9:
            return base + "/{**}"
        return rng.choice(("/healthz", "/metrics", "/admin/{**}", "/internal/{*}/{**}"))

    return tuple(dict.fromkeys(one() for _ in range(rng.choice((1, 1, 2, 3)))))


def _rule(
    rule_id: str, service: Service, principals: Sequence[str], rng: random.Random
) -> RuleSpec:
    effect: Literal["allow", "deny"] = "deny" if rng.random() < 0.1 else "allow"
    sources = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        if rng.random() < 0.6:
            sources.append(Source("principal", rng.choice(principals)))
        else:
            sources.append(Source("namespace", rng.choice(NAMESPACES)))
    claim = None
    if effect == "allow" and rng.random() < 0.2:
        if rng.random() < 0.6:
            action = rng.choice(("read", "write"))
            claim = ClaimCondition("scope", "contains", f"{rng.choice(service.resources)}:{action}")
        else:
            claim = ClaimCondition("tier", "==", rng.choice(_TIERS))
    methods = rng.choice(_METHOD_SETS)
    if effect == "deny" and methods is not None and rng.random() < 0.5:
        methods = ("DELETE",)
    return RuleSpec(
        rule_id,
        service.name,
        effect,
        methods,
        _templates(service, rng),
        tuple(dict.fromkeys(sources)),
        claim,
    )


def generate_requests(mesh: Mesh, n: int = 10_000, seed: int = 11) -> list[Access]:
    """A stream of ``n`` requests, about half of them allowed.

    Four in ten are built to satisfy a random allow rule (a deny rule can still catch
    them), one in ten aims at a deny rule, and the other half perturb a request built for
    an allow rule (another caller, method, path segment, no token, no identity, another
    or an unknown destination), some of which other rules still allow.
    """
    rng = random.Random(seed)
    allows = [r for r in mesh.rules if r.effect == "allow"]
    denies = [r for r in mesh.rules if r.effect == "deny"] or allows
    services = {s.name: s for s in mesh.services}
    by_namespace: dict[str, list[str]] = defaultdict(list)
    for p in mesh.principals:
        by_namespace[p.split("/")[4]].append(p)
    out = []
    for _ in range(n):
        roll = rng.random()
        rule = rng.choice(denies if 0.4 <= roll < 0.5 else allows)
        access = _matching(rule, services[rule.service], by_namespace, rng)
        if roll >= 0.5:
            access = _perturb(access, mesh, services[rule.service], rng)
        out.append(access)
    return out


def _matching(
    rule: RuleSpec, service: Service, by_namespace: Mapping[str, Sequence[str]], rng: random.Random
) -> Access:
    method = rng.choice(rule.methods or METHODS)
    path = _instantiate(rng.choice(rule.paths), rng)
    source = rng.choice(rule.sources)
    principal = (
        source.value if source.kind == "principal" else rng.choice(by_namespace[source.value])
    )
    claims: dict[str, Any] | None = None
    if rule.claim is not None or rng.random() < 0.5:
        claims = {
            "sub": principal,
            "scope": [f"{r}:read" for r in service.resources if rng.random() < 0.5],
            "tier": rng.choice(_TIERS),
        }
        if rule.claim is not None:
            if rule.claim.op == "contains":
                claims["scope"].append(rule.claim.value)
            else:
                claims[rule.claim.claim] = rule.claim.value
    return Access(rule.service, method, path, principal, claims)


def _perturb(access: Access, mesh: Mesh, service: Service, rng: random.Random) -> Access:
    kind = rng.random()
    if kind < 0.3:
        return Access(
            access.destination,
            access.method,
            access.path,
            rng.choice(mesh.principals),
            access.claims,
        )
    if kind < 0.5:
        return Access(
            access.destination, rng.choice(METHODS), access.path, access.principal, access.claims
        )
    if kind < 0.7:
        parts = access.path.split("/")
        parts[rng.randrange(1, len(parts))] = rng.choice(service.resources + _SUBRESOURCES)
        return Access(
            access.destination, access.method, "/".join(parts), access.principal, access.claims
        )
    if kind < 0.8:
        return Access(access.destination, access.method, access.path, access.principal, None)
    if kind < 0.9:
        return Access(access.destination, access.method, access.path, None, access.claims)
    if kind < 0.95:
        return Access(
            "unknown.nowhere", access.method, access.path, access.principal, access.claims
        )
    return Access(
        rng.choice(mesh.services).name, access.method, access.path, access.principal, access.claims
    )


# --- meshward policy text ------------------------------------------------------------


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_meshward(mesh: Mesh) -> dict[str, str]:
    """The mesh as meshward policy files, one per namespace: ``{file name: text}``."""
    by_namespace: dict[str, list[str]] = defaultdict(list)
    services = {s.name: s for s in mesh.services}
    for name, rules in mesh.rules_by_service().items():
        lines = [f"service {name} {{"]
        for rule in rules:
            methods = "*" if rule.methods is None else ", ".join(rule.methods)
            sources = ", ".join(
                _quote(s.value) if s.kind == "principal" else f"namespace {_quote(s.value)}"
                for s in rule.sources
            )
            lines.append(f"  @id({_quote(rule.rule_id)})")
            lines.append(f"  {rule.effect} {methods} {', '.join(rule.paths)} from {sources}")
            if rule.claim is not None:
                c = rule.claim
                lines.append(f"    when jwt.{c.claim} {c.op} {_quote(c.value)}")
        lines.append("}")
        by_namespace[services[name].namespace].append("\n".join(lines))
    return {
        f"{ns}.policy": f"trust_domain {_quote(mesh.trust_domain)}\n\n" + "\n\n".join(blocks) + "\n"
        for ns, blocks in sorted(by_namespace.items())
    }


# --- the naive floor -----------------------------------------------------------------


class NaiveScan:
    """What a hand-written script does: rules in a dict by destination, scanned in order
    with precompiled path regexes. Also the reference for the workload's semantics."""

    def __init__(self, mesh: Mesh) -> None:
        self._rules: dict[str, list[tuple[Any, ...]]] = {}
        for service, rules in mesh.rules_by_service().items():
            self._rules[service] = [
                (
                    rule.effect == "deny",
                    frozenset(rule.methods) if rule.methods is not None else None,
                    tuple(re.compile(path_regex(p)) for p in rule.paths),
                    frozenset(s.value for s in rule.sources if s.kind == "principal"),
                    frozenset(s.value for s in rule.sources if s.kind == "namespace"),
                    rule.claim,
                )
                for rule in rules
            ]

    def decide(self, access: Access) -> bool:
        """True when the request is allowed."""
        rules = self._rules.get(access.destination)
        if not rules:
            return False
        principal = access.principal
        namespace = None
        if principal is not None and principal.startswith("spiffe://"):
            parts = principal.split("/")
            if len(parts) == 7 and parts[3] == "ns" and parts[5] == "sa":
                namespace = parts[4]
        allowed = False
        for deny, methods, paths, principals, namespaces, claim in rules:
            if methods is not None and access.method not in methods:
                continue
            if principal not in principals and namespace not in namespaces:
                continue
            if not any(p.match(access.path) for p in paths):
                continue
            if claim is not None and not claim.holds(access.claims):
                continue
            if deny:
                return False
            allowed = True
        return allowed


def allowed_fraction(oracle: NaiveScan, requests: Sequence[Access]) -> float:
    """The share of requests the workload's semantics allow."""
    return sum(map(oracle.decide, requests)) / max(1, len(requests))
