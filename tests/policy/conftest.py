"""Generators shared by the tooling tests (formatter and diff properties).

With ``--import-mode=importlib`` test modules cannot import each other, so the
generators are handed out by a session fixture; tests draw from them with
``st.data()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import strategies as st

from meshward.policy import Request
from meshward.policy.diff import rule_meaning

NAMESPACES = ["web", "ops", "db"]
ACCOUNTS = ["a", "b"]
SERVICES = ["s1", "s2"]
METHODS = ["GET", "POST", "PUT"]
SEGMENTS = ["x", "y", "api"]

_source = st.one_of(
    st.sampled_from(["any", "authenticated", "unauthenticated", 'trust_domain "other.org"']),
    st.builds(lambda n: f'namespace "{n}"', st.sampled_from(NAMESPACES)),
    st.builds(lambda n, a: f'sa "{n}/{a}"', st.sampled_from(NAMESPACES), st.sampled_from(ACCOUNTS)),
    st.builds(lambda n: f'"spiffe://other.org/ns/{n}/sa/a"', st.sampled_from(NAMESPACES)),
    st.just('"spiffe://other.org/gateway"'),  # no namespace
    st.sampled_from(['ip "10.0.0.0/8"', 'ip "10.1.0.0/16"', "team"]),
)
_segment = st.sampled_from([*SEGMENTS, "{*}"])
_path = st.one_of(
    st.lists(_segment, min_size=0, max_size=3).map(lambda s: "/" + "/".join(s)),
    st.lists(_segment, min_size=0, max_size=2).map(lambda s: "/" + "/".join([*s, "{**}"])),
    st.sampled_from(["/api*", "/x/a*"]),
)
_condition = st.sampled_from(
    [
        'jwt.role == "admin"',
        'jwt.groups contains "dev"',
        'has jwt.role and jwt.role != "guest"',
        'request.headers["x-env"] in ["prod", "stage"]',
        'source.namespace == "ops"',
        "not (jwt.level == 2)",
        "jwt.level == 2 or has jwt.root",
        'source.ip within ["10.1.0.0/16"]',
        'source.ip == "10.1.2.3"',
        '(jwt.role == "admin" or jwt.role == "dev") and not has jwt.banned',
    ]
)


@st.composite
def _rule(draw: st.DrawFn) -> str:
    effect = draw(st.sampled_from(["allow", "allow", "deny", "audit allow", "audit deny"]))
    methods = draw(
        st.one_of(
            st.just("*"),
            st.lists(st.sampled_from(METHODS), min_size=1, max_size=2, unique=True).map(", ".join),
        )
    )
    parts = [effect, methods]
    paths = draw(st.lists(_path, min_size=0, max_size=2, unique=True))
    if paths:
        parts.append(", ".join(paths))
    if draw(st.integers(0, 4)) == 0:
        parts.append('host "a.example.com", "*.svc.local"')
    if draw(st.integers(0, 4)) == 0:
        parts.append("port 8080")
    sources = draw(st.lists(_source, min_size=0, max_size=2, unique=True))
    if sources:
        parts.append("from " + ", ".join(sources))
    if draw(st.integers(0, 2)) == 0:
        parts.append("when " + draw(_condition))
    if draw(st.integers(0, 4)) == 0:
        parts.append("unless " + draw(_condition))
    return " ".join(parts)


@st.composite
def _policy_texts(draw: st.DrawFn, rules: list[list[str]] | None = None) -> dict[str, str]:
    """Files: one principal set and a few service blocks with generated rules."""
    blocks = []
    for i in range(draw(st.integers(1, 4))):
        name = draw(st.sampled_from(SERVICES))
        if draw(st.integers(0, 5)) == 0:
            name = "audit " + name  # a dry-run block
        port = draw(st.sampled_from(["", "", ":8080", ":9090"]))
        default = "  default allow\n" if draw(st.integers(0, 6)) == 0 else ""
        body = draw(st.lists(_rule(), min_size=0, max_size=5))
        lines = [f'  @id("b{i}-r{j}")\n  {r}' for j, r in enumerate(body)]
        blocks.append((name, port, default, lines))
    return _render(blocks)


def _render(blocks: list[tuple[str, str, str, list[str]]]) -> dict[str, str]:
    # A service's default may be set only where the service has a single enforcing
    # block, and never on an audit block.
    names = [name for name, *_ in blocks]
    texts = {}
    for i, (name, port, default, lines) in enumerate(blocks):
        if name.startswith("audit ") or names.count(name) > 1:
            default = ""
        head = 'trust_domain "td"\n'
        if i == 0:
            head += 'principals team = [namespace "web", sa "db/a"]\n'
        keyword = "audit service" if name.startswith("audit ") else "service"
        texts[f"f{i}.policy"] = (
            head
            + f"{keyword} {name.removeprefix('audit ')}{port} {{\n{default}"
            + "\n".join(lines)
            + "\n}\n"
        )
    return texts


@st.composite
def _versions(draw: st.DrawFn) -> tuple[dict[str, str], dict[str, str]]:
    """Two versions of one policy set: shared rules, plus rules only one version has,
    and sometimes a default that changed."""
    old_blocks = []
    new_blocks = []
    for i in range(draw(st.integers(1, 2))):
        name = draw(st.sampled_from(SERVICES))
        port = draw(st.sampled_from(["", "", ":8080"]))
        shared = draw(st.lists(_rule(), min_size=0, max_size=4))
        only_old = draw(st.lists(_rule(), min_size=0, max_size=2))
        only_new = draw(st.lists(_rule(), min_size=0, max_size=2))
        defaults = draw(
            st.sampled_from(
                [("", ""), ("", ""), ("  default allow\n", ""), ("", "  default allow\n")]
            )
        )
        for blocks, extra, default in (
            (old_blocks, only_old, defaults[0]),
            (new_blocks, only_new, defaults[1]),
        ):
            rules = [*shared, *extra]
            lines = [f'  @id("b{i}-r{j}")\n  {r}' for j, r in enumerate(rules)]
            blocks.append((name, port, default, lines))
    return _render(old_blocks), _render(new_blocks)


_requests = st.builds(
    Request,
    destination=st.sampled_from([*SERVICES, "s3"]),
    method=st.sampled_from([*METHODS, "DELETE"]),
    path=st.one_of(
        st.lists(st.sampled_from([*SEGMENTS, "", "a", "xa", "..", "apiv"]), max_size=4).map(
            lambda s: "/" + "/".join(s)
        ),
        st.sampled_from(["/api", "/apix/y", "/x/a%2Fb", "/x/ab?q=1", "/api;v=1/x"]),
    ),
    port=st.sampled_from([None, 8080, 9090]),
    host=st.sampled_from(
        [
            None,
            "a.example.com",
            "b.svc.local",
            "svc.local",
            "A.EXAMPLE.COM:8080",
            "svc.local.",
            "evilsvc.local",
            ".svc.local",
        ]
    ),
    headers=st.sampled_from([{}, {"x-env": "prod"}, {"x-env": "dev"}]),
    principal=st.one_of(
        st.none(),
        st.builds(
            lambda td, n, a: f"spiffe://{td}/ns/{n}/sa/{a}",
            st.sampled_from(["td", "other.org", "third.org"]),
            st.sampled_from([*NAMESPACES, "misc"]),
            st.sampled_from([*ACCOUNTS, "c"]),
        ),
        st.sampled_from(["spiffe://td/not-a-workload", "spiffe://other.org/gateway"]),
        # not SPIFFE IDs at all: decided as unauthenticated
        st.sampled_from(["", "CN=web", "spiffe://TD/ns/a/sa/b"]),
    ),
    source_ip=st.sampled_from(
        [None, "10.1.2.3", "10.2.0.1", "192.0.2.1", "garbage", "::ffff:10.1.2.3", "10.1.2.3:80"]
    ),
    jwt=st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {},
            optional={
                "role": st.sampled_from(["admin", "guest", "dev", ["admin"], 3]),
                "groups": st.sampled_from([["dev"], ["ops"], "dev ops", "ops", 1]),
                "level": st.sampled_from([1, 2, "2"]),
                "root": st.just(True),
                "banned": st.just(False),
            },
        ),
    ),
)


@dataclass(frozen=True)
class Generators:
    """Hypothesis strategies for policy texts, two versions of a policy set, requests."""

    policy_texts: Any
    versions: Any
    requests: Any


@pytest.fixture(scope="session")
def gen() -> Generators:
    return Generators(_policy_texts(), _versions(), _requests)


def _meaning(policy: Any) -> dict[Any, Any]:
    """A policy set with everything but meaning left out (no spans, no positions)."""
    return {
        key: (
            service.default,
            [(r.rule_id, r.explicit_id, rule_meaning(r, key.port)) for r in service.rules],
        )
        for key, service in policy.services.items()
    }


@pytest.fixture(scope="session")
def meaning() -> Any:
    return _meaning
