"""Decision tables: one immutable, indexed table per destination.

Each rule is a row and owns one bit. Every matchable attribute (source, method, path,
host, port) has an index that maps a request's value to the bitmask of rows that
accept it; a request's candidate rows are the AND of those masks. Only candidate rows
with residual conditions run any code, so the cost of a decision follows the rules
that can match, not the number of rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from . import bundle, model
from .conditions import RuleCondition
from .decision import Decision, Matches
from .identity import Identity, peer_identity
from .model import Network
from .request import host_name, source_address


@dataclass(frozen=True, slots=True)
class Row:
    """A compiled rule: what the evaluator needs once the indexes chose it."""

    rule_id: str
    effect: Literal["allow", "deny"]
    audit: bool
    condition: RuleCondition | None


@dataclass(slots=True)
class PathNode:
    """A node of the segment trie that indexes path patterns."""

    children: dict[str, PathNode] = field(default_factory=dict)
    one: PathNode | None = None  # the `{*}` child
    end: int = 0  # patterns that end exactly here
    rest: int = 0  # patterns ending here in `{**}`: any number of further segments
    prefixes: tuple[tuple[str, int], ...] = ()  # prefix form: next segment starts with

    def child(self, segment: str | None) -> PathNode:
        if segment is None:
            if self.one is None:
                self.one = PathNode()
            return self.one
        node = self.children.get(segment)
        if node is None:
            node = self.children[segment] = PathNode()
        return node


def match_path(root: PathNode, path: str) -> int:
    """The mask of path patterns that match a canonical path."""
    segments = path.split("/")
    return _match_from(root, segments, 1, len(segments))


def _match_from(node: PathNode, segments: list[str], i: int, n: int) -> int:
    # Follow literal children iteratively; only `{*}` branches recurse. Masks are big
    # integers: OR only the non-zero ones, as each OR builds a new integer.
    found = 0
    while True:
        if node.rest:
            found |= node.rest
        if i == n:
            return found | node.end if node.end else found
        segment = segments[i]
        if node.prefixes:
            for prefix, mask in node.prefixes:
                if segment.startswith(prefix):
                    found |= mask
        if node.one is not None and segment:
            below = _match_from(node.one, segments, i + 1, n)
            if below:
                found |= below
        child = node.children.get(segment)
        if child is None:
            return found
        node = child
        i += 1


_CACHE_LIMIT = 65536  # entries per table cache; past it, compute without storing


@dataclass(frozen=True, slots=True)
class DecisionTable:
    """The indexed rows of one destination (a service, on one port or on all)."""

    destination: str
    default: Literal["allow", "deny"]
    rows: tuple[Row, ...]  # in rule id order: a mask's bits, low to high, list ids sorted
    no_match: Decision  # the decision when no row matches: the service default
    row_decisions: tuple[Decision, ...]  # each row's decision when it alone decides
    slow: int  # rows with conditions or audit: they need more than a lookup
    denies: int  # deny rows (not audit)
    audits: int  # audit rows
    # source indexes
    source_any: int
    source_authenticated: int
    source_unauthenticated: int
    source_ids: dict[str, int]
    source_namespaces: dict[str, int]
    source_trust_domains: dict[str, int]
    source_networks: tuple[tuple[Network, int], ...]
    source_network_denies: int  # deny rows with an `ip` source: a bad source IP matches them
    # operation indexes; a `*_bound` mask holds the rows the attribute constrains
    methods: dict[str, int]
    methods_any: int
    path_root: PathNode
    paths_any: int
    paths_bound: int
    hosts: dict[str, int]
    host_suffixes: tuple[tuple[str, int], ...]
    hosts_any: int
    hosts_bound: int
    ports: dict[int, int]
    ports_any: int
    ports_bound: int
    # Callers' masks by the peer's SPIFFE ID as requests carry it ("" for none), filled
    # on first sight: a mesh has few distinct workloads, and one lookup here replaces an
    # identity lookup and five index reads.
    caller_cache: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    # Decisions by the mask of rows that matched: the same few combinations recur.
    decision_cache: dict[int, Decision] = field(default_factory=dict, compare=False, repr=False)

    def decision_for(self, matched: int) -> Decision:
        """The decision when exactly the rows in ``matched`` (non-empty) match."""
        if not matched & (matched - 1) and not matched & self.audits:
            return self.row_decisions[matched.bit_length() - 1]  # one row: no lookup
        decision = self.decision_cache.get(matched)
        if decision is None:
            decision = self._decide(matched)
            if len(self.decision_cache) < _CACHE_LIMIT:
                self.decision_cache[matched] = decision
        return decision

    def _decide(self, matched: int) -> Decision:
        if not matched & self.audits:
            # Deny wins, else allow: the deciding rows are the matched denies, or all.
            deciding = matched & self.denies or matched
            first = self.row_decisions[(deciding & -deciding).bit_length() - 1]
            if not deciding & (deciding - 1):
                return first
            ids = []
            rows = self.rows
            while deciding:
                low = deciding & -deciding
                deciding ^= low
                ids.append(rows[low.bit_length() - 1].rule_id)
            # The lowest row has the smallest id: the reason names it, as by_rules does.
            return Decision(first.allowed, tuple(ids), first.reason)
        matches = Matches()
        rest = matched
        while rest:
            low = rest & -rest
            rest ^= low
            row = self.rows[low.bit_length() - 1]
            matches.add(row.rule_id, row.effect, row.audit)
        return matches.decision(self.destination, self.default)

    def candidates(
        self,
        method: str,
        path: str,
        request_host: str | None,
        port: int | None,
        principal: str | None,
        source_ip: str | None,
    ) -> int:
        """The rows whose indexed attributes all accept this request; ``principal`` is
        the peer's SPIFFE ID as the request carries it (invalid: unauthenticated)."""
        mask = self.methods.get(method, self.methods_any)
        if not mask:
            return 0
        key = principal or ""
        callers = self.caller_cache.get(key)
        if callers is None:
            callers = self._callers(peer_identity(principal))
            if len(self.caller_cache) < _CACHE_LIMIT:
                self.caller_cache[key] = callers
        if self.source_networks:
            callers |= self._networks(source_ip)
        mask &= callers
        if not mask:  # cheap columns first: most requests stop here
            return 0
        if mask & self.paths_bound:
            paths = match_path(self.path_root, path)
            mask &= self.paths_any | paths if self.paths_any else paths
        # (A zero test first: an AND of big integers builds a new one, even with zero.)
        if self.hosts_bound and mask & self.hosts_bound:
            mask &= self.hosts_any | self._hosts(host_name(request_host))
        if self.ports_bound and mask & self.ports_bound:
            mask &= self.ports_any | (self.ports.get(port, 0) if port is not None else 0)
        return mask

    def _callers(self, identity: Identity | None) -> int:
        if identity is None:
            return self.source_any | self.source_unauthenticated
        return (
            self.source_any
            | self.source_authenticated
            | self.source_ids.get(identity.spiffe_id, 0)
            | self.source_namespaces.get(identity.namespace_key, 0)
            | self.source_trust_domains.get(identity.trust_domain, 0)
        )

    def _networks(self, source_ip: str | None) -> int:
        if not source_ip:
            return 0
        try:
            address = source_address(source_ip)
        except ValueError:  # cannot be evaluated: denies match, allows fail
            return self.source_network_denies
        found = 0
        for network, mask in self.source_networks:
            if address in network:
                found |= mask
        return found

    def _hosts(self, host: str | None) -> int:
        if host is None:
            return 0
        found = self.hosts.get(host, 0)
        for suffix, mask in self.host_suffixes:
            if host.endswith(suffix) and len(host) > len(suffix):
                found |= mask
        return found


@dataclass(frozen=True)
class CompiledPolicy:
    """Every destination's table. ``tables`` is keyed by (service, port); the port None
    entry serves ports no block names. Immutable: a reload builds a new one."""

    tables: dict[tuple[str, int | None], DecisionTable]
    rule_count: int
    policy: model.PolicySet = field(repr=False, compare=False)  # what the tables came from
    given_fingerprint: str = ""
    # `tables` split by port, for table_for: no tuple key to build per request.
    _any_port: dict[str, DecisionTable] = field(init=False, repr=False, compare=False)
    _by_port: dict[tuple[str, int], DecisionTable] = field(init=False, repr=False, compare=False)
    # Destinations a request without a port cannot be decided for (PolicySet.needs_port).
    needs_port: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        any_port = {name: t for (name, port), t in self.tables.items() if port is None}
        by_port = {(name, port): t for (name, port), t in self.tables.items() if port is not None}
        object.__setattr__(self, "_any_port", any_port)
        object.__setattr__(self, "_by_port", by_port)
        object.__setattr__(self, "needs_port", self.policy.names_needing_port())

    def table_for(self, destination: str, port: int | None) -> DecisionTable | None:
        """The table that decides a call to ``destination`` on ``port``: the port's own,
        else the one for ports no block names; None when no policy names it."""
        if port is not None and self._by_port:
            table = self._by_port.get((destination, port))
            if table is not None:
                return table
        return self._any_port.get(destination)

    @cached_property
    def fingerprint(self) -> str:
        """Names the policy's content: the caller's, or the checked model's digest (the
        same as its bundle's checksum), computed on first use."""
        return self.given_fingerprint or bundle.fingerprint(self.policy)
