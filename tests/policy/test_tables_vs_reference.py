"""The laws of decision tables, property-tested: tables decide exactly as the reference
interpreter (rule by rule over the checked model), and order never matters.

Policies and requests come from the generators in conftest.py (fixture ``gen``).
"""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshward.policy import compile_policy, evaluate, load_texts, reference_decide

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@SETTINGS
@given(data=st.data())
def test_tables_decide_exactly_as_the_reference_interpreter(gen, data):
    loaded = load_texts(data.draw(gen.policy_texts))
    compiled = compile_policy(loaded.policy)
    requests = data.draw(st.lists(gen.requests, min_size=1, max_size=25))
    expected = [reference_decide(loaded.policy, request) for request in requests]
    for request, want in zip(requests, expected, strict=True):
        assert evaluate(compiled, request) == want, request
    # Again, backwards, now that the tables' caches hold what the first pass filled:
    # a decision never depends on the decisions made before it.
    for request, want in reversed(list(zip(requests, expected, strict=True))):
        assert evaluate(compiled, request) == want, request


@SETTINGS
@given(data=st.data())
def test_rule_order_and_file_order_never_change_a_decision(gen, data):
    texts = data.draw(gen.policy_texts)
    policy = load_texts(texts).policy
    # Files in reverse order, every service's rules shuffled, services in another order.
    reloaded = load_texts(dict(reversed(texts.items()))).policy
    services = {}
    for key in data.draw(st.permutations(list(reloaded.services))):
        service = reloaded.services[key]
        rules = data.draw(st.permutations(service.rules))
        services[key] = dataclasses.replace(service, rules=tuple(rules))
    shuffled = compile_policy(dataclasses.replace(reloaded, services=services))
    original = compile_policy(policy)
    for request in data.draw(st.lists(gen.requests, min_size=1, max_size=15)):
        assert evaluate(original, request) == evaluate(shuffled, request), request
