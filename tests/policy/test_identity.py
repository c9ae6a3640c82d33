from __future__ import annotations

import pytest

from meshward.policy.identity import SpiffeIdError, parse_spiffe_id, peer_identity


def test_workload_ids_expose_namespace_and_service_account():
    ident = parse_spiffe_id("spiffe://cluster.local/ns/web/sa/front-end")
    assert (ident.trust_domain, ident.namespace, ident.service_account) == (
        "cluster.local",
        "web",
        "front-end",
    )
    assert ident.namespace_key == "cluster.local/web"
    other = parse_spiffe_id("spiffe://example.org/billing/worker")
    assert other.namespace is None and other.path == "/billing/worker"
    assert other.namespace_key == ""
    # Only the exact workload shape has a namespace: a longer path is another identity.
    longer = parse_spiffe_id("spiffe://cluster.local/ns/web/sa/front-end/extra")
    assert longer.namespace is None and longer.namespace_key == ""


@pytest.mark.parametrize(
    "bad",
    [
        "http://td/x",
        "SPIFFE://td/x",
        "spiffe://",
        "spiffe://TD/x",
        "spiffe://td/x/",
        "spiffe://td//x",
        "spiffe://td/./x",
        "spiffe://td/x%41",
        "spiffe://td/x#f",
        "spiffe://td/x?q",
        "spiffe://u@td/x",
        "spiffe://td:1/x",
        "spiffe://td/" + "a" * 2048,
        "spiffe://" + "a" * 256 + "/x",
        "spiffe://td/a b",
    ],
)
def test_spec_violations_are_refused(bad):
    with pytest.raises(SpiffeIdError):
        parse_spiffe_id(bad)
    assert peer_identity(bad) is None


def test_absent_peer_is_no_identity():
    assert peer_identity(None) is None and peer_identity("") is None
