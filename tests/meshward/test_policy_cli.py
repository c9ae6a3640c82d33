"""The policy verbs, run as a user runs them: the installed console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[2] / "examples" / "policies"
BOOKINFO = EXAMPLES / "bookinfo"


def meshward(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("meshward", path=os.path.dirname(sys.executable))
    assert exe, "the meshward console script is installed"
    return subprocess.run(
        [exe, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    path = tmp_path / "broken.policy"
    path.write_text(
        'trust_domain "td"\nprincipals web = [namespace "web"]\n'
        "service s {\n  allow GET /a from webb\n  allow GET /b/{**}/c from any\n}\n"
    )
    return path


def test_check_ok_and_exit_codes(broken: Path):
    ok = meshward("check", str(EXAMPLES))
    assert ok.returncode == 0 and ok.stdout.startswith("ok: 6 files")
    bad = meshward("check", str(broken))
    assert bad.returncode == 1
    assert f"{broken}:4:21: error[unknown-set]: unknown principal set 'webb'" in bad.stderr
    assert "did you mean web?" in bad.stderr
    assert f"{broken}:5:13: error[bad-path]" in bad.stderr
    assert "2 errors; nothing was compiled" in bad.stderr
    assert meshward("check", "/nonexistent/dir").returncode == 2
    assert meshward("check").returncode == 2


def test_error_format_json(broken: Path):
    out = meshward("check", "--error-format", "json", str(broken))
    assert out.returncode == 1
    diags = json.loads(out.stdout)["diagnostics"]
    assert [d["code"] for d in diags] == ["unknown-set", "bad-path"]
    assert diags[0]["location"]["line"] == 4 and diags[0]["suggestion"] == "web"
    # A usage error still answers in JSON on stdout (and in words on stderr).
    missing = meshward("check", "--error-format", "json", "/nonexistent/x.policy")
    assert missing.returncode == 2 and "x.policy" in missing.stderr
    doc = json.loads(missing.stdout)
    assert doc["diagnostics"] == [] and "x.policy" in doc["error"]


def test_compile_then_eval_json_lines_from_a_bundle(tmp_path: Path):
    out = tmp_path / "policy.bundle"
    assert meshward("compile", str(BOOKINFO), "-o", str(out)).returncode == 0
    cases = json.loads((BOOKINFO / "decisions.policytest.json").read_text())
    lines = "\n".join(json.dumps(c["request"]) for c in cases)
    result = meshward("eval", str(out), "--request", "-", stdin=lines)
    assert result.returncode == 0, result.stderr
    decisions = [json.loads(line) for line in result.stdout.splitlines()]
    assert [d["decision"] for d in decisions] == [c["expect"] for c in cases]
    assert [d["rules"][:1] or [None] for d in decisions] == [[c["rule"]] for c in cases]


def test_source_commands_say_a_bundle_is_not_source(tmp_path: Path):
    out = tmp_path / "policy.json"
    meshward("compile", str(BOOKINFO), "-o", str(out))
    request = '{"destination": "reviews.default", "method": "GET", "path": "/"}'
    commands = (
        ("explain", str(out), "--request", "-"),
        ("check", str(out)),
        ("lint", str(out)),
        ("fmt", "--check", str(out)),
        ("diff", str(out), str(BOOKINFO)),
    )
    for args in commands:
        result = meshward(*args, stdin=request)
        assert result.returncode == 2
        assert "is a compiled bundle" in result.stderr and "payload" not in result.stderr


def test_eval_refuses_a_tampered_bundle(tmp_path: Path):
    out = tmp_path / "policy.bundle"
    meshward("compile", str(BOOKINFO), "-o", str(out))
    out.write_text(out.read_text().replace('"deny"', '"allow"', 1))
    result = meshward("eval", str(out), "--request", "-", stdin="{}")
    assert result.returncode == 2 and "checksum mismatch" in result.stderr


def test_eval_rejects_a_malformed_request():
    result = meshward("eval", str(BOOKINFO), "--request", "-", stdin='{"method": "GET"}')
    assert result.returncode == 2 and "destination" in result.stderr


def test_explain_says_why_each_rule_did_or_did_not_match(tmp_path: Path):
    request = {
        "destination": "reviews.default",
        "method": "GET",
        "path": "/admin/flags",
        "source": {"principal": "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"},
    }
    path = tmp_path / "r.json"
    path.write_text(json.dumps(request))
    result = meshward("explain", str(BOOKINFO), "--request", str(path))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(
        "DENY GET /admin/flags -> reviews.default: denied by rule reviews-admin-ops-only"
    )
    assert "[matched] reviews-admin-ops-only" in out
    assert "path /admin/flags does not match /reviews/{*}" in out
    assert (
        "caller spiffe://cluster.local/ns/default/sa/bookinfo-productpage is not namespace" in out
    )
    js = json.loads(
        meshward("explain", str(BOOKINFO), "--request", str(path), "--format", "json").stdout
    )
    assert js["decision"]["decision"] == "deny" and len(js["rules"]) == 5


def test_eval_refuses_unreadable_requests_and_bundles_with_a_message(tmp_path: Path):
    policy = tmp_path / "p.policy"
    policy.write_text("service s { allow GET /a }\n")
    bad_files = {
        "latin1.json": b'{"destination": "s", "method": "GET", "path": "/\xe9"}',
        "deep.json": b"[" * 100_000,
        "null-header.json": b'{"destination": "s", "method": "GET", "path": "/", '
        b'"headers": {"x": null}}',
    }
    for name, data in bad_files.items():
        (tmp_path / name).write_bytes(data)
        done = meshward("eval", str(policy), "--request", str(tmp_path / name))
        assert done.returncode == 2 and "meshward: bad request:" in done.stderr, name
        assert "Traceback" not in done.stderr
    done = meshward("explain", str(policy), "--request", str(tmp_path / "deep.json"))
    assert (done.returncode, done.stderr) == (2, "meshward: bad request: JSON nested too deeply\n")
    binary = tmp_path / "policy.bundle"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00")
    good = tmp_path / "r.json"
    good.write_text('{"destination": "s", "method": "GET", "path": "/a"}')
    done = meshward("eval", str(binary), "--request", str(good))
    assert done.returncode == 2 and "not UTF-8" in done.stderr


def test_compile_to_a_folder_that_does_not_exist_says_so(tmp_path: Path):
    policy = tmp_path / "p.policy"
    policy.write_text("service s { allow GET /a }\n")
    done = meshward("compile", str(policy), "-o", str(tmp_path / "missing" / "b.json"))
    assert done.returncode == 2 and "cannot write the bundle" in done.stderr
    assert "Traceback" not in done.stderr
