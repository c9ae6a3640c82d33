"""Syntax tree helpers."""

from __future__ import annotations

from meshward.policy import load_texts
from meshward.policy.nodes import dotted_name


def test_attribute_names_print_as_a_policy_writes_them() -> None:
    assert dotted_name(("jwt", "realm", "roles")) == "jwt.realm.roles"
    assert dotted_name(("request", "headers", "x-a")) == 'request.headers["x-a"]'
    # Quoted names are policy strings, escapes and all: printed back, they parse again.
    printed = dotted_name(("jwt", 'a"b', "line\nbreak"))
    assert printed == 'jwt["a\\"b"]["line\\nbreak"]'
    loaded = load_texts({"p.policy": f'service s {{ allow GET /a when {printed} == "1" }}'})
    (rule,) = loaded.policy.rules()
    (test,) = rule.tests()
    assert test.attribute.parts == ("jwt", 'a"b', "line\nbreak")
