"""A trust domain's CA over time: generations of roots and intermediates, staged rotation,
the published bundle, and bookkeeping of what each authority signed.

Every change is made crash-safe by ordering: new keys and certificates are written before
the state that refers to them, and an issuance is recorded in the state before the
certificate leaves this process. A crash therefore leaves, at worst, unreferenced files
that :meth:`TrustDomainCa.open` removes.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from functools import update_wrapper
from typing import Any, Concatenate, ParamSpec, TypeVar

from cryptography import x509

from .authority import (
    Authority,
    chain_pem,
    create_root,
    load_authority,
    load_pem_certificates,
    utcnow,
)
from .bundle import DEFAULT_REFRESH_HINT, TrustBundle
from .errors import AuthorityError, StoreError
from .jwt_svid import DEFAULT_JWT_TTL, issue_jwt_svid
from .keys import (
    KeyAlgorithm,
    PrivateKey,
    PublicKey,
    generate_private_key,
    load_private_key_pem,
    private_key_pem,
    public_key_id,
)
from .spiffe_id import SpiffeId, validate_trust_domain
from .store import Store
from .x509_svid import DEFAULT_SVID_TTL, X509Svid, issue_x509_svid, issue_x509_svid_with_key

STATE_VERSION = 1
#: JWT-SVIDs are short-lived by design; capping them lets a retired key leave the bundle.
MAX_JWT_TTL = dt.timedelta(hours=1)


class Status(StrEnum):
    """Lifecycle stage of a CA generation."""

    PREPARED = "prepared"  # published in the bundle, signs nothing yet
    ACTIVE = "active"  # signs
    RETIRING = "retiring"  # signs nothing; stays published until what it signed expired
    RETIRED = "retired"  # out of the bundle, key deleted


@dataclass(frozen=True)
class CaSettings:
    """How this CA creates and rotates its authorities."""

    key_algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256
    root_ttl: dt.timedelta = dt.timedelta(days=365)
    intermediate_ttl: dt.timedelta = dt.timedelta(days=30)
    name_constraints: bool = False
    #: an authority is replaced once this fraction of its lifetime has passed
    rotate_at: float = 0.5
    #: a prepared authority is activated this long after it was published
    activation_delay: dt.timedelta = dt.timedelta(minutes=10)
    refresh_hint: int = DEFAULT_REFRESH_HINT

    def check(self, *, upstream: bool = False) -> None:
        """Refuse settings that would make rotation stall (never due), spin (always due)
        or let an authority expire before its successor signs; raises ValueError. Run when
        a CA is created, not when a stored one is read: a CA that exists keeps working.
        ``upstream``: the root is someone else's, so ``root_ttl`` does not apply."""
        if not 0 < self.rotate_at < 1:  # also refuses NaN
            raise ValueError(f"rotate_at must be between 0 and 1 (exclusive), not {self.rotate_at}")
        zero = dt.timedelta(0)
        if self.root_ttl <= zero or self.intermediate_ttl <= zero or self.activation_delay < zero:
            raise ValueError("lifetimes must be positive and the activation delay not negative")
        if not upstream and self.intermediate_ttl >= self.root_ttl:
            raise ValueError("an intermediate must live shorter than its root")
        if self.activation_delay >= self.intermediate_ttl * (1 - self.rotate_at):
            raise ValueError(
                "the activation delay must end before the intermediate expires: shorten it, "
                "or rotate earlier (rotate_at) or lengthen intermediate_ttl"
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "key_algorithm": self.key_algorithm.value,
            "root_ttl": self.root_ttl.total_seconds(),
            "intermediate_ttl": self.intermediate_ttl.total_seconds(),
            "name_constraints": self.name_constraints,
            "rotate_at": self.rotate_at,
            "activation_delay": self.activation_delay.total_seconds(),
            "refresh_hint": self.refresh_hint,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> CaSettings:
        return cls(
            KeyAlgorithm(doc["key_algorithm"]),
            dt.timedelta(seconds=doc["root_ttl"]),
            dt.timedelta(seconds=doc["intermediate_ttl"]),
            bool(doc["name_constraints"]),
            float(doc["rotate_at"]),
            dt.timedelta(seconds=doc["activation_delay"]),
            int(doc["refresh_hint"]),
        )


@dataclass(frozen=True)
class AuthorityRecord:
    """One CA certificate generation as the state file records it."""

    name: str
    role: str  # "root" or "intermediate"
    parent: str | None
    generation: int
    status: Status
    not_after: str
    created_at: str
    signed_until: str | None = None
    deactivated_at: str | None = None
    jwt_kid: str | None = None
    upstream: bool = False


@dataclass(frozen=True)
class IssuedRecord:
    """The latest certificate issued for one SPIFFE ID."""

    serial: str
    issuer: str
    not_after: str


@dataclass
class CaState:
    """The persistent state document of a trust domain's CA."""

    trust_domain: str
    settings: CaSettings
    generation: int = 0
    bundle_sequence: int = 0
    authorities: list[AuthorityRecord] = field(default_factory=list)
    issued: dict[str, IssuedRecord] = field(default_factory=dict)
    upstream_bundle: bool = False

    def to_bytes(self) -> bytes:
        doc = {
            "version": STATE_VERSION,
            "trust_domain": self.trust_domain,
            "settings": self.settings.to_json(),
            "generation": self.generation,
            "bundle_sequence": self.bundle_sequence,
            "upstream_bundle": self.upstream_bundle,
            "authorities": [asdict(a) for a in self.authorities],
            "issued": {k: asdict(v) for k, v in sorted(self.issued.items())},
        }
        return json.dumps(doc, indent=1).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> CaState:
        try:
            doc = json.loads(data)
            if doc.get("version") != STATE_VERSION:
                raise StoreError(f"unsupported CA state version {doc.get('version')!r}")
            return cls(
                trust_domain=validate_trust_domain(doc["trust_domain"]),
                settings=CaSettings.from_json(doc["settings"]),
                generation=int(doc["generation"]),
                bundle_sequence=int(doc["bundle_sequence"]),
                authorities=[
                    AuthorityRecord(**{**a, "status": Status(a["status"])})
                    for a in doc["authorities"]
                ],
                issued={k: IssuedRecord(**v) for k, v in doc["issued"].items()},
                upstream_bundle=bool(doc.get("upstream_bundle", False)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"CA state is unreadable: {exc}") from None

    def find(self, name: str) -> AuthorityRecord:
        for record in self.authorities:
            if record.name == name:
                return record
        raise StoreError(f"CA state names no authority {name!r}")

    def with_status(self, role: str, *statuses: Status) -> list[AuthorityRecord]:
        return [a for a in self.authorities if a.role == role and a.status in statuses]


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat()


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def _kid(key: PublicKey) -> str:
    return public_key_id(key)[:32]


@dataclass(frozen=True)
class GenerationStatus:
    """What ``meshward ca status`` shows for one CA generation."""

    name: str
    role: str
    status: str
    not_after: str
    signed_until: str | None
    in_bundle: bool


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _transactional(
    method: Callable[Concatenate[TrustDomainCa, _P], _R],
) -> Callable[Concatenate[TrustDomainCa, _P], _R]:
    def run(self: TrustDomainCa, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self.locked():
            try:
                return method(self, *args, **kwargs)
            except BaseException:
                # A step that failed (its state could not be written, say) must not live
                # on in memory: the next step would build on a state no file holds.
                self._rollback()
                raise

    update_wrapper(run, method)
    return run


class TrustDomainCa:
    """The CA of one trust domain, persisted in a :class:`~meshward.ca.store.Store`.

    Verbs: :meth:`issue_x509` / :meth:`issue_x509_batch` / :meth:`issue_jwt` issue,
    :meth:`bundle` publishes, :meth:`prepare` / :meth:`activate` / :meth:`retire` rotate
    authorities in stages and :meth:`maintain` runs those stages on schedule.
    """

    def __init__(self, store: Store, state: CaState) -> None:
        self.store = store
        self.state = state
        self._state_bytes = state.to_bytes()
        self._stamp = store.state_stamp()
        self._mutex = threading.RLock()
        self._held = ExitStack()
        self._depth = 0
        self._authorities: dict[str, Authority] = {}
        self._jwt_keys: dict[str, PrivateKey] = {}
        self._upstream_anchors: tuple[x509.Certificate, ...] = ()
        self._load()

    # -- creating and opening -------------------------------------------------------------

    @classmethod
    def init(
        cls,
        store: Store,
        trust_domain: str,
        settings: CaSettings | None = None,
        *,
        upstream: Authority | None = None,
        upstream_bundle: Sequence[x509.Certificate] = (),
        now: dt.datetime | None = None,
    ) -> TrustDomainCa:
        """Create a new CA: a root (or an upstream CA given by the user) and an intermediate."""
        validate_trust_domain(trust_domain)
        (settings or CaSettings()).check(upstream=upstream is not None)
        with store.lock():
            if store.read_state() is not None:
                raise StoreError("this store already holds a CA; refusing to overwrite it")
            return cls._create(store, trust_domain, settings, upstream, upstream_bundle, now)

    @classmethod
    def _create(
        cls,
        store: Store,
        trust_domain: str,
        settings: CaSettings | None,
        upstream: Authority | None,
        upstream_bundle: Sequence[x509.Certificate],
        now: dt.datetime | None,
    ) -> TrustDomainCa:
        settings = settings or CaSettings()
        now = now or utcnow()
        state = CaState(trust_domain, settings)
        if upstream is None:
            root = create_root(
                trust_domain,
                ttl=settings.root_ttl,
                algorithm=settings.key_algorithm,
                name_constraints=settings.name_constraints,
                now=now,
            )
            root_record = _write_authority(store, state, root, "root", None, Status.ACTIVE, now)
        else:
            if upstream.trust_domain != trust_domain:
                raise AuthorityError("the upstream CA belongs to another trust domain")
            if not upstream_bundle and not upstream.is_self_signed:
                raise AuthorityError("an upstream intermediate needs the upstream root bundle")
            basic = upstream.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
            if basic.value.path_length == 0:
                raise AuthorityError(
                    "the upstream CA has pathLenConstraint 0: it cannot sign an intermediate",
                    code="path-length",
                )
            root_record = _write_authority(
                store, state, upstream, "root", None, Status.ACTIVE, now, upstream=True
            )
            if upstream_bundle:
                store.write_cert("upstream-bundle", chain_pem(upstream_bundle))
                state.upstream_bundle = True
        root_authority = _read_authority(store, root_record, trust_domain)
        _prepare_intermediate(store, state, root_authority, root_record, now)
        intermediate = state.authorities[-1]
        state.authorities[-1] = replace(intermediate, status=Status.ACTIVE)
        state.bundle_sequence = 1
        store.write_state(state.to_bytes())
        return cls(store, state)

    @classmethod
    def open(cls, store: Store) -> TrustDomainCa:
        """Open an existing CA, removing leftovers of an interrupted run.

        Under the store's lock: a key another process is about to commit is not an orphan.
        """
        with store.lock():
            data = store.read_state()
            if data is None:
                raise StoreError("no CA here yet: run `meshward ca init` first")
            state = CaState.from_bytes(data)
            store.cleanup()
            referenced = set()
            for record in state.authorities:
                if record.status is not Status.RETIRED:
                    referenced.add(record.name)
                    if record.jwt_kid:
                        referenced.add(f"{record.name}.jwt")
            # Keys of retired authorities, or of a step that crashed before its state was
            # written, are not part of any consistent state: delete them.
            for name in store.key_names():
                if name not in referenced:
                    store.delete_key(name)
            return cls(store, state)

    def refresh(self) -> None:
        """Pick up changes another process (such as the CLI) made to the stored state."""
        with self._mutex:
            stamp = self.store.state_stamp()
            if stamp is not None and stamp == self._stamp:
                return  # unchanged: no need to read and compare the document
            data = self.store.read_state()
            if data is None:
                raise StoreError("the CA state disappeared")
            self._stamp = stamp
            if data != self._state_bytes:
                self.state = CaState.from_bytes(data)
                self._state_bytes = data
                self._load()

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store's lock, on freshly read state (re-entrant).

        Every change runs this way, so a service and a CLI command changing the same CA
        never overwrite each other's work; a reader that needs the bundle and the signer to
        agree (the rotator) holds it too.
        """
        with self._mutex:
            if self._depth == 0:
                self._held.enter_context(self.store.lock())
                try:
                    self.refresh()
                except BaseException:
                    self._held.close()
                    raise
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._held.close()

    def _load(self) -> None:
        # Built aside and swapped in, so a reader in another thread never sees a partial view.
        authorities: dict[str, Authority] = {}
        jwt_keys: dict[str, PrivateKey] = {}
        for record in self.state.authorities:
            if record.status is Status.RETIRED:
                continue
            authorities[record.name] = _read_authority(self.store, record, self.state.trust_domain)
            if record.jwt_kid:
                jwt_keys[record.jwt_kid] = load_private_key_pem(
                    self.store.read_key(f"{record.name}.jwt")
                )
        if self.state.upstream_bundle:
            self._upstream_anchors = tuple(
                load_pem_certificates(self.store.read_cert("upstream-bundle"))
            )
        self._authorities, self._jwt_keys = authorities, jwt_keys

    def _commit(self) -> None:
        data = self.state.to_bytes()
        self.store.write_state(data)
        self._state_bytes = data
        self._stamp = self.store.state_stamp()

    def _rollback(self) -> None:
        """Back to the last state written (or read), and read the file again next time."""
        with self._mutex:
            if self.state.to_bytes() == self._state_bytes:
                return  # the step failed before changing anything (a refused issuance)
            self.state = CaState.from_bytes(self._state_bytes)
            self._stamp = None
            self._load()

    # -- reading --------------------------------------------------------------------------

    @property
    def trust_domain(self) -> str:
        """The trust domain this CA serves."""
        return self.state.trust_domain

    @property
    def signer(self) -> Authority:
        """The active intermediate, which signs every SVID."""
        return self._authorities[self._signer_record().name]

    def _signer_record(self) -> AuthorityRecord:
        (record,) = self.state.with_status("intermediate", Status.ACTIVE)
        return record

    def bundle(self) -> TrustBundle:
        """The trust bundle: every published root and every published JWT key."""
        if self.state.upstream_bundle:
            roots = self._upstream_anchors
        else:
            roots = tuple(
                self._authorities[r.name].certificate
                for r in self.state.authorities
                if r.role == "root" and r.status is not Status.RETIRED
            )
        jwt_keys = {kid: key.public_key() for kid, key in self._jwt_keys.items()}
        return TrustBundle(
            self.trust_domain,
            tuple(roots),
            jwt_keys,
            self.state.bundle_sequence,
            self.state.settings.refresh_hint,
        )

    def generations(self) -> list[GenerationStatus]:
        """Every CA generation, with its stage and whether the bundle carries it (a root's
        certificate, an intermediate's JWT key; an upstream CA's anchors stand in for it)."""
        return [
            GenerationStatus(
                r.name,
                r.role,
                r.status.value,
                r.not_after,
                r.signed_until,
                r.status is not Status.RETIRED
                and not (r.role == "root" and self.state.upstream_bundle),
            )
            for r in self.state.authorities
        ]

    # -- issuing --------------------------------------------------------------------------

    def issue_x509(
        self,
        spiffe_id: SpiffeId,
        public_key: PublicKey | None = None,
        *,
        ttl: dt.timedelta = DEFAULT_SVID_TTL,
        dns_names: Sequence[str] = (),
        now: dt.datetime | None = None,
    ) -> X509Svid:
        """Issue one X.509-SVID: for ``public_key``, or with a freshly generated key; extra
        DNS names (for a server such as the CA's own API) go next to the SPIFFE ID."""
        return self.issue_x509_batch(
            [(spiffe_id, public_key)], ttl=ttl, dns_names=dns_names, now=now
        )[0]

    @_transactional
    def issue_x509_batch(
        self,
        requests: Iterable[tuple[SpiffeId, PublicKey | None]],
        *,
        ttl: dt.timedelta = DEFAULT_SVID_TTL,
        dns_names: Sequence[str] = (),
        now: dt.datetime | None = None,
    ) -> list[X509Svid]:
        """Issue many X.509-SVIDs with one state write (how the rotator renews in bulk)."""
        now = now or utcnow()
        signer = self.signer
        algorithm = self.state.settings.key_algorithm
        svids = [
            issue_x509_svid_with_key(
                signer, spiffe_id, ttl=ttl, algorithm=algorithm, dns_names=dns_names, now=now
            )
            if public_key is None
            else issue_x509_svid(
                signer, spiffe_id, public_key, ttl=ttl, dns_names=dns_names, now=now
            )
            for spiffe_id, public_key in requests
        ]
        self._record_issued(svids)
        return svids

    def _record_issued(self, svids: Sequence[X509Svid]) -> None:
        if not svids:
            return
        record = self._signer_record()
        latest = max(s.not_after for s in svids)
        if record.signed_until is None or _time(record.signed_until) < latest:
            self._replace(replace(record, signed_until=_iso(latest)))
        for svid in svids:
            self.state.issued[str(svid.spiffe_id)] = IssuedRecord(
                format(svid.leaf.serial_number, "x"), record.name, _iso(svid.not_after)
            )
        self._commit()

    def issue_jwt(
        self,
        spiffe_id: SpiffeId,
        audience: Sequence[str],
        *,
        ttl: dt.timedelta = DEFAULT_JWT_TTL,
        now: dt.datetime | None = None,
    ) -> str:
        """Sign a JWT-SVID with the active generation's JWT key (lifetime at most 1 h)."""
        if ttl > MAX_JWT_TTL:
            raise AuthorityError(f"JWT-SVID lifetime is capped at {MAX_JWT_TTL}", code="ttl")
        if spiffe_id.trust_domain != self.trust_domain:
            raise AuthorityError(f"{spiffe_id} is outside trust domain {self.trust_domain}")
        self.refresh()  # never sign with a key another process has retired
        kid = self._signer_record().jwt_kid
        assert kid is not None
        return issue_jwt_svid(self._jwt_keys[kid], kid, spiffe_id, audience, ttl=ttl, now=now)

    # -- rotating -------------------------------------------------------------------------

    @_transactional
    def prepare(self, *, root: bool = False, now: dt.datetime | None = None) -> str:
        """Stage 1: create the next intermediate (under a new root if ``root``) and publish
        it in the bundle; it signs nothing until :meth:`activate`. Returns its name."""
        if self.state.with_status("intermediate", Status.PREPARED):
            raise AuthorityError("a prepared authority is waiting: activate it first", code="busy")
        now = now or utcnow()
        (parent_record,) = self.state.with_status("root", Status.ACTIVE)
        if root:
            if parent_record.upstream:
                raise AuthorityError(
                    "the root is an upstream CA: rotate it upstream and re-import", code="upstream"
                )
            new_root = create_root(
                self.trust_domain,
                ttl=self.state.settings.root_ttl,
                algorithm=self.state.settings.key_algorithm,
                name_constraints=self.state.settings.name_constraints,
                now=now,
            )
            parent_record = _write_authority(
                self.store, self.state, new_root, "root", None, Status.PREPARED, now
            )
        parent = _read_authority(self.store, parent_record, self.trust_domain)
        _prepare_intermediate(self.store, self.state, parent, parent_record, now)
        self.state.bundle_sequence += 1
        self._commit()
        self._load()
        return self.state.authorities[-1].name

    @_transactional
    def activate(self, *, now: dt.datetime | None = None) -> str:
        """Stage 2: the prepared intermediate starts signing; the previous one retires."""
        prepared = self.state.with_status("intermediate", Status.PREPARED)
        if not prepared:
            raise AuthorityError("nothing is prepared: run prepare first", code="nothing-prepared")
        now = now or utcnow()
        new = prepared[0]
        old = self._signer_record()
        self._replace(replace(old, status=Status.RETIRING, deactivated_at=_iso(now)))
        self._replace(replace(new, status=Status.ACTIVE))
        new_root = self.state.find(new.parent or "")
        if new_root.status is Status.PREPARED:
            for active_root in self.state.with_status("root", Status.ACTIVE):
                self._replace(
                    replace(active_root, status=Status.RETIRING, deactivated_at=_iso(now))
                )
            self._replace(replace(new_root, status=Status.ACTIVE))
        self._commit()
        return new.name

    @_transactional
    def retire(self, *, now: dt.datetime | None = None) -> list[str]:
        """Stage 3: drop every retiring authority whose signed certificates have all expired
        (and whose JWT-SVIDs can no longer be valid); delete their keys. Returns their names."""
        now = now or utcnow()
        retired: list[str] = []
        for record in self.state.with_status("intermediate", Status.RETIRING):
            done_x509 = record.signed_until is None or _time(record.signed_until) <= now
            done_jwt = record.deactivated_at is None or (
                _time(record.deactivated_at) + MAX_JWT_TTL <= now
            )
            if done_x509 and done_jwt:
                self._replace(replace(record, status=Status.RETIRED))
                retired.append(record.name)
        for record in self.state.with_status("root", Status.RETIRING):
            children = [a for a in self.state.authorities if a.parent == record.name]
            if all(c.status is Status.RETIRED for c in children):
                self._replace(replace(record, status=Status.RETIRED))
                retired.append(record.name)
        if not retired:
            return []
        self.state.bundle_sequence += 1
        self._commit()
        # Keys go only once the state no longer refers to them; a crash in between leaves
        # orphans that open() removes.
        for name in retired:
            self.store.delete_key(name)
            self.store.delete_key(f"{name}.jwt")
        self._load()
        return retired

    @_transactional
    def maintain(self, *, now: dt.datetime | None = None) -> list[str]:
        """Run whatever rotation stage is due now; returns a line per step taken."""
        now = now or utcnow()
        settings = self.state.settings
        steps = [f"retired {name}" for name in self.retire(now=now)]
        prepared = self.state.with_status("intermediate", Status.PREPARED)
        if prepared:
            if _time(prepared[0].created_at) + settings.activation_delay <= now:
                steps.append(f"activated {self.activate(now=now)}")
            return steps
        (root,) = self.state.with_status("root", Status.ACTIVE)
        if not root.upstream and _due(root, settings.rotate_at, now):
            steps.append(f"prepared {self.prepare(root=True, now=now)} under a new root")
        elif _due(self._signer_record(), settings.rotate_at, now):
            steps.append(f"prepared {self.prepare(now=now)}")
        return steps

    def _replace(self, record: AuthorityRecord) -> None:
        self.state.authorities = [
            record if a.name == record.name else a for a in self.state.authorities
        ]


def _due(record: AuthorityRecord, fraction: float, now: dt.datetime) -> bool:
    created, not_after = _time(record.created_at), _time(record.not_after)
    return now >= created + (not_after - created) * fraction


def _write_authority(
    store: Store,
    state: CaState,
    authority: Authority,
    role: str,
    parent: str | None,
    status: Status,
    now: dt.datetime,
    *,
    upstream: bool = False,
) -> AuthorityRecord:
    state.generation += 1
    name = f"{role}-{state.generation}"
    store.write_key(name, private_key_pem(authority.private_key))
    store.write_cert(name, chain_pem((authority.certificate, *authority.chain[1:])))
    record = AuthorityRecord(
        name=name,
        role=role,
        parent=parent,
        generation=state.generation,
        status=status,
        not_after=_iso(authority.not_after),
        created_at=_iso(now),
        upstream=upstream,
    )
    state.authorities.append(record)
    return record


def _prepare_intermediate(
    store: Store,
    state: CaState,
    parent: Authority,
    parent_record: AuthorityRecord,
    now: dt.datetime,
) -> None:
    intermediate = parent.issue_intermediate(
        ttl=state.settings.intermediate_ttl,
        algorithm=state.settings.key_algorithm,
        name_constraints=state.settings.name_constraints,
        now=now,
    )
    # JWT-SVIDs get their own key (always ECDSA P-256: the spec forbids EdDSA), rotated
    # with the intermediate.
    jwt_key = generate_private_key(KeyAlgorithm.EC_P256)
    record = _write_authority(
        store, state, intermediate, "intermediate", parent_record.name, Status.PREPARED, now
    )
    store.write_key(f"{record.name}.jwt", private_key_pem(jwt_key))
    state.authorities[-1] = replace(record, jwt_kid=_kid(jwt_key.public_key()))


def _read_authority(store: Store, record: AuthorityRecord, trust_domain: str) -> Authority:
    return load_authority(
        store.read_cert(record.name), store.read_key(record.name), trust_domain=trust_domain
    )
