"""Semantics of a decision. Every case runs through the decision tables and the
reference interpreter (see conftest.PolicyUnderTest), which must agree."""

from __future__ import annotations

TD = 'trust_domain "td"\n'
WEB = "spiffe://td/ns/web/sa/web"
OPS = "spiffe://td/ns/ops/sa/admin"


def test_default_deny_and_unknown_destinations(policy):
    p = policy(TD + "service s { allow GET /a from any }")
    assert not p.decide("s", path="/b").allowed
    d = p.decide("nowhere", path="/a")
    assert not d.allowed and "no policy for destination nowhere" in d.reason


def test_any_matching_deny_wins_and_names_every_deciding_rule(policy):
    p = policy(
        TD
        + """
        service s {
          @id("allow-all") allow * from any
          @id("deny-a") deny GET /a/{**} from any
          @id("deny-web") deny * from namespace "web"
        }
        """
    )
    d = p.decide("s", path="/a/x", principal=WEB)
    assert not d.allowed and d.rule_ids == ("deny-a", "deny-web")
    assert d.reason == "denied by rule deny-a"
    assert p.decide("s", path="/b", principal=OPS).rule_ids == ("allow-all",)


def test_audit_rules_and_audit_services_never_decide(policy):
    p = policy(
        TD
        + """
        service s {
          @id("allow-web") allow GET /a from namespace "web"
          @id("dry-deny") audit deny GET /a from any
          @id("dry-allow") audit allow POST /a from any
        }
        audit service s { @id("svc-dry") deny * from any }
        """
    )
    d = p.decide("s", path="/a", principal=WEB)
    assert d.allowed and d.rule_ids == ("allow-web",)
    assert [(a.rule_id, a.effect) for a in d.audit] == [("dry-deny", "deny"), ("svc-dry", "deny")]
    d = p.decide("s", "POST", "/a", principal=WEB)
    assert not d.allowed and ("dry-allow", "allow") in [(a.rule_id, a.effect) for a in d.audit]


def test_a_port_bound_default_stays_on_its_port_beside_an_audit_service(policy):
    # The audit block creates a policy for every port of `pay`; the default written for
    # port 8080 must not reach it, or a dry run would open every other port.
    p = policy(
        "service pay:8080 { default allow\n deny * /admin/{**} }",
        "audit service pay { deny * /internal/{**} }",
    )
    assert p.decide("pay", path="/x", port=8080).allowed
    assert not p.decide("pay", path="/admin/x", port=8080).allowed
    for port in (9999, None):
        d = p.decide("pay", path="/admin/x", port=port)
        assert not d.allowed and d.rule_ids == ()
    # A default written for every port still holds on a port an audit block names.
    p = policy("service pay { default allow }", "audit service pay:8080 { deny * /x }")
    d = p.decide("pay", path="/x", port=8080)
    assert d.allowed and [a.rule_id for a in d.audit] == ["file1.policy:pay:8080:1"]


def test_a_request_without_a_port_is_denied_where_denies_depend_on_the_port(policy):
    p = policy(
        "service pay:8443 { deny * /admin/{**} }",
        "service pay { allow * from any }",
        "service api { default allow\n deny * /debug port 9000 }",
        "service web { default allow\n allow GET /a port 80\n audit deny * port 81 }",
    )
    for dest in ("pay", "api"):
        d = p.decide(dest, path="/x")
        assert not d.allowed and "port is unknown" in d.reason, dest
        assert p.decide(dest, path="/x", port=1234).allowed
    # Port-bound allows and dry runs alone do not make the port matter.
    assert p.decide("web", path="/x").allowed


def test_conditions_that_cannot_be_evaluated_fail_closed(policy):
    p = policy(
        TD
        + """
        service s {
          @id("allow-claim") allow GET /a from any when jwt.role == "admin"
          @id("deny-unless") deny * /b unless jwt.tier == "gold"
          allow * /b from any
          @id("deny-type") deny * /c when jwt.n == 1
          allow * /c from any
        }
        """
    )
    d = p.decide("s", path="/a")
    assert not d.allowed and d.errors[0].message == "jwt.role is missing"
    d = p.decide("s", path="/a", jwt={"role": ["admin"]})
    assert not d.allowed and "list" in d.errors[0].message
    assert p.decide("s", path="/a", jwt={"role": "admin"}).allowed
    d = p.decide("s", path="/b", jwt={})
    assert not d.allowed and d.rule_ids == ("deny-unless",) and d.errors
    assert p.decide("s", path="/b", jwt={"tier": "gold"}).allowed
    d = p.decide("s", path="/c", jwt={"n": "1"})
    assert not d.allowed and d.rule_ids == ("deny-type",)
    assert p.decide("s", path="/c", jwt={"n": 2}).allowed


def test_a_deny_whose_condition_cannot_be_evaluated_matches(policy):
    p = policy(
        TD
        + """
        service s {
          @id("deny-when") deny * /w when jwt.level == 2
          @id("deny-not") deny * /n when not (jwt.level == 2)
          @id("z-allow") allow * /e when jwt.a == 1
          @id("a-allow") allow * /e when jwt.b == 1
          allow * from any
        }
        """
    )
    for path, rule in (("/w", "deny-when"), ("/n", "deny-not")):
        d = p.decide("s", path=path, jwt={})
        assert not d.allowed and d.rule_ids == (rule,)
        assert [(e.rule_id, e.message) for e in d.errors] == [(rule, "jwt.level is missing")]
    assert p.decide("s", path="/n", jwt={"level": 2}).allowed
    assert not p.decide("s", path="/n", jwt={"level": 3}).allowed
    # Errors are reported by rule id, whatever the order of the rules.
    d = p.decide("s", path="/e", jwt={})
    assert [e.rule_id for e in d.errors] == ["a-allow", "z-allow"]


def test_values_of_another_kind_and_null_claims(policy):
    p = policy(
        TD
        + """
        service s {
          @id("level") allow * /l from any when jwt.level == 1
          @id("role") allow * /r from any when has jwt.role
          @id("glob") allow * /g from any when jwt.sub matches "svc-*"
        }
        """
    )
    d = p.decide("s", path="/l", jwt={"level": True})  # a bool is no number
    assert not d.allowed and "bool" in d.errors[0].message
    assert p.decide("s", path="/l", jwt={"level": 1.0}).allowed
    assert not p.decide("s", path="/r", jwt={"role": None}).allowed  # null: absent
    assert p.decide("s", path="/r", jwt={"role": ""}).allowed
    assert p.decide("s", path="/g", jwt={"sub": "svc-a"}).allowed
    assert not p.decide("s", path="/g", jwt={"sub": "evil-svc-a"}).allowed  # anchored


def test_sources(policy):
    p = policy(
        TD
        + """
        principals web = [sa "web/web"]
        service s {
          @id("id") allow GET /id from web
          @id("ns") allow GET /ns from namespace "ops"
          @id("td") allow GET /td from trust_domain "other.org"
          @id("authn") allow GET /authn from authenticated
          @id("unauthn") allow GET /unauthn from unauthenticated
          @id("cidr") allow GET /cidr from ip "10.1.0.0/16"
        }
        """
    )
    assert p.decide("s", path="/id", principal=WEB).allowed
    assert not p.decide("s", path="/id", principal="spiffe://other/ns/web/sa/web").allowed
    assert p.decide("s", path="/ns", principal=OPS).allowed
    assert not p.decide("s", path="/ns", principal="spiffe://x.org/ns/ops/sa/admin").allowed
    assert p.decide("s", path="/td", principal="spiffe://other.org/anything").allowed
    assert p.decide("s", path="/authn", principal=WEB).allowed
    assert not p.decide("s", path="/authn").allowed
    assert p.decide("s", path="/unauthn").allowed
    assert not p.decide("s", path="/unauthn", principal=WEB).allowed
    # An invalid peer ID is no identity at all.
    assert p.decide("s", path="/unauthn", principal="spiffe://BAD/x").allowed
    assert p.decide("s", path="/cidr", source_ip="10.1.2.3").allowed
    assert not p.decide("s", path="/cidr", source_ip="10.2.0.1").allowed
    assert not p.decide("s", path="/cidr", source_ip="not-an-ip").allowed


def test_operations_methods_hosts_ports(policy):
    p = policy(
        TD
        + """
        service s {
          allow GET, HEAD /r/{*} host "api.example.com", "*.svc.local" port 8080 from any
        }
        service s:9090 { allow POST /only-9090 from any }
        """
    )
    ok = {"host": "API.example.com:8080", "port": 8080}
    assert p.decide("s", "HEAD", "/r/1", **ok).allowed
    assert not p.decide("s", "POST", "/r/1", **ok).allowed
    assert p.decide("s", "GET", "/r/1", host="a.svc.local", port=8080).allowed
    assert not p.decide("s", "GET", "/r/1", host="svc.local", port=8080).allowed
    # A suffix pattern matches whole labels only.
    for host in ("evilsvc.local", ".svc.local"):
        assert not p.decide("s", "GET", "/r/1", host=host, port=8080).allowed
    assert not p.decide("s", "GET", "/r/1", host="api.example.com", port=8081).allowed
    assert not p.decide("s", "GET", "/r/1", port=8080).allowed
    assert p.decide("s", "POST", "/only-9090", port=9090).allowed
    assert not p.decide("s", "POST", "/only-9090", port=8080).allowed


def test_paths_are_canonical_and_queries_never_match(policy):
    p = policy(
        TD + "service s { allow GET /public/{**} from any\n deny * /public/secret from any }"
    )
    assert p.decide("s", path="/public/a?/secret").allowed
    assert not p.decide("s", path="/public/./x/../secret").allowed
    assert not p.decide("s", path="/public//secret").allowed
    assert not p.decide("s", path="/public/%73ecret").allowed
    d = p.decide("s", path="/public/a%2Fb")
    assert not d.allowed and d.reason == "denied: ambiguous path (encoded / (%2F))"


def test_condition_operators(policy):
    p = policy(
        TD
        + """
        service s {
          allow GET /eq when request.headers["X-Env"] == "prod"
          allow GET /ne when jwt.sub != "mallory"
          allow GET /in when source.namespace in ["web", "ops"]
          allow GET /contains when jwt.groups contains "admins"
          allow GET /scope when jwt.scope contains "read"
          allow GET /glob when request.host matches "*.example.com"
          allow GET /within when source.ip within ["192.0.2.0/24", "2001:db8::/32"]
          allow GET /nested when jwt.realm.access.level == 3
          allow GET /has when has jwt.email and not has jwt.suspended
          allow GET /or when jwt.a == true or jwt.b == true
          allow GET /sni when connection.sni == "s.example" and destination.port == 443
        }
        """
    )
    assert p.decide("s", path="/eq", headers={"x-env": "prod"}).allowed
    assert not p.decide("s", path="/ne", jwt={"sub": "mallory"}).allowed
    assert p.decide("s", path="/ne", jwt={"sub": "alice"}).allowed
    assert p.decide("s", path="/in", principal=OPS).allowed
    assert p.decide("s", path="/contains", jwt={"groups": ["dev", "admins"]}).allowed
    assert not p.decide("s", path="/contains", jwt={"groups": ["administrators"]}).allowed
    assert p.decide("s", path="/scope", jwt={"scope": "write read"}).allowed
    assert not p.decide("s", path="/scope", jwt={"scope": "reader"}).allowed
    assert p.decide("s", path="/glob", host="a.example.com").allowed
    assert not p.decide("s", path="/glob", host="example.com.evil").allowed
    assert p.decide("s", path="/within", source_ip="2001:db8::1").allowed
    assert not p.decide("s", path="/within", source_ip="198.51.100.1").allowed
    assert p.decide("s", path="/nested", jwt={"realm": {"access": {"level": 3}}}).allowed
    assert not p.decide("s", path="/nested", jwt={"realm": "flat"}).allowed
    assert p.decide("s", path="/has", jwt={"email": "a@b"}).allowed
    assert not p.decide("s", path="/has", jwt={"email": "a@b", "suspended": True}).allowed
    # Left to right with short-circuit: a true `a` never looks at `b`; a missing `a` is
    # an error before `b` is reached, so the allow fails closed.
    assert p.decide("s", path="/or", jwt={"a": True}).allowed
    d = p.decide("s", path="/or", jwt={"b": True})
    assert not d.allowed and d.errors[0].message == "jwt.a is missing"
    assert p.decide("s", path="/sni", sni="s.example", port=443).allowed


def test_ip_sources_see_mapped_addresses_and_fail_closed_on_bad_ones(policy):
    p = policy(
        TD
        + """
        service s {
          default allow
          @id("no-lan") deny * /d from ip "10.0.0.0/8"
          @id("lan-only") allow GET /a from ip "10.0.0.0/8"
          @id("lan-cond") deny * /c when source.ip within ["10.0.0.0/8"]
        }
        """
    )
    # Dual-stack listeners report IPv4 peers as IPv4-mapped IPv6 addresses.
    for mapped in ("::ffff:10.1.2.3", "::FFFF:a01:203"):
        assert p.decide("s", path="/d", source_ip=mapped).rule_ids == ("no-lan",)
        assert p.decide("s", path="/c", source_ip=mapped).rule_ids == ("lan-cond",)
    # A source IP that is not an address: the deny matches, the allow fails.
    for bad in ("10.1.2.3:443", "10.1.2.3%eth0", " 10.1.2.3", "not-an-ip"):
        assert p.decide("s", path="/d", source_ip=bad).rule_ids == ("no-lan",), bad
        assert p.decide("s", path="/a", source_ip=bad).rule_ids == ()
        d = p.decide("s", path="/c", source_ip=bad)
        assert d.rule_ids == ("lan-cond",) and d.errors
    # No source IP at all matches no `ip` source.
    assert p.decide("s", path="/d").allowed


def test_source_ip_comparisons_see_one_spelling_of_an_address(policy):
    p = policy(
        TD
        + """
        service s {
          default allow
          @id("eq") deny * /eq when source.ip == "10.0.0.5"
          @id("in") deny * /in when source.ip in ["2001:0DB8:0:0::1", "10.0.0.6"]
          @id("mapped") deny * /m when source.ip == "::ffff:10.0.0.7"
        }
        """
    )
    assert p.decide("s", path="/eq", source_ip="::ffff:10.0.0.5").rule_ids == ("eq",)
    assert p.decide("s", path="/in", source_ip="2001:db8::1").rule_ids == ("in",)
    assert p.decide("s", path="/in", source_ip="::ffff:a00:6").rule_ids == ("in",)
    assert p.decide("s", path="/m", source_ip="10.0.0.7").rule_ids == ("mapped",)
    assert p.decide("s", path="/eq", source_ip="10.0.0.50").allowed


def test_in_and_contains_on_a_value_of_another_kind_are_type_errors(policy):
    p = policy(
        TD
        + """
        service s {
          default allow
          @id("in") deny * /in when jwt.role in ["admin"]
          @id("in-num") deny * /in-num when jwt.level in [1, 2]
          @id("has-3") deny * /contains when jwt.ids contains 3
          @id("word") deny * /word when jwt.scope contains "evil"
        }
        """
    )
    cases = [
        ("/in", {"role": 1}, "jwt.role is int, not string"),
        ("/in", {"role": ["admin"]}, "jwt.role is list, not string"),
        ("/in-num", {"level": "1"}, "jwt.level is str, not number"),
        ("/contains", {"ids": "3"}, "jwt.ids is str, not a list"),
        ("/contains", {"ids": ["3"]}, "jwt.ids holds no number values"),
        ("/word", {"scope": [["evil"]]}, "jwt.scope holds no string values"),
    ]
    for path, claims, error in cases:
        d = p.decide("s", path=path, jwt=claims)
        assert not d.allowed and [e.message for e in d.errors] == [error], (path, claims)
    # Values of the right kind decide as before; an empty list simply holds nothing.
    assert p.decide("s", path="/in", jwt={"role": "reader"}).allowed
    assert not p.decide("s", path="/in-num", jwt={"level": 2.0}).allowed
    assert p.decide("s", path="/contains", jwt={"ids": [1, "x", 2]}).allowed
    assert not p.decide("s", path="/contains", jwt={"ids": [3]}).allowed
    assert p.decide("s", path="/contains", jwt={"ids": []}).allowed
    assert p.decide("s", path="/word", jwt={"scope": "good fine"}).allowed


def test_a_trailing_dot_on_the_host_is_the_same_host(policy):
    p = policy(
        TD
        + """
        service s {
          default allow
          @id("admin-host") deny * host "admin.local"
          @id("cond") deny * /c when request.host == "evil.com"
        }
        """
    )
    for host in ("admin.local.", "ADMIN.local.:8443"):
        assert p.decide("s", host=host).rule_ids == ("admin-host",)
    assert p.decide("s", path="/c", host="evil.com.").rule_ids == ("cond",)
    assert p.decide("s", host="admin.local..").allowed  # one dot only: this is not a name
    # A host written in a condition is compared as the request's is.
    p = policy('service s { default allow\n @id("c") deny * when request.host in ["Evil.COM."] }')
    assert p.decide("s", host="evil.com:8443").rule_ids == ("c",)


def test_default_allow_is_per_service(policy):
    p = policy(TD + "service open { default allow\n deny * /x from any }\nservice closed { }")
    assert p.decide("open", path="/y").allowed
    assert not p.decide("open", path="/x").allowed
    assert not p.decide("closed", path="/y").allowed


def test_internal_errors_fail_closed(policy):
    from meshward.policy import Request, evaluate

    class Broken(str):
        def __hash__(self) -> int:  # fails where the tables look the method up
            raise RuntimeError("broken")

    p = policy(TD + "service s { allow * from any }")
    d = evaluate(p.compiled, Request("s", Broken("GET"), "/"))
    assert not d.allowed and d.reason == "denied: internal error (RuntimeError)"


def test_explain_names_the_callers_ip_when_a_rule_asks_for_one():
    from meshward.policy import Request, explain, load_texts

    loaded = load_texts({"a.policy": 'service s { @id("lan") allow GET /a from ip "10.0.0.0/8" }'})
    for ip, who in (
        ("192.0.2.1", "unauthenticated, at 192.0.2.1"),
        (None, "unauthenticated, at no known IP"),
    ):
        (trace,) = explain(loaded.policy, Request("s", "GET", "/a", source_ip=ip)).traces
        assert trace.reasons == (f'caller {who} is not ip "10.0.0.0/8"',)


def test_a_network_written_ipv4_mapped_is_its_ipv4_network(policy):
    # Mapped addresses are decided as IPv4: written as IPv6, the network matched nothing.
    p = policy(
        TD
        + """
        service s {
          allow * from any
          @id("lan") deny GET /a from ip "::ffff:10.0.0.0/104"
          @id("lan-cond") deny GET /b when source.ip within ["::ffff:10.0.0.0/104"]
        }
        """
    )
    for ip in ("10.0.0.5", "::ffff:10.0.0.5"):
        assert p.decide("s", path="/a", source_ip=ip).rule_ids == ("lan",)
        assert p.decide("s", path="/b", source_ip=ip).rule_ids == ("lan-cond",)
    assert p.decide("s", path="/a", source_ip="192.0.2.1").allowed
    rule = next(r for r in p.loaded.policy.rules() if r.rule_id == "lan")
    assert [s.value for s in rule.sources] == ["10.0.0.0/8"]
