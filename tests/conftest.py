"""Shared test helpers."""

from __future__ import annotations

import os
import textwrap

# grpc's C core logs, at info level, every GOAWAY a test's client gets from a server the
# test stops; set before grpc is first imported.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import pytest
from hypothesis import settings

from meshward.policy import (
    CompiledPolicy,
    Decision,
    Request,
    compile_policy,
    evaluate,
    load_texts,
    reference_decide,
)

# In CI, property tests replay a fixed sequence of examples, so a landing never depends
# on luck; runs elsewhere keep exploring new ones.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")


class PolicyUnderTest:
    """A policy set compiled both ways: every decision is checked against the reference."""

    def __init__(self, *texts: str):
        self.loaded = load_texts(
            {f"file{i}.policy": textwrap.dedent(t) for i, t in enumerate(texts)}
        )
        self.compiled: CompiledPolicy = compile_policy(self.loaded.policy)

    def decide(
        self, destination: str, method: str = "GET", path: str = "/", **kw: object
    ) -> Decision:
        request = Request(destination, method, path, **kw)  # type: ignore[arg-type]
        fast = evaluate(self.compiled, request)
        assert fast == reference_decide(self.loaded.policy, request)
        return fast


@pytest.fixture
def policy() -> type[PolicyUnderTest]:
    return PolicyUnderTest
