"""The iterative lookup (BEP 5) as a state machine: find_node or get_peers
towards a target, `alpha` queries in flight, the closest candidates first.

It owns no socket and no clock: `next_queries(now)` says whom to ask,
`on_reply`/`on_failure` take what came back, `expire(now)` turns silence into
failures. It ends when the k closest nodes that answered leave no closer
candidate unasked, or when its query budget is spent. Only replies from
addresses it asked count; what they list is capped, so a node answering with
itself or with thousands of entries cannot grow it or keep it going.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from app.core.dht.krpc import NodeInfo
from app.core.tracker import PeerAddress

ALPHA = 3
K = 8
QUERY_TIMEOUT = 2.0
SLOW_AFTER = 0.6            # a query unanswered this long stops counting toward alpha (dead nodes abound)
MAX_QUERIES = 48            # a lookup stays well under what a node tolerates from one address
MAX_CANDIDATES = 200
MAX_PEERS = 2000


class State(Enum):
    NEW = 0
    ASKED = 1
    REPLIED = 2
    FAILED = 3


@dataclass
class Candidate:
    node: NodeInfo
    distance: int
    state: State = State.NEW
    asked_at: float = 0.0
    token: bytes | None = None


class Lookup:
    def __init__(self, target: bytes, own_id: bytes, seeds: Iterable[NodeInfo], *, alpha: int = ALPHA,
                 k: int = K, timeout: float = QUERY_TIMEOUT, max_queries: int = MAX_QUERIES,
                 exclude: Iterable[PeerAddress] = ()) -> None:
        self.target = target
        self.own_id = own_id
        self.alpha, self.k, self.timeout, self.max_queries = alpha, k, timeout, max_queries
        self._target = int.from_bytes(target, "big")
        self._exclude = set(exclude)
        self.candidates: dict[PeerAddress, Candidate] = {}
        self.peers: dict[PeerAddress, None] = {}
        self.queries = 0
        self.replies = 0
        self._add(seeds)

    # --- what to send ------------------------------------------------------------------

    def _add(self, nodes: Iterable[NodeInfo]) -> None:
        for node in nodes:
            address = node.address
            if address in self.candidates or address in self._exclude or node.id == self.own_id:
                continue
            candidate = Candidate(node, self._distance(node.id))
            if len(self.candidates) >= MAX_CANDIDATES:
                # Full: a closer newcomer takes the place of the farthest one not yet asked.
                unasked = [c for c in self.candidates.values() if c.state is State.NEW]
                farthest = max(unasked, key=lambda c: c.distance, default=None)
                if farthest is None or farthest.distance <= candidate.distance:
                    continue
                del self.candidates[farthest.node.address]
            self.candidates[address] = candidate

    def _distance(self, node_id: bytes) -> int:
        return int.from_bytes(node_id, "big") ^ self._target

    def _window(self) -> list[Candidate]:
        """The k closest candidates that have not failed: the ones that matter."""
        live = [c for c in self.candidates.values() if c.state is not State.FAILED]
        live.sort(key=lambda c: c.distance)
        return live[:self.k]

    def in_flight(self, now: float | None = None) -> int:
        """Queries awaiting an answer; with `now`, only those not yet slow."""
        return sum(c.state is State.ASKED and (now is None or now - c.asked_at < SLOW_AFTER)
                   for c in self.candidates.values())

    def next_queries(self, now: float) -> list[NodeInfo]:
        """The nodes to ask now (marked as asked): the closest unasked ones, up to alpha
        in flight, slow queries not counted."""
        room = min(self.alpha - self.in_flight(now), self.max_queries - self.queries)
        chosen: list[NodeInfo] = []
        if room <= 0:
            return chosen
        for candidate in self._window():
            if candidate.state is State.NEW:
                candidate.state, candidate.asked_at = State.ASKED, now
                chosen.append(candidate.node)
                if len(chosen) >= room:
                    break
        self.queries += len(chosen)
        return chosen

    @property
    def done(self) -> bool:
        if self.in_flight():
            return False
        if self.queries >= self.max_queries:
            return True
        return not any(c.state is State.NEW for c in self._window())

    def next_deadline(self) -> float | None:
        asked = [c.asked_at for c in self.candidates.values() if c.state is State.ASKED]
        return min(asked) + self.timeout if asked else None

    # --- what came back ----------------------------------------------------------------

    def asked(self, address: PeerAddress) -> bool:
        candidate = self.candidates.get(address)
        return candidate is not None and candidate.state is State.ASKED

    def on_reply(self, address: PeerAddress, node_id: bytes, nodes: Iterable[NodeInfo] = (),
                 values: Iterable[PeerAddress] = (), token: bytes | None = None) -> list[PeerAddress]:
        """A reply from `address`; returns the peers it gave that are new. Ignored unless we asked it."""
        candidate = self.candidates.get(address)
        if candidate is None or candidate.state is not State.ASKED:
            return []
        candidate.state, candidate.token = State.REPLIED, token
        candidate.node = NodeInfo(node_id, address.host, address.port)
        candidate.distance = self._distance(node_id)
        self.replies += 1
        self._add(nodes)
        new = []
        for peer in values:
            if peer not in self.peers and len(self.peers) < MAX_PEERS:
                self.peers[peer] = None
                new.append(peer)
        return new

    def on_failure(self, address: PeerAddress) -> None:
        """An error reply, or a timeout noticed by the caller."""
        candidate = self.candidates.get(address)
        if candidate is not None and candidate.state is State.ASKED:
            candidate.state = State.FAILED

    def expire(self, now: float) -> list[NodeInfo]:
        """Queries older than the timeout become failures; returns those nodes."""
        late = [c for c in self.candidates.values() if c.state is State.ASKED and now - c.asked_at >= self.timeout]
        for candidate in late:
            candidate.state = State.FAILED
        return [c.node for c in late]

    # --- the result ------------------------------------------------------------------------

    def closest_replied(self, count: int = K) -> list[tuple[NodeInfo, bytes | None]]:
        """The nodes nearest the target that answered, with the token each gave (to announce to)."""
        replied = sorted((c for c in self.candidates.values() if c.state is State.REPLIED),
                         key=lambda c: c.distance)
        return [(c.node, c.token) for c in replied[:count]]
