"""JWT verification with real keys, a JWKS file and a JWKS URL on loopback."""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from meshward.authz import tokens
from meshward.authz.settings import JwtSettings
from meshward.authz.tokens import JwtVerifier, bearer_token
from meshward.testing.jwt_issuer import TestIssuer
from meshward.testing.waiting import eventually


def _verifier(issuer: TestIssuer, jwks: dict[str, Any], **extra: Any) -> JwtVerifier:
    source = extra.pop("source")
    return JwtVerifier(
        JwtSettings(
            issuers=[
                {
                    "issuer": issuer.issuer,
                    "audiences": [issuer.audience, "other"],
                    "algorithms": ["ES256"],
                    **source,
                    **jwks,
                }
            ],
            **extra,
        )
    )


@pytest.fixture
def file_verifier(issuer: TestIssuer, tmp_path: Path) -> JwtVerifier:
    path = issuer.write_jwks(tmp_path / "jwks.json")
    return _verifier(issuer, {}, source={"jwks_file": str(path)}, jwks_min_refresh_seconds=0)


def test_valid_token_feeds_claims(issuer: TestIssuer, file_verifier: JwtVerifier) -> None:
    result = file_verifier.verify(issuer.token({"sub": "alice", "scope": ["a", "b"]}))
    assert result.verified
    assert result.claims is not None
    assert result.claims["sub"] == "alice"
    assert result.claims["scope"] == ["a", "b"]


def test_failures_are_classified(issuer: TestIssuer, file_verifier: JwtVerifier) -> None:
    stranger = TestIssuer("https://stranger.test")
    other_key = ec.generate_private_key(ec.SECP256R1())
    cases = {
        tokens.EXPIRED: issuer.token(ttl=-120),
        tokens.NOT_YET_VALID: issuer.token({"nbf": int(time.time()) + 600}),
        tokens.WRONG_AUDIENCE: issuer.token({"aud": "someone-else"}),
        tokens.UNKNOWN_ISSUER: stranger.token(),
        tokens.BAD_SIGNATURE: issuer.token(key=other_key),
        tokens.UNKNOWN_KEY: issuer.token(kid="nope", key=other_key),
        tokens.MALFORMED: "not.a.jwt",
        tokens.MISSING_CLAIM: issuer.token(ttl=None),
        tokens.DISALLOWED_ALGORITHM: pyjwt.encode(
            {"iss": issuer.issuer, "aud": issuer.audience, "exp": int(time.time()) + 60},
            "a-shared-secret-that-is-long-enough-for-hs256",
            algorithm="HS256",
        ),
    }
    for reason, token in cases.items():
        result = file_verifier.verify(token)
        assert (result.claims, result.reason) == (None, reason), reason
    assert file_verifier.verify(None) == tokens.NO_TOKEN


def test_unsigned_token_is_refused(issuer: TestIssuer, file_verifier: JwtVerifier) -> None:
    token = pyjwt.encode(
        {"iss": issuer.issuer, "aud": issuer.audience, "exp": int(time.time()) + 60},
        None,
        algorithm="none",
    )
    assert file_verifier.verify(token).reason == tokens.DISALLOWED_ALGORITHM


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A token with any header at all (pyjwt's encoder would refuse some)."""

    def part(doc: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}.c2ln"


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "ES256", "kid": 5},
        {"alg": "ES256", "kid": None},
        {"alg": "ES256", "kid": ["a"]},
        {"alg": "ES256", "crit": "exp"},
        {"alg": "ES256", "crit": ["unknown-extension"], "unknown-extension": 1},
    ],
)
def test_a_header_pyjwt_refuses_is_malformed_not_an_error(
    issuer: TestIssuer, file_verifier: JwtVerifier, header: dict[str, Any]
) -> None:
    claims = {"iss": issuer.issuer, "aud": issuer.audience, "exp": int(time.time()) + 60}
    result = file_verifier.verify(_unsigned(header, claims))
    assert (result.claims, result.reason) == (None, tokens.MALFORMED)


@pytest.mark.parametrize(
    "text", ['{"keys": [null, 5, "x"]}', '{"keys": 5}', "[]", '"keys"', "null", "{"]
)
def test_a_jwks_of_the_wrong_shape_is_unavailable_and_the_last_good_keys_stay(
    issuer: TestIssuer, tmp_path: Path, text: str
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(text)
    verifier = _verifier(issuer, {}, source={"jwks_file": str(path)}, jwks_min_refresh_seconds=0)
    verifier.load_keys()  # logged, not raised
    assert verifier.verify(issuer.token()).reason == tokens.UNKNOWN_KEY
    issuer.write_jwks(path)
    good = issuer.token()
    assert verifier.verify(good).verified
    path.write_text(text)
    stranger = issuer.token(kid="new", key=ec.generate_private_key(ec.SECP256R1()))
    assert verifier.verify(stranger).reason == tokens.UNKNOWN_KEY  # a reload was tried
    assert verifier.verify(issuer.token({"sub": "again"})).verified  # with the kept keys


def test_a_jwk_with_an_odd_kid_is_skipped_and_the_others_serve(
    issuer: TestIssuer, tmp_path: Path
) -> None:
    path = issuer.write_jwks(tmp_path / "jwks.json")
    doc = json.loads(path.read_text())
    doc["keys"].append({**doc["keys"][0], "kid": ["a", "list"]})
    path.write_text(json.dumps(doc))
    verifier = _verifier(issuer, {}, source={"jwks_file": str(path)})
    verifier.load_keys()
    assert verifier.verify(issuer.token()).verified


def _write_keys(path: Path, issuer: TestIssuer, kids: set[str], **extra: str) -> Path:
    keys = [{**k, **extra} for k in issuer.jwks()["keys"] if k["kid"] in kids]
    path.write_text(json.dumps({"keys": keys}))
    return path


def test_a_key_dropped_from_the_jwks_stops_verifying(issuer: TestIssuer, tmp_path: Path) -> None:
    # Rotation: the issuer publishes k2 and withdraws k1. Once the verifier rereads the
    # JWKS (for an unknown kid, or when its copy ages out), a new token under k1 fails.
    first = issuer.kid
    path = _write_keys(tmp_path / "jwks.json", issuer, {first})
    verifier = _verifier(
        issuer,
        {"jwks_cache_seconds": 1},
        source={"jwks_file": str(path)},
        jwks_min_refresh_seconds=0,
    )
    assert verifier.verify(issuer.token({"sub": "a"})).verified
    second = issuer.add_key()
    _write_keys(path, issuer, {second})
    assert verifier.verify(issuer.token({"sub": "b"})).verified  # unknown kid: reread
    withdrawn = issuer.token({"sub": "c"}, kid=first)
    assert verifier.verify(withdrawn).reason == tokens.UNKNOWN_KEY
    # Withdrawn while no new kid asks for a reread: gone once the copy ages out.
    _write_keys(path, issuer, {first, second})
    assert verifier.verify(issuer.token({"sub": "d"}, kid=first)).verified
    _write_keys(path, issuer, {second})
    assert verifier.verify(issuer.token({"sub": "e"}, kid=first)).verified  # still cached
    time.sleep(1.1)  # jwks_cache_seconds
    assert verifier.verify(issuer.token({"sub": "f"}, kid=first)).reason == tokens.UNKNOWN_KEY


def test_only_signing_keys_verify_and_a_kid_is_needed_among_several(
    issuer: TestIssuer, tmp_path: Path
) -> None:
    # A key published for X.509-SVIDs is not a JWT key.
    path = _write_keys(tmp_path / "x509.json", issuer, {issuer.kid}, use="x509-svid")
    verifier = _verifier(issuer, {}, source={"jwks_file": str(path)})
    assert verifier.verify(issuer.token()).reason == tokens.UNKNOWN_KEY
    # Without a kid, the only key verifies; with two keys, neither is guessed.
    claims = {"iss": issuer.issuer, "aud": issuer.audience, "exp": int(time.time()) + 60}
    signer = ec.generate_private_key(ec.SECP256R1())
    no_kid = pyjwt.encode(claims, signer, algorithm="ES256")
    jwk = json.loads(pyjwt.algorithms.ECAlgorithm.to_jwk(signer.public_key()))
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"keys": [jwk]}))
    assert _verifier(issuer, {}, source={"jwks_file": str(one)}).verify(no_kid).verified
    two = tmp_path / "two.json"
    two.write_text(json.dumps({"keys": [{**jwk, "kid": "a"}, *issuer.jwks()["keys"]]}))
    verifier = _verifier(issuer, {}, source={"jwks_file": str(two)})
    assert verifier.verify(no_kid).reason == tokens.UNKNOWN_KEY


def test_leeway_is_bounded_skew(issuer: TestIssuer, tmp_path: Path) -> None:
    path = issuer.write_jwks(tmp_path / "jwks.json")
    lenient = _verifier(issuer, {}, source={"jwks_file": str(path)}, leeway_seconds=60)
    assert lenient.verify(issuer.token(ttl=-30)).verified
    assert lenient.verify(issuer.token(ttl=-90)).reason == tokens.EXPIRED


def test_verified_tokens_are_cached_until_expiry_or_until_their_key_goes(
    issuer: TestIssuer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = issuer.write_jwks(tmp_path / "jwks.json")
    verifier = _verifier(
        issuer, {}, source={"jwks_file": str(path)}, jwks_min_refresh_seconds=0, leeway_seconds=0
    )
    first = issuer.kid
    hot = issuer.token({"sub": "hot"})
    short = issuer.token({"sub": "short"}, ttl=1)
    assert verifier.verify(hot).verified
    assert verifier.verify(short).verified
    checks = _signature_checks(monkeypatch)
    assert verifier.verify(hot).verified and checks == []  # from the cache
    # A key joins the JWKS (read for a token under it): cached tokens stay verified.
    issuer.add_key()
    issuer.write_jwks(path)
    assert verifier.verify(issuer.token({"sub": "new"})).verified
    checks.clear()
    assert verifier.verify(hot).verified and checks == []
    # The key behind the first kid is replaced (a compromised key withdrawn): a token it
    # verified is verified again on its next use, and fails, long before it expires.
    replacement = TestIssuer(issuer.issuer, issuer.audience)
    assert replacement.kid == first
    replacement.write_jwks(path)
    old = ec.generate_private_key(ec.SECP256R1())
    assert verifier.verify(issuer.token(kid="unknown", key=old)).reason == tokens.UNKNOWN_KEY
    assert verifier.verify(hot).reason == tokens.BAD_SIGNATURE
    assert verifier.verify(replacement.token({"sub": "fresh"})).verified
    deadline = time.time() + 5
    while time.time() < deadline and verifier.verify(short).verified:
        time.sleep(0.2)
    assert verifier.verify(short).reason in (tokens.EXPIRED, tokens.BAD_SIGNATURE)


def _signature_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens verified from now on (each one that missed the caches): every
    verification starts by reading the token's header. Counted at pyjwt, since the
    verifier's own methods cannot be replaced where they are compiled."""
    checks: list[str] = []
    read_header = pyjwt.get_unverified_header

    def counting(token: str) -> dict[str, Any]:
        checks.append(token)
        return read_header(token)

    monkeypatch.setattr(pyjwt, "get_unverified_header", counting)
    return checks


def test_lasting_failures_are_cached_and_healing_ones_are_not(
    issuer: TestIssuer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resent bad token costs a lookup, not a signature check; a token that may still
    become good (unknown key, not yet valid) is verified again every time."""
    path = issuer.write_jwks(tmp_path / "jwks.json")
    verifier = _verifier(issuer, {}, source={"jwks_file": str(path)}, jwks_min_refresh_seconds=0)
    checks = _signature_checks(monkeypatch)
    forged = issuer.token(key=ec.generate_private_key(ec.SECP256R1()))
    expired = issuer.token(ttl=-3600)
    unknown_key = issuer.token(kid="k9", key=ec.generate_private_key(ec.SECP256R1()))
    early = issuer.token({"nbf": int(time.time()) + 3600})
    for token, reason in (
        (forged, tokens.BAD_SIGNATURE),
        (expired, tokens.EXPIRED),
        (unknown_key, tokens.UNKNOWN_KEY),
        (early, tokens.NOT_YET_VALID),
    ):
        for _ in range(3):
            assert verifier.verify(token).reason == reason
    assert checks.count(forged) == checks.count(expired) == 1
    assert checks.count(unknown_key) == checks.count(early) == 3


def test_bad_tokens_cannot_push_verified_ones_out_of_the_cache(
    issuer: TestIssuer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = issuer.write_jwks(tmp_path / "jwks.json")
    verifier = _verifier(issuer, {}, source={"jwks_file": str(path)}, cache_size=3)
    good = issuer.token({"sub": "good"})
    assert verifier.verify(good).verified
    for _ in range(10):
        forged = issuer.token(key=ec.generate_private_key(ec.SECP256R1()))
        assert verifier.verify(forged).reason == tokens.BAD_SIGNATURE
    checks = _signature_checks(monkeypatch)
    assert verifier.verify(good).verified
    assert checks == []
    assert len(verifier._failures) == 3


def test_cache_is_bounded(issuer: TestIssuer, tmp_path: Path) -> None:
    path = issuer.write_jwks(tmp_path / "jwks.json")
    verifier = _verifier(issuer, {}, source={"jwks_file": str(path)}, cache_size=3)
    for i in range(10):
        assert verifier.verify(issuer.token({"n": i})).verified
    assert len(verifier._cache) == 3


class _JwksHandler(http.server.BaseHTTPRequestHandler):
    body: ClassVar[bytes] = b"{}"
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, type[_JwksHandler]]]:
    handler = type("Handler", (_JwksHandler,), {"hits": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", handler
    server.shutdown()
    server.server_close()


def test_jwks_url_refreshes_in_the_background_rate_limited(
    issuer: TestIssuer, jwks_server: tuple[str, type[_JwksHandler]]
) -> None:
    url, handler = jwks_server
    handler.body = json.dumps(issuer.jwks()).encode()
    verifier = _verifier(issuer, {}, source={"jwks_url": url}, jwks_min_refresh_seconds=0)
    verifier.load_keys()
    assert verifier.verify(issuer.token()).verified
    assert len(handler.hits) == 1
    issuer.add_key()  # rotation: the new key signs, the JWKS publishes both
    handler.body = json.dumps(issuer.jwks()).encode()
    rotated = issuer.token()
    # The unknown kid starts a fetch but never waits for it inside the check.
    assert eventually(lambda: verifier.verify(rotated).verified)
    assert len(handler.hits) >= 2

    limited = _verifier(issuer, {}, source={"jwks_url": url}, jwks_min_refresh_seconds=3600)
    limited.load_keys()
    assert limited.verify(issuer.token()).verified
    before = len(handler.hits)
    for _ in range(5):
        stranger = issuer.token(kid="gone", key=ec.generate_private_key(ec.SECP256R1()))
        assert limited.verify(stranger).reason == tokens.UNKNOWN_KEY
    time.sleep(0.2)
    assert len(handler.hits) == before  # unknown kids do not hammer the JWKS endpoint


def test_unreachable_jwks_fails_closed(issuer: TestIssuer) -> None:
    verifier = _verifier(issuer, {}, source={"jwks_url": "http://127.0.0.1:9/jwks.json"})
    verifier.load_keys()
    assert verifier.verify(issuer.token()).reason == tokens.UNKNOWN_KEY


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), ("Bearer", None)],
)
def test_bearer_token(header: str, token: str | None) -> None:
    assert bearer_token(header) == token


def test_jwt_svids_of_a_trust_domain_are_verified_by_their_subject(tmp_path: Path) -> None:
    # JWT-SVIDs need carry no `iss`: a `trust_domain` entry knows them by their subject's
    # trust domain, and verifies them with that trust domain's JWKS bundle, as meshward's
    # CA publishes it.
    from meshward.ca.manager import TrustDomainCa
    from meshward.ca.spiffe_id import SpiffeId
    from meshward.ca.store import FileStore

    ca = TrustDomainCa.init(FileStore(tmp_path / "ca"), "example.org")
    jwks = tmp_path / "bundle.jwks"
    jwks.write_text(json.dumps(ca.bundle().to_jwks()))
    verifier = JwtVerifier(
        JwtSettings(
            issuers=[{"trust_domain": "example.org", "audiences": ["db"], "jwks_file": str(jwks)}]
        )
    )
    web = SpiffeId.parse("spiffe://example.org/ns/default/sa/web")
    token = ca.issue_jwt(web, ["db"])
    assert "iss" not in pyjwt.decode(token, options={"verify_signature": False})
    result = verifier.verify(token)
    assert result.verified and result.claims is not None
    assert result.claims["sub"] == str(web)
    assert verifier.verify(ca.issue_jwt(web, ["cache"])).reason == tokens.WRONG_AUDIENCE

    # Another trust domain's SVID is no issuer this one knows, even with the same keys'
    # kid; a forged subject does not pass the signature check.
    other = TrustDomainCa.init(FileStore(tmp_path / "other"), "other.org")
    stranger = other.issue_jwt(SpiffeId.parse("spiffe://other.org/sa/x"), ["db"])
    assert verifier.verify(stranger).reason == tokens.UNKNOWN_ISSUER
    claims = pyjwt.decode(token, options={"verify_signature": False})
    header = pyjwt.get_unverified_header(token)
    key = ec.generate_private_key(ec.SECP256R1())
    forged = pyjwt.encode(
        {**claims, "sub": "spiffe://example.org/ns/ops/sa/admin"},
        key,
        algorithm="ES256",
        headers={"kid": header["kid"]},
    )
    assert verifier.verify(forged).reason == tokens.BAD_SIGNATURE


def test_a_token_with_an_iss_is_never_verified_by_a_trust_domain(tmp_path: Path) -> None:
    # Signed with the trust domain's own key, but carrying an `iss` no issuer configured
    # names: a rule that reads `jwt.iss` must only ever see one somebody vouched for.
    from meshward.ca.manager import TrustDomainCa
    from meshward.ca.spiffe_id import SpiffeId
    from meshward.ca.store import FileStore

    ca = TrustDomainCa.init(FileStore(tmp_path / "ca"), "example.org")
    jwks = tmp_path / "bundle.jwks"
    jwks.write_text(json.dumps(ca.bundle().to_jwks()))
    td = {"trust_domain": "example.org", "audiences": ["db"], "jwks_file": str(jwks)}
    verifier = JwtVerifier(JwtSettings(issuers=[td]))
    svid = ca.issue_jwt(SpiffeId.parse("spiffe://example.org/sa/web"), ["db"])
    assert verifier.verify(svid).verified
    # Re-sign the SVID's claims with an `iss`, using the trust domain's key (taken from
    # the CA's state, as an insider could): still refused.
    claims = pyjwt.decode(svid, options={"verify_signature": False})
    kid = pyjwt.get_unverified_header(svid)["kid"]
    key = ca._jwt_keys[kid]
    with_iss = pyjwt.encode(
        {**claims, "iss": "https://example.org."}, key, algorithm="ES256", headers={"kid": kid}
    )
    assert verifier.verify(with_iss).reason == tokens.UNKNOWN_ISSUER


def test_a_cached_token_is_dropped_once_its_key_is_withdrawn(
    issuer: TestIssuer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the cached token keeps arriving: the keys are still reread as they age.
    path = issuer.write_jwks(tmp_path / "jwks.json")
    verifier = _verifier(
        issuer,
        {"jwks_cache_seconds": 1},
        source={"jwks_file": str(path)},
        jwks_min_refresh_seconds=0,
    )
    hot = issuer.token({"sub": "hot"})
    assert verifier.verify(hot).verified
    first = issuer.kid
    issuer.add_key()
    _write_keys(path, issuer, {issuer.kid})  # the first key withdrawn
    time.sleep(1.1)
    assert verifier.verify(hot).reason == tokens.UNKNOWN_KEY
    # A reload that lands while a token is being verified: the token is cached under the
    # keys it was found in, so its next use verifies it again.
    _write_keys(path, issuer, {first, issuer.kid})
    verifier.load_keys()
    racing = issuer.token({"sub": "racing"}, kid=first)
    decode = pyjwt.decode

    def reload_midway(token: str, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("options", {}).get("verify_signature") is not False:
            _write_keys(path, issuer, {issuer.kid})
            verifier.load_keys()
        return decode(token, *args, **kwargs)

    monkeypatch.setattr(pyjwt, "decode", reload_midway)
    assert verifier.verify(racing).verified  # verified before the reload took effect
    monkeypatch.setattr(pyjwt, "decode", decode)
    assert verifier.verify(racing).reason == tokens.UNKNOWN_KEY


def test_an_issuer_names_either_an_issuer_or_a_trust_domain() -> None:
    base = {"audiences": ["a"], "jwks_file": "/k.json"}
    with pytest.raises(ValueError, match="exactly one of issuer and trust_domain"):
        JwtSettings(issuers=[{**base, "issuer": "https://i", "trust_domain": "td"}])
    with pytest.raises(ValueError, match="exactly one of issuer and trust_domain"):
        JwtSettings(issuers=[base])
    with pytest.raises(ValueError, match="trust_domain"):
        JwtSettings(issuers=[{**base, "trust_domain": "Not A Domain"}])


def test_an_expiry_past_any_float_is_verified_and_cached(
    issuer: TestIssuer, file_verifier: JwtVerifier
) -> None:
    # float() of a 400-digit exp overflows: every request with the token was denied as an
    # internal error.
    token = issuer.token({"sub": "alice", "exp": 10**400})
    for _ in range(2):  # verified, then from the cache
        result = file_verifier.verify(token)
        assert result.verified and result.claims is not None
        assert result.claims["sub"] == "alice"
