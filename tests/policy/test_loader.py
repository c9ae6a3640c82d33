from __future__ import annotations

import os
from pathlib import Path

import pytest

from meshward.policy import PolicyError, load_paths, load_texts
from meshward.policy.loader import ParseCache, policy_files
from meshward.testing import configmap

A = 'service a { @id("a") allow GET /a from any }\n'
B = 'service b { @id("b") allow GET /b from any }\n'


def test_policy_files_are_found_recursively_in_a_stable_order(tmp_path: Path):
    (tmp_path / "z.policy").write_text(A)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.policy").write_text(B)
    (tmp_path / "notes.txt").write_text("not a policy")
    found = [p.relative_to(tmp_path).as_posix() for p in policy_files([tmp_path])]
    assert found == ["sub/b.policy", "z.policy"]
    assert {r.rule_id for r in load_paths([tmp_path]).policy.rules()} == {"a", "b"}


def test_a_search_skips_hidden_names_and_what_is_not_a_regular_file(tmp_path: Path):
    configmap.publish(tmp_path, {"a.policy": A, "b.policy": B}, "2026_11_28_1")
    (tmp_path / ".#a.policy").symlink_to("nobody@host.1234")  # an Emacs lock: dangling
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "c.policy").write_text(A)
    (tmp_path / "old.policy").mkdir()  # a folder so named is searched, not read
    (tmp_path / "old.policy" / "d.policy").write_text(B.replace('"b"', '"d"'))
    os.mkfifo(tmp_path / "pipe.policy")  # reading it would block
    found = [p.relative_to(tmp_path).as_posix() for p in policy_files([tmp_path])]
    assert found == ["a.policy", "b.policy", "old.policy/d.policy"]
    assert {r.rule_id for r in load_paths([tmp_path]).policy.rules()} == {"a", "b", "d"}


def test_no_policy_files_is_an_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        load_paths([tmp_path])


def test_errors_of_every_file_are_reported_together():
    with pytest.raises(PolicyError) as info:
        load_texts({"a.policy": "service a { alow }", "b.policy": "service b { allow get }"})
    assert [d.span.file for d in info.value.diagnostics] == ["a.policy", "b.policy"]


def test_parse_cache_reparses_only_changed_files():
    cache = ParseCache()
    first = cache.parse_all({"a.policy": A, "b.policy": B})
    second = cache.parse_all({"a.policy": A, "b.policy": B.replace("/b", "/c")})
    assert second[0] is first[0] and second[1] is not first[1]
    third = cache.parse_all({"b.policy": B})
    assert third[0] is not first[1]  # a.policy's entry is gone; b changed back: parsed again
    assert load_texts({"a.policy": A}, cache=cache).policy.rules()[0].rule_id == "a"


def test_a_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.policy"
    bad.write_bytes(b"# caf\xe9\nservice s { allow GET /a }\n")
    with pytest.raises(UnicodeDecodeError, match=r"latin1\.policy is not UTF-8 text"):
        load_paths([tmp_path])
