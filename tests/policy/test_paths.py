from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshward.policy.paths import (
    AmbiguousPathError,
    PathPatternError,
    canonical_path,
    parse_path_pattern,
)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("/a/b", "/a/b"),
        ("/a//b///c", "/a/b/c"),
        ("/a/./b/../c", "/a/c"),
        ("/a/b/..", "/a/"),
        ("/../../etc", "/etc"),
        ("/A/%42/%7e%2D", "/A/B/~-"),
        ("/a/%2e%2e/b", "/b"),
        ("/a/%3F", "/a/%3F"),
        ("/a/%3f", "/a/%3F"),  # escapes that stay are written upper-case
        ("/admin#x", "/admin"),  # a fragment never takes part, even on the fast path
        ("/a?x=/admin", "/a"),
        ("/a?x=1;y=2", "/a"),  # a `;` in the query is the query's business
        ("/a/%3B", "/a/%3B"),  # an encoded `;` is part of a name, for every server
        ("/CaSe", "/CaSe"),
        ("/a/", "/a/"),
    ],
)
def test_canonicalisation(raw, canonical):
    assert canonical_path(raw) == canonical


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("/a%2Fb", "encoded /"),
        ("/a%2fb", "encoded /"),
        ("/a%5Cb", "encoded \\"),
        ("/a\\b", "backslash"),
        ("/a%zz", "invalid percent-escape"),
        ("/a%4", "invalid percent-escape"),
        ("/a\x00", "NUL"),
        ("/a%00", "NUL"),
        ("relative", "start with '/'"),
        ("/public/..;/admin", "path parameter"),
        ("/public/.;/../admin", "path parameter"),
        ("/admin;x/users", "path parameter"),
        ("/a;jsessionid=0123/b", "path parameter"),
    ],
)
def test_ambiguous_paths_are_refused_with_a_reason(raw, why):
    with pytest.raises(AmbiguousPathError, match=why.replace("\\", "\\\\")):
        canonical_path(raw)


@given(st.text(alphabet="/ab.%2F5Ce", max_size=20).map(lambda s: "/" + s))
def test_canonical_paths_are_fixed_points(raw):
    try:
        once = canonical_path(raw)
    except AmbiguousPathError:
        return
    assert canonical_path(once) == once
    assert "//" not in once and "/./" not in once and "/../" not in once


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("/a/{*}", "/a/b", True),
        ("/a/{*}", "/a/", False),
        ("/a/{*}", "/a/b/c", False),
        ("/a/{**}", "/a", True),
        ("/a/{**}", "/a/b/c", True),
        ("/a/{**}", "/ab", False),
        ("/a/{*}/c", "/a/b/c", True),
        ("/api/v1*", "/api/v10/x", True),
        ("/api/v1*", "/api/v", False),
        ("/exact", "/exact/", False),
    ],
)
def test_patterns(pattern, path, matches):
    assert parse_path_pattern(pattern).matches(path) is matches


@pytest.mark.parametrize("bad", ["/a/{**}/b", "/a/b{*}", "/a/*/b", "/a?x", "a/b", "/{*}x*"])
def test_bad_patterns(bad):
    with pytest.raises(PathPatternError):
        parse_path_pattern(bad)
