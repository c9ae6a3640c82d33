"""JWT-SVIDs: anchors.md SPIFFE MUST 5, checked against the `spiffe` package too."""

from __future__ import annotations

import datetime as dt
import json

import jwt
import pytest
import spiffe
from cryptography.hazmat.primitives.asymmetric import ed25519

from meshward.ca.bundle import TrustBundle
from meshward.ca.errors import JwtSvidInvalid
from meshward.ca.jwt_svid import issue_jwt_svid, validate_jwt_svid
from meshward.ca.keys import KeyAlgorithm, generate_private_key
from meshward.ca.spiffe_id import SpiffeId

WEB = SpiffeId.parse("spiffe://example.org/ns/default/sa/web")
KEY = generate_private_key()
KID = "k1"
KEYS = {KID: KEY.public_key()}


def _segments(token: str) -> tuple[dict[str, object], dict[str, object]]:
    """Header and claims as written, read without verification (pyjwt does the decoding)."""
    assert token.count(".") == 2  # compact JWS
    claims = jwt.decode(token, options={"verify_signature": False})
    return jwt.get_unverified_header(token), claims


def _validate(token: str, audience: str = "db", **kwargs: object) -> str:
    with pytest.raises(JwtSvidInvalid) as caught:
        validate_jwt_svid(token, KEYS, audience, trust_domain="example.org", **kwargs)  # type: ignore[arg-type]
    return caught.value.code


def test_token_is_compact_jws_es256_with_only_alg_kid_typ() -> None:
    header, claims = _segments(issue_jwt_svid(KEY, KID, WEB, ["db"]))
    assert header == {"alg": "ES256", "kid": KID, "typ": "JWT"}
    assert claims["sub"] == str(WEB)
    assert claims["aud"] == ["db"]
    assert isinstance(claims["exp"], int) and isinstance(claims["iat"], int)


def test_rsa_keys_sign_rs256_and_ed25519_is_refused() -> None:
    rsa_key = generate_private_key(KeyAlgorithm.RSA_2048)
    header, _ = _segments(issue_jwt_svid(rsa_key, KID, WEB, ["db"]))
    assert header["alg"] == "RS256"
    with pytest.raises(JwtSvidInvalid):
        issue_jwt_svid(ed25519.Ed25519PrivateKey.generate(), KID, WEB, ["db"])


def test_audience_and_kid_are_required_to_issue() -> None:
    with pytest.raises(JwtSvidInvalid):
        issue_jwt_svid(KEY, KID, WEB, [])
    with pytest.raises(JwtSvidInvalid):
        issue_jwt_svid(KEY, "", WEB, ["db"])


def test_valid_token_validates() -> None:
    svid = validate_jwt_svid(
        issue_jwt_svid(KEY, KID, WEB, ["db", "cache"]), KEYS, "cache", trust_domain="example.org"
    )
    assert svid.spiffe_id == WEB
    assert svid.audience == ("db", "cache")


def test_foreign_audience_is_rejected() -> None:
    assert _validate(issue_jwt_svid(KEY, KID, WEB, ["db"]), audience="other") == "audience"


def test_missing_audience_is_rejected() -> None:
    token = jwt.encode({"sub": str(WEB), "exp": 4102444800}, KEY, "ES256", headers={"kid": KID})
    assert _validate(token) == "missing-claim"


def test_missing_exp_is_rejected() -> None:
    token = jwt.encode({"sub": str(WEB), "aud": ["db"]}, KEY, "ES256", headers={"kid": KID})
    assert _validate(token) == "missing-claim"


def test_expired_token_is_rejected() -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    token = issue_jwt_svid(KEY, KID, WEB, ["db"], now=past)
    assert _validate(token) == "expired"


def test_hs256_is_rejected() -> None:
    token = jwt.encode(
        {"sub": str(WEB), "aud": "db", "exp": 4102444800}, "s" * 32, "HS256", headers={"kid": KID}
    )
    assert _validate(token) == "bad-alg"


def test_alg_none_is_rejected() -> None:
    token = jwt.encode(
        {"sub": str(WEB), "aud": "db", "exp": 4102444800}, None, "none", headers={"kid": KID}
    )
    assert _validate(token) == "bad-alg"


def test_eddsa_is_rejected() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    token = jwt.encode(
        {"sub": str(WEB), "aud": "db", "exp": 4102444800}, key, "EdDSA", headers={"kid": KID}
    )
    assert _validate(token) == "bad-alg"


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES384"])
def test_an_algorithm_the_named_key_cannot_verify_is_rejected(alg: str) -> None:
    # The kid names the P-256 key; the header claims another family or curve. Signed by
    # a key of that family, the token reaches the key check (pyjwt would raise TypeError).
    signer = generate_private_key(KeyAlgorithm.RSA_2048 if alg[0] in "RP" else KeyAlgorithm.EC_P384)
    claims = {"sub": str(WEB), "aud": "db", "exp": 4102444800}
    token = jwt.encode(claims, signer, alg, headers={"kid": KID})
    assert _validate(token) == "bad-alg"


def _raw(header: dict[str, object]) -> str:
    return jwt.utils.base64url_encode(json.dumps(header).encode()).decode() + ".e30.c2ln"


def test_a_header_pyjwt_refuses_is_malformed() -> None:
    assert _validate(_raw({"alg": "ES256", "kid": 5})) == "malformed"


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ({"alg": ["ES256"], "kid": KID}, "bad-alg"),
        ({"alg": "ES256", "kid": KID, "typ": ["JWT"]}, "bad-header"),
        ({"alg": "ES256", "kid": KID, "typ": None}, "bad-header"),
    ],
)
def test_header_fields_of_the_wrong_type_are_refused(header: dict[str, object], code: str) -> None:
    assert _validate(_raw(header)) == code


def test_extra_header_is_rejected() -> None:
    token = jwt.encode(
        {"sub": str(WEB), "aud": "db", "exp": 4102444800},
        KEY,
        "ES256",
        headers={"kid": KID, "x5u": "https://evil"},
    )
    assert _validate(token) == "bad-header"


def test_missing_or_unknown_kid_is_rejected() -> None:
    claims = {"sub": str(WEB), "aud": "db", "exp": 4102444800}
    assert _validate(jwt.encode(claims, KEY, "ES256")) == "no-kid"
    assert _validate(jwt.encode(claims, KEY, "ES256", headers={"kid": "nope"})) == "unknown-kid"


def test_signature_by_another_key_is_rejected() -> None:
    token = issue_jwt_svid(generate_private_key(), KID, WEB, ["db"])
    assert _validate(token) == "bad-signature"


def test_subject_outside_the_trust_domain_is_rejected() -> None:
    token = issue_jwt_svid(KEY, KID, SpiffeId.parse("spiffe://other.org/a"), ["db"])
    assert _validate(token) == "bad-subject"


def test_spiffe_package_validates_our_token_with_our_bundle() -> None:
    bundle = TrustBundle("example.org", (), KEYS)
    jwt_bundle = spiffe.JwtBundle.parse(
        spiffe.TrustDomain("example.org"), json.dumps(bundle.to_jwks()).encode()
    )
    token = issue_jwt_svid(KEY, KID, WEB, ["db"])
    svid = spiffe.JwtSvid.parse_and_validate(token, jwt_bundle, {"db"})
    assert str(svid.spiffe_id) == str(WEB)
    with pytest.raises(Exception):  # noqa: B017 -- reference rejects the foreign audience
        spiffe.JwtSvid.parse_and_validate(token, jwt_bundle, {"other"})


def test_a_lifetime_that_is_not_positive_is_refused() -> None:
    for ttl in (dt.timedelta(0), dt.timedelta(hours=-1)):
        with pytest.raises(JwtSvidInvalid) as caught:
            issue_jwt_svid(KEY, KID, WEB, ["db"], ttl=ttl)
        assert caught.value.code == "bad-ttl"
