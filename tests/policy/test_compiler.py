"""The compiler's choices that decisions must not see."""

from __future__ import annotations

import textwrap

from meshward.policy import Request, compile_policy, evaluate, load_texts

TD = 'trust_domain "td"\n'


def _loaded(text: str):
    return load_texts({"p.policy": textwrap.dedent(text)}).policy


def test_rule_ids_are_listed_sorted_whatever_the_rule_order():
    policy = _loaded(
        TD
        + """
        service s {
          @id("z") allow GET /a from any
          @id("b") deny GET /a from any
          @id("y") allow GET /a from any
          @id("a") deny GET /a from any
          @id("m") allow GET /c from any
          @id("c") allow GET /c from any
        }
        """
    )
    compiled = compile_policy(policy)
    denied = evaluate(compiled, Request("s", "GET", "/a"))
    assert denied.rule_ids == ("a", "b") and denied.reason == "denied by rule a"
    allowed = evaluate(compiled, Request("s", "GET", "/c"))
    assert allowed.rule_ids == ("c", "m") and allowed.reason == "allowed by rule c"
