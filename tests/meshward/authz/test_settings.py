"""Settings: file, environment and flags, validated with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from meshward.authz.settings import load_settings


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "authz.yaml"
    path.write_text(text)
    return path


def test_file_then_environment_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(
        tmp_path,
        "policy: {paths: [p]}\nhttp: {port: 1000, host: 127.0.0.2}\nidentity: {mode: xfcc}\n",
    )
    monkeypatch.setenv("MESHWARD_AUTHZ_HTTP__PORT", "2000")
    monkeypatch.setenv("MESHWARD_AUTHZ_DECISION_LOG__ALLOW_SAMPLE_RATE", "0.25")
    settings = load_settings(path)
    assert settings.http.port == 2000
    assert settings.http.host == "127.0.0.2"
    assert settings.identity.mode == "xfcc"
    assert settings.decision_log.allow_sample_rate == 0.25
    flagged = load_settings(path, {"http": {"port": 3000}, "policy": {"paths": [], "bundle": "b"}})
    assert flagged.http.port == 3000
    assert flagged.http.host == "127.0.0.2"
    assert flagged.policy.bundle == Path("b")


def test_relative_paths_in_the_file_are_relative_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "conf"
    config.mkdir()
    path = _write(
        config,
        "policy: {paths: [policies, /abs/p]}\n"
        "jwt: {issuers: [{issuer: i, audiences: [a], jwks_file: keys/jwks.json}]}\n"
        "decision_log: {path: logs/d.jsonl}\n",
    )
    monkeypatch.chdir(tmp_path)  # started elsewhere: the file's paths do not move
    settings = load_settings(Path("conf") / "authz.yaml")
    assert settings.policy.paths == [Path("conf/policies"), Path("/abs/p")]
    assert settings.jwt.issuers[0].jwks_file == Path("conf/keys/jwks.json")
    assert settings.decision_log.path == "conf/logs/d.jsonl"
    # stdout stays stdout; flags and the environment stay relative to the working folder.
    path.write_text("policy: {paths: [p]}\ndecision_log: {path: '-'}\n")
    settings = load_settings(path, {"policy": {"paths": ["q"]}})
    assert (settings.policy.paths, settings.decision_log.path) == ([Path("q")], "-")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("http: {port: 1}\n", "policy"),
        ("policy: {paths: [p], bundle: b}\n", "exactly one of policy.paths"),
        ("policy: {paths: [p]}\nhttp: {check_prefix: /metrics}\n", "admin paths"),
        ("policy: {paths: [p]}\nhttp: {check_prefix: check}\n", "starts with '/'"),
        ("policy: {paths: [p]}\nidentity: {mode: trust-me}\n", "mode"),
        ("policy: {paths: [p]}\nunknown: 1\n", "unknown"),
        (
            "policy: {paths: [p]}\njwt: {issuers: [{issuer: i, audiences: [a], jwks_file: f,"
            " algorithms: [HS256]}]}\n",
            "HS256",
        ),
        (
            "policy: {paths: [p]}\njwt: {issuers: [{issuer: i, audiences: [a]}]}\n",
            "exactly one of jwks_file and jwks_url",
        ),
        ("policy: {paths: [p]}\njwt: {leeway_seconds: 3600}\n", "leeway"),
        ("policy: {paths: [p]}\nservices: {a: {deny_status: 200}}\n", "deny_status"),
    ],
)
def test_invalid_settings_are_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        load_settings(_write(tmp_path, text))


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mapping"):
        load_settings(_write(tmp_path, "- a\n"))


def test_the_documented_complete_example_is_valid_and_complete() -> None:
    import yaml

    from meshward.authz.settings import AuthzSettings

    docs = Path(__file__).parents[3] / "docs" / "ext_authz.md"
    marker = "A complete example with every field:\n\n```yaml\n"
    block = docs.read_text(encoding="utf-8").split(marker, 1)[1].split("```", 1)[0]
    doc = yaml.safe_load(block)
    AuthzSettings(**doc)  # valid as written
    assert set(doc) == set(AuthzSettings.model_fields)
    for name, field in AuthzSettings.model_fields.items():
        section = getattr(field.annotation, "model_fields", None)
        if section is not None:
            written = set(doc[name] or {})
            if name == "policy":
                written.add("bundle")  # the alternative to `paths`, shown commented out
            assert written == set(section), name
