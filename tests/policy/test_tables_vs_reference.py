"""The laws of decision tables, property-tested: tables decide exactly as the reference
interpreter (rule by rule over the checked model), and order never matters."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshward.policy import Request, compile_policy, evaluate, load_texts, reference_decide

NAMESPACES = ["web", "ops", "db"]
ACCOUNTS = ["a", "b"]
SERVICES = ["s1", "s2"]
METHODS = ["GET", "POST", "PUT"]
SEGMENTS = ["x", "y", "api"]

source_text = st.one_of(
    st.sampled_from(["any", "authenticated", "unauthenticated", 'trust_domain "other.org"']),
    st.builds(lambda n: f'namespace "{n}"', st.sampled_from(NAMESPACES)),
    st.builds(lambda n, a: f'sa "{n}/{a}"', st.sampled_from(NAMESPACES), st.sampled_from(ACCOUNTS)),
    st.builds(lambda n: f'"spiffe://other.org/ns/{n}/sa/a"', st.sampled_from(NAMESPACES)),
    st.sampled_from(['ip "10.0.0.0/8"', 'ip "10.1.0.0/16"', "team"]),
)
segment = st.sampled_from([*SEGMENTS, "{*}"])
path_text = st.one_of(
    st.lists(segment, min_size=0, max_size=3).map(lambda s: "/" + "/".join(s)),
    st.lists(segment, min_size=0, max_size=2).map(lambda s: "/" + "/".join([*s, "{**}"])),
    st.sampled_from(["/api*", "/x/a*", "/*"]),
)
condition_text = st.sampled_from(
    [
        'jwt.role == "admin"',
        'jwt.groups contains "dev"',
        'has jwt.role and jwt.role != "guest"',
        'request.headers["x-env"] in ["prod", "stage"]',
        'source.namespace == "ops"',
        "not (jwt.level == 2)",
        "jwt.level == 2 or has jwt.root",
        'request.host matches "*.example.com"',
    ]
)


@st.composite
def rule_text(draw: st.DrawFn) -> str:
    effect = draw(st.sampled_from(["allow", "deny", "audit allow", "audit deny"]))
    methods = draw(
        st.one_of(
            st.just("*"),
            st.lists(st.sampled_from(METHODS), min_size=1, max_size=2, unique=True).map(", ".join),
        )
    )
    paths = draw(st.lists(path_text, min_size=0, max_size=2, unique=True))
    parts = [effect, methods]
    if paths:
        parts.append(", ".join(paths))
    if draw(st.booleans()):
        parts.append('host "a.example.com", "*.svc.local"')
    if draw(st.integers(0, 3)) == 0:
        parts.append("port 8080")
    sources = draw(st.lists(source_text, min_size=0, max_size=3, unique=True))
    if sources:
        parts.append("from " + ", ".join(sources))
    if draw(st.integers(0, 2)) == 0:
        parts.append("when " + draw(condition_text))
    if draw(st.integers(0, 3)) == 0:
        parts.append("unless " + draw(condition_text))
    return " ".join(parts)


@st.composite
def policy_texts(draw: st.DrawFn) -> list[str]:
    blocks = []
    for _ in range(draw(st.integers(1, 4))):
        name = draw(st.sampled_from(SERVICES))
        port = draw(st.sampled_from(["", "", ":8080", ":9090"]))
        audit = "audit " if draw(st.integers(0, 5)) == 0 else ""
        rules = draw(st.lists(rule_text(), min_size=0, max_size=6))
        # Explicit ids, so a shuffled copy names the same rules.
        rules = [f'@id("r{len(blocks)}-{i}") {r}' for i, r in enumerate(rules)]
        blocks.append(f"{audit}service {name}{port} {{\n  " + "\n  ".join(rules) + "\n}")
    header = 'trust_domain "td"\n'
    return [header + 'principals team = [namespace "web", sa "db/a"]\n' + blocks[0]] + [
        header + b for b in blocks[1:]
    ]


requests = st.builds(
    Request,
    destination=st.sampled_from([*SERVICES, "s3"]),
    method=st.sampled_from(METHODS),
    path=st.one_of(
        st.lists(st.sampled_from([*SEGMENTS, "", "a", "xa", ".."]), max_size=4).map(
            lambda s: "/" + "/".join(s)
        ),
        st.sampled_from(["/api", "/apix/y", "/x/a%2Fb", "/x/ab?q=1"]),
    ),
    port=st.sampled_from([None, 8080, 9090]),
    host=st.sampled_from([None, "a.example.com", "b.svc.local", "svc.local", "A.EXAMPLE.COM:8080"]),
    headers=st.sampled_from([{}, {"x-env": "prod"}, {"x-env": "dev"}]),
    principal=st.one_of(
        st.none(),
        st.builds(
            lambda td, n, a: f"spiffe://{td}/ns/{n}/sa/{a}",
            st.sampled_from(["td", "other.org"]),
            st.sampled_from(NAMESPACES),
            st.sampled_from(ACCOUNTS),
        ),
        st.just("spiffe://td/not-a-workload"),
    ),
    source_ip=st.sampled_from([None, "10.1.2.3", "10.2.0.1", "192.0.2.1", "garbage"]),
    jwt=st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {},
            optional={
                "role": st.sampled_from(["admin", "guest", ["admin"]]),
                "groups": st.sampled_from([["dev"], ["ops"], "dev ops"]),
                "level": st.sampled_from([1, 2, "2"]),
                "root": st.just(True),
            },
        ),
    ),
)


def _load(texts: list[str]):
    return load_texts({f"f{i}.policy": t for i, t in enumerate(texts)})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy_texts(), st.lists(requests, min_size=1, max_size=25))
def test_tables_decide_exactly_as_the_reference_interpreter(texts, reqs):
    loaded = _load(texts)
    compiled = compile_policy(loaded.policy)
    for request in reqs:
        assert evaluate(compiled, request) == reference_decide(loaded.policy, request), request


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    policy_texts(), st.lists(requests, min_size=1, max_size=15), st.randoms(use_true_random=False)
)
def test_rule_order_and_file_order_never_change_a_decision(texts, reqs, rnd):
    original = compile_policy(_load(texts).policy)
    shuffled_texts = []
    for text in texts:
        header, _, block = text.partition("service ")
        head, _, body = block.partition("{\n  ")
        rules = body.removesuffix("\n}").split("\n  ")
        rnd.shuffle(rules)
        shuffled_texts.append(header + "service " + head + "{\n  " + "\n  ".join(rules) + "\n}")
    rnd.shuffle(shuffled_texts)
    shuffled = compile_policy(_load(shuffled_texts).policy)
    for request in reqs:
        assert evaluate(original, request) == evaluate(shuffled, request)
