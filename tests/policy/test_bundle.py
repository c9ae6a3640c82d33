from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from meshward.policy import (
    BundleError,
    Request,
    bundle,
    compile_policy,
    evaluate,
    load_paths,
    load_texts,
)
from meshward.policy.loader import load_bundle

EXAMPLES = Path(__file__).parents[2] / "examples" / "policies"


def test_bundle_round_trips_the_checked_model_and_decides_the_same(tmp_path):
    loaded = load_paths([EXAMPLES])
    path = tmp_path / "policy.bundle"
    bundle.write(loaded.policy, path)
    assert bundle.loads(path.read_text()) == loaded.policy
    compiled = load_bundle(path)
    assert compiled.fingerprint == compile_policy(loaded.policy).fingerprint
    direct = compile_policy(loaded.policy)
    for case_file in EXAMPLES.rglob("*.policytest.json"):
        for case in json.loads(case_file.read_text()):
            request = Request.from_json(case["request"])
            assert evaluate(compiled, request) == evaluate(direct, request)


def test_bundle_loads_without_the_grammar(tmp_path, monkeypatch):
    from meshward.policy import parser

    loaded = load_paths([EXAMPLES / "bookinfo"])
    text = bundle.dumps(loaded.policy)

    def no_grammar() -> None:
        raise AssertionError("the grammar was loaded")

    monkeypatch.setattr(parser, "grammar", no_grammar)
    assert bundle.loads(text) == loaded.policy


def _doc(tmp_path: Path) -> dict:
    return json.loads(bundle.dumps(load_paths([EXAMPLES / "bookinfo"]).policy))


def test_wrong_version_is_refused(tmp_path):
    doc = _doc(tmp_path)
    doc["version"] = 99
    with pytest.raises(BundleError, match="version 99 is not supported"):
        bundle.loads(json.dumps(doc))


def test_altered_payload_is_refused(tmp_path):
    doc = _doc(tmp_path)
    doc["payload"]["services"][0]["default"] = "allow"
    with pytest.raises(BundleError, match="checksum mismatch"):
        bundle.loads(json.dumps(doc))


@pytest.mark.parametrize("text", ["", "{}", "[1]", '{"format": "meshward-bundle", "version": 1}'])
def test_garbage_is_refused(text):
    with pytest.raises(BundleError):
        bundle.loads(text)


def _resealed(doc: dict) -> str:
    """The document with a checksum that matches its (edited) payload."""
    body = json.dumps(doc["payload"], sort_keys=True, separators=(",", ":"))
    doc["sha256"] = hashlib.sha256(body.encode()).hexdigest()
    return json.dumps(doc)


def _first_rule(doc: dict, effect: str | None = None) -> dict:
    rules = [r for s in doc["payload"]["services"] for r in s["rules"]]
    return next(r for r in rules if effect is None or r["effect"] == effect)


EDITS = {
    "an unknown effect": lambda d: _first_rule(d, "deny").update(effect="permit"),
    "a string port": lambda d: d["payload"]["services"][0].update(port="80"),
    "a port out of range": lambda d: d["payload"]["services"][0].update(port=70000),
    "an unknown default": lambda d: d["payload"]["services"][0].update(default="maybe"),
    "audit as a string": lambda d: _first_rule(d).update(audit="yes"),
    "an unknown source kind": lambda d: _first_rule(d).update(sources=[["everyone", ""]]),
    "a bad CIDR": lambda d: _first_rule(d).update(sources=[["cidr", "bogus"]]),
    "a bad SPIFFE ID": lambda d: _first_rule(d).update(sources=[["id", "spiffe://A/b"]]),
    "a bad path": lambda d: _first_rule(d).update(paths=["relative"]),
    "an unknown operator": lambda d: _first_rule(d).update(
        when={"cmp": "bogus", "attr": ["jwt", "x"], "type": "any", "value": "1"}
    ),
    "an unknown attribute": lambda d: _first_rule(d).update(
        when={"cmp": "==", "attr": ["nowhere"], "type": "any", "value": "1"}
    ),
    "a bad network in within": lambda d: _first_rule(d).update(
        when={"cmp": "within", "attr": ["source", "ip"], "type": "ip", "value": "x"}
    ),
    "a deep condition": lambda d: _first_rule(d).update(when=_deep(300)),
    "a service twice": lambda d: d["payload"]["services"].append(d["payload"]["services"][0]),
    "a short span": lambda d: _first_rule(d).update(span=["f", 1]),
    "a rule id with a newline": lambda d: _first_rule(d).update(id="a\nb"),
    "a lower-case method": lambda d: _first_rule(d).update(methods=["delete"]),
    "an upper-case host": lambda d: _first_rule(d).update(hosts=["Admin.Local"]),
    "an upper-case header name": lambda d: _first_rule(d).update(
        when={"has": {"attr": ["request", "headers", "X-A"], "type": "any"}}
    ),
    # Typed as a string, an address would be compared as written, not canonicalised.
    "an attribute of another type": lambda d: _first_rule(d).update(
        when={"cmp": "==", "attr": ["source", "ip"], "type": "string", "value": "::FFFF:a00:1"}
    ),
    "a rule id twice": lambda d: d["payload"]["services"][0]["rules"].append(_first_rule(d)),
    "an id naming a trust domain": lambda d: _first_rule(d).update(
        sources=[["id", "spiffe://cluster.local"]]
    ),
    "a service name the grammar refuses": lambda d: d["payload"]["services"][0].update(
        name="Pay\nments"
    ),
    "an empty method list": lambda d: _first_rule(d).update(methods=[]),
    "`in` with one value": lambda d: _first_rule(d).update(
        when={"cmp": "in", "attr": ["jwt", "x"], "type": "any", "value": "a"}
    ),
    "`contains` on the method": lambda d: _first_rule(d).update(
        when={"cmp": "contains", "attr": ["request", "method"], "type": "string", "value": "G"}
    ),
    "a number of 50 digits": lambda d: _first_rule(d).update(
        when={"cmp": "==", "attr": ["jwt", "x"], "type": "any", "value": 10**49}
    ),
    "a namespace that is no path segment": lambda d: _first_rule(d).update(
        sources=[["namespace", "cluster.local/o ps"]]
    ),
    "a namespace of two segments": lambda d: _first_rule(d).update(
        sources=[["namespace", "cluster.local/ops/x"]]
    ),
    "`any` with a value": lambda d: _first_rule(d).update(sources=[["any", "x"]]),
    "a rule without its methods": lambda d: _first_rule(d).pop("methods"),
    "a rule with a key no bundle has": lambda d: _first_rule(d).update(priority=1),
    "a comparison with a key no bundle has": lambda d: _first_rule(d).update(
        when={"cmp": "==", "attr": ["jwt", "x"], "type": "any", "value": "1", "all": []}
    ),
}


def _deep(n: int) -> dict:
    cond: dict = {"has": {"attr": ["jwt", "x"], "type": "any"}}
    for _ in range(n):
        cond = {"not": cond}
    return cond


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_a_resealed_payload_is_still_validated_field_by_field(tmp_path, edit):
    # The checksum is no signature: a payload edited and resealed must be refused, not
    # decided on (an unknown effect read as an allow would open what a deny closed).
    doc = _doc(tmp_path)
    EDITS[edit](doc)
    with pytest.raises(BundleError, match="malformed bundle payload"):
        bundle.loads(_resealed(doc))


@pytest.mark.parametrize("version", [True, 1.0, "1"])
def test_a_version_must_be_the_integer(tmp_path, version):
    doc = _doc(tmp_path)
    doc["version"] = version
    with pytest.raises(BundleError, match="is not supported"):
        bundle.loads(json.dumps(doc))


@pytest.mark.parametrize(
    "number", ["NaN", "Infinity", "-Infinity", "1" * 5_000], ids=["nan", "inf", "-inf", "long"]
)
def test_numbers_no_policy_holds_are_refused(number):
    # A 5,000-digit number makes the JSON reader raise a plain ValueError.
    with pytest.raises(BundleError, match="not a meshward bundle"):
        bundle.loads(f'{{"format": "meshward-bundle", "version": 1, "x": {number}}}')


def test_a_number_that_reads_as_infinity_is_refused(tmp_path):
    doc = _doc(tmp_path)
    _first_rule(doc).update(when={"cmp": "==", "attr": ["jwt", "x"], "type": "any", "value": 1e999})
    text = _resealed(doc)  # the checksum is of the payload as read: infinity
    assert "Infinity" in text
    with pytest.raises(BundleError, match="a number no policy can hold"):
        bundle.loads(text.replace("Infinity", "1e999"))


def test_binary_and_deeply_nested_files_are_refused(tmp_path):
    binary = tmp_path / "policy.bundle"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(BundleError, match="not UTF-8"):
        load_bundle(binary)
    with pytest.raises(BundleError, match="nested too deeply"):
        bundle.loads("[" * 100_000)


def test_constants_of_an_older_spelling_decide_as_the_source_does_today(tmp_path) -> None:
    # A bundle compiled before addresses and hosts were compared in one spelling holds
    # the constants as written: loaded, they must still match (a deny must not go dead).
    text = (
        "service s { default allow\n"
        '  @id("ip") deny * /ip when source.ip == "10.0.0.5"\n'
        '  @id("host") deny * /host when request.host in ["admin.local"] }\n'
    )
    doc = json.loads(bundle.dumps(load_texts({"p.policy": text}).policy))
    for rule in doc["payload"]["services"][0]["rules"]:
        if rule["id"] == "ip":
            rule["when"]["value"] = "::ffff:10.0.0.5"
        else:
            rule["when"]["value"] = {"list": ["Admin.Local."]}
    compiled = compile_policy(bundle.loads(_resealed(doc)))
    ip = evaluate(compiled, Request("s", "GET", "/ip", source_ip="10.0.0.5"))
    host = evaluate(compiled, Request("s", "GET", "/host", host="admin.local:8443"))
    assert (ip.rule_ids, host.rule_ids) == (("ip",), ("host",))


def test_every_policy_the_checker_accepts_loads_from_its_bundle(tmp_path):
    # Rules the loader's checks must not refuse: a rule `from` an empty principal set
    # (no sources: it matches no caller) and namespaces of dots.
    text = (
        'trust_domain "td"\nprincipals blocked = []\n'
        "service s { deny GET /a from blocked\n"
        ' allow GET /b from namespace ".", namespace ".."\n}\n'
    )
    policy = load_texts({"p.policy": text}).policy
    assert bundle.loads(bundle.dumps(policy)) == policy
