"""The trust domain's CA over time: staged rotation, retirement, schedule, upstream CAs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509

from meshward.ca.authority import create_root
from meshward.ca.errors import AuthorityError, StoreError
from meshward.ca.manager import MAX_JWT_TTL, CaSettings, Status, TrustDomainCa
from meshward.ca.spiffe_id import SpiffeId
from meshward.ca.store import FileStore

WEB = SpiffeId.parse("spiffe://example.org/web")
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "ca")


@pytest.fixture
def ca(store: FileStore) -> TrustDomainCa:
    return TrustDomainCa.init(store, "example.org", now=NOW)


def _status(ca: TrustDomainCa) -> dict[str, str]:
    return {g.name: g.status for g in ca.generations()}


def test_init_refuses_to_overwrite_and_open_needs_init(tmp_path: Path, ca: TrustDomainCa) -> None:
    with pytest.raises(StoreError, match="already"):
        TrustDomainCa.init(ca.store, "example.org")
    with pytest.raises(StoreError, match="init"):
        TrustDomainCa.open(FileStore(tmp_path / "empty"))


def test_state_survives_reopening(ca: TrustDomainCa) -> None:
    svid = ca.issue_x509(WEB, now=NOW)
    again = TrustDomainCa.open(ca.store)
    assert again.signer.certificate == ca.signer.certificate
    assert again.state.issued[str(WEB)].serial == format(svid.leaf.serial_number, "x")
    assert again.bundle().to_jwks() == ca.bundle().to_jwks()


def test_stages_in_order(ca: TrustDomainCa) -> None:
    with pytest.raises(AuthorityError, match="nothing is prepared"):
        ca.activate()
    name = ca.prepare(now=NOW)
    with pytest.raises(AuthorityError, match="activate it first"):
        ca.prepare(now=NOW)
    assert _status(ca)[name] == "prepared"
    assert ca.activate(now=NOW) == name
    assert _status(ca) == {"root-1": "active", "intermediate-2": "retiring", name: "active"}


def test_retire_waits_for_the_last_certificate_it_signed(ca: TrustDomainCa) -> None:
    svid = ca.issue_x509(WEB, ttl=dt.timedelta(hours=3), now=NOW)
    ca.prepare(now=NOW)
    ca.activate(now=NOW)
    assert ca.retire(now=NOW + MAX_JWT_TTL + dt.timedelta(minutes=1)) == []
    assert ca.retire(now=svid.not_after - dt.timedelta(seconds=1)) == []
    assert ca.retire(now=svid.not_after) == ["intermediate-2"]
    assert "intermediate-2" not in ca.store.key_names()
    assert "intermediate-2.jwt" not in ca.store.key_names()


def test_retire_waits_for_jwt_svids_of_the_old_key(ca: TrustDomainCa) -> None:
    ca.prepare(now=NOW)
    ca.activate(now=NOW)
    assert ca.retire(now=NOW + MAX_JWT_TTL - dt.timedelta(seconds=1)) == []
    assert ca.retire(now=NOW + MAX_JWT_TTL) == ["intermediate-2"]


def test_root_rotation_keeps_both_roots_until_the_old_one_signed_nothing_alive(
    ca: TrustDomainCa,
) -> None:
    old_root = ca.bundle().x509_authorities[0]
    ca.issue_x509(WEB, now=NOW)
    ca.prepare(root=True, now=NOW)
    assert len(ca.bundle().x509_authorities) == 2
    ca.activate(now=NOW)
    assert _status(ca)["root-1"] == "retiring"
    new_svid = ca.issue_x509(WEB, now=NOW)
    assert new_svid.chain[-1].issuer != old_root.subject
    later = NOW + dt.timedelta(hours=2)
    assert sorted(ca.retire(now=later)) == ["intermediate-2", "root-1"]
    assert old_root not in ca.bundle().x509_authorities
    assert len(ca.bundle().x509_authorities) == 1


def test_maintain_follows_the_schedule(store: FileStore) -> None:
    settings = CaSettings(
        intermediate_ttl=dt.timedelta(days=10), activation_delay=dt.timedelta(hours=1)
    )
    ca = TrustDomainCa.init(store, "example.org", settings, now=NOW)
    assert ca.maintain(now=NOW + dt.timedelta(days=4)) == []
    day5 = NOW + dt.timedelta(days=5)
    assert ca.maintain(now=day5) == ["prepared intermediate-3"]
    assert ca.maintain(now=day5 + dt.timedelta(minutes=30)) == []
    assert ca.maintain(now=day5 + dt.timedelta(hours=1)) == ["activated intermediate-3"]
    assert ca.maintain(now=day5 + dt.timedelta(hours=2)) == ["retired intermediate-2"]
    # half the root's life: a new root and an intermediate under it
    steps = ca.maintain(now=NOW + dt.timedelta(days=183))
    assert steps[-1] == "prepared intermediate-5 under a new root"


def test_open_removes_keys_no_state_refers_to(ca: TrustDomainCa) -> None:
    ca.store.write_key("intermediate-99", b"orphan of a crashed prepare")
    TrustDomainCa.open(ca.store)
    assert "intermediate-99" not in ca.store.key_names()
    assert {"root-1", "intermediate-2", "intermediate-2.jwt"} <= set(ca.store.key_names())


def test_a_second_handle_sees_changes_made_through_the_first(ca: TrustDomainCa) -> None:
    other = TrustDomainCa.open(ca.store)
    ca.prepare(now=NOW)
    ca.activate(now=NOW)
    svid = other.issue_x509(WEB, now=NOW)  # fresh state is loaded under the lock
    assert svid.chain[1] == ca.signer.certificate


def test_upstream_ca_signs_our_intermediates(store: FileStore, openssl) -> None:  # type: ignore[no-untyped-def]
    upstream_root = create_root("example.org", ttl=dt.timedelta(days=30))
    too_narrow = upstream_root.issue_intermediate(ttl=dt.timedelta(days=20))
    with pytest.raises(AuthorityError, match="pathLenConstraint"):
        TrustDomainCa.init(
            store, "example.org", upstream=too_narrow, upstream_bundle=[upstream_root.certificate]
        )
    upstream = upstream_root.issue_intermediate(ttl=dt.timedelta(days=20), path_length=1)
    ca = TrustDomainCa.init(
        store, "example.org", upstream=upstream, upstream_bundle=[upstream_root.certificate]
    )
    assert ca.bundle().x509_authorities == (upstream_root.certificate,)
    in_bundle = {g.name: g.in_bundle for g in ca.generations()}
    assert in_bundle == {"root-1": False, "intermediate-2": True}
    svid = ca.issue_x509(WEB)
    assert [c.issuer for c in svid.chain[1:]] == [
        upstream.certificate.subject,
        upstream_root.certificate.subject,
    ]
    openssl(svid.chain, [upstream_root.certificate], "sslclient")
    with pytest.raises(AuthorityError, match="upstream"):
        ca.prepare(root=True)
    assert TrustDomainCa.open(store).bundle().x509_authorities == (upstream_root.certificate,)


def test_retired_generations_leave_the_state_consistent(ca: TrustDomainCa) -> None:
    ca.prepare(now=NOW)
    ca.activate(now=NOW)
    ca.retire(now=NOW + dt.timedelta(hours=2))
    statuses = [a.status for a in ca.state.authorities]
    assert statuses.count(Status.ACTIVE) == 2  # one root, one intermediate
    assert isinstance(ca.signer.certificate, x509.Certificate)


class CountingStore(FileStore):
    """A real filesystem store that counts how often the state document is read."""

    reads = 0

    def read_state(self) -> bytes | None:
        self.reads += 1
        return super().read_state()


def test_refresh_reads_the_state_only_when_it_changed(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "ca")
    ca = TrustDomainCa.init(store, "example.org")
    before = store.reads
    ca.refresh()
    ca.refresh()
    assert store.reads == before
    TrustDomainCa.open(CountingStore(tmp_path / "ca")).prepare()
    ca.refresh()
    assert store.reads == before + 1
    assert ca.bundle().sequence == 2


def test_a_step_whose_state_cannot_be_written_is_undone(
    ca: TrustDomainCa, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The new intermediate's keys are written, then the state is not (disk full): the
    # CA must not go on as if it had been, or it would activate an authority no file
    # names and whose keys the next open() deletes as orphans.
    before = _status(ca)
    write_state = ca.store.write_state

    def full(data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ca.store, "write_state", full)
    with pytest.raises(OSError):
        ca.prepare(now=NOW)
    assert _status(ca) == before
    monkeypatch.setattr(ca.store, "write_state", write_state)
    TrustDomainCa.open(ca.store)  # another process tidies the orphan keys meanwhile
    name = ca.prepare(now=NOW)
    assert ca.activate(now=NOW) == name
    assert ca.issue_x509(WEB, now=NOW).chain[1] == ca.signer.certificate
    assert _status(TrustDomainCa.open(ca.store)) == _status(ca)


@pytest.mark.parametrize(
    "settings",
    [
        {"rotate_at": 1.5},
        {"rotate_at": 0},
        {"rotate_at": float("nan")},
        {"intermediate_ttl": dt.timedelta(0)},
        {"intermediate_ttl": dt.timedelta(days=400)},
        {"intermediate_ttl": dt.timedelta(minutes=10), "activation_delay": dt.timedelta(hours=1)},
    ],
)
def test_settings_that_would_stall_or_break_rotation_are_refused(
    store: FileStore, settings: dict
) -> None:
    with pytest.raises(ValueError):
        TrustDomainCa.init(store, "example.org", CaSettings(**settings), now=NOW)
    assert store.read_state() is None


def test_a_stored_ca_opens_whatever_its_settings(store: FileStore) -> None:
    # Settings refused at creation today may have been accepted when a CA was made: it
    # must keep opening (and rotating as configured).
    ca = TrustDomainCa.init(store, "example.org", now=NOW)
    ca.state.settings = CaSettings(intermediate_ttl=dt.timedelta(hours=1), rotate_at=0.9)
    ca._commit()
    assert TrustDomainCa.open(store).state.settings.rotate_at == 0.9
