"""The routing table (BEP 5): k-buckets of nodes, with liveness.

Bucket i holds the nodes whose ids share exactly i leading bits with ours, the
shape a fully split BEP 5 table reaches; nodes close to us are kept in detail,
far ones sparsely. A node is good when it replied in the last 15 minutes,
questionable after that, and bad after repeated failures; a full bucket gives
a bad node's place to a newcomer and otherwise keeps a few spares to promote.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.dht.krpc import ID_LENGTH, NodeInfo

K = 8
GOOD_FOR = 15 * 60.0        # seconds a reply keeps a node good
MAX_FAILURES = 2            # unanswered queries in a row that make a node bad
SPARES = 8                  # replacement candidates kept per bucket
BUCKETS = ID_LENGTH * 8


def distance(a: bytes, b: bytes) -> int:
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


def shared_bits(a: bytes, b: bytes) -> int:
    """How many leading bits two ids have in common (160 when equal)."""
    return BUCKETS - distance(a, b).bit_length()


@dataclass
class Entry:
    node: NodeInfo
    last_reply: float | None = None     # None: never answered us (learned from a list or a query)
    last_seen: float = 0.0
    failures: int = 0

    def good(self, now: float) -> bool:
        return self.failures == 0 and self.last_reply is not None and now - self.last_reply < GOOD_FOR

    def bad(self) -> bool:
        return self.failures >= MAX_FAILURES


class RoutingTable:
    def __init__(self, own_id: bytes, k: int = K) -> None:
        self.own_id = own_id
        self.k = k
        self._buckets: list[dict[bytes, Entry]] = [{} for _ in range(BUCKETS)]
        self._spares: list[dict[bytes, NodeInfo]] = [{} for _ in range(BUCKETS)]
        self._by_address: dict[tuple[str, int], bytes] = {}
        self.changed_at = [0.0] * BUCKETS

    def __len__(self) -> int:
        return len(self._by_address)

    def _index(self, node_id: bytes) -> int:
        return min(shared_bits(self.own_id, node_id), BUCKETS - 1)

    def add(self, node: NodeInfo, now: float, replied: bool = False) -> bool:
        """A node heard of (`replied`: it answered us, or queried us). True if it is in the table."""
        if len(node.id) != ID_LENGTH or node.id == self.own_id or not node.port:
            return False
        key = (node.host, node.port)
        known = self._by_address.get(key)
        if known is not None and known != node.id:
            self.remove(known)      # an address that changed id is a new node
        index = self._index(node.id)
        bucket = self._buckets[index]
        entry = bucket.get(node.id)
        if entry is None:
            if len(bucket) >= self.k and not self._evict_bad(index):
                spares = self._spares[index]
                if node.id not in spares and len(spares) >= SPARES:
                    spares.pop(next(iter(spares)))
                spares[node.id] = node
                return False
            entry = bucket[node.id] = Entry(node)
            self._by_address[key] = node.id
            self.changed_at[index] = now
        entry.last_seen = now
        if replied:
            entry.last_reply, entry.failures = now, 0
            self.changed_at[index] = now
        return True

    def _evict_bad(self, index: int) -> bool:
        for node_id, entry in self._buckets[index].items():
            if entry.bad():
                self.remove(node_id)
                return True
        return False

    def failed(self, node_id: bytes) -> None:
        """A query to the node went unanswered; a bad node gives way to a spare."""
        index = self._index(node_id)
        entry = self._buckets[index].get(node_id)
        if entry is None:
            self._spares[index].pop(node_id, None)
            return
        entry.failures += 1
        if entry.bad() and self._spares[index]:
            self.remove(node_id)
            spare_id = next(iter(self._spares[index]))
            self.add(self._spares[index].pop(spare_id), entry.last_seen)

    def remove(self, node_id: bytes) -> None:
        entry = self._buckets[self._index(node_id)].pop(node_id, None)
        if entry is not None:
            self._by_address.pop((entry.node.host, entry.node.port), None)

    def get(self, node_id: bytes) -> Entry | None:
        return self._buckets[self._index(node_id)].get(node_id)

    def closest(self, target: bytes, count: int = K, family: int | None = None) -> list[NodeInfo]:
        """The `count` nodes nearest `target` by XOR, bad ones left out. `family` 4 or 6 keeps one family."""
        entries = [e.node for bucket in self._buckets for e in bucket.values() if not e.bad()
                   and (family is None or (":" in e.node.host) == (family == 6))]
        key = int.from_bytes(target, "big")
        entries.sort(key=lambda n: int.from_bytes(n.id, "big") ^ key)
        return entries[:count]

    def nodes(self, now: float, answered_only: bool = False) -> list[NodeInfo]:
        """Every node that is not bad (with `answered_only`, that ever answered us), good ones first."""
        entries = [e for bucket in self._buckets for e in bucket.values()
                   if not e.bad() and (e.last_reply is not None or not answered_only)]
        entries.sort(key=lambda e: not e.good(now))
        return [e.node for e in entries]

    def questionable(self, now: float, limit: int) -> list[NodeInfo]:
        """Nodes not heard from lately and not yet bad: worth a ping."""
        found = [e.node for bucket in self._buckets for e in bucket.values()
                 if not e.good(now) and not e.bad()]
        return found[:limit]

    def stale_buckets(self, now: float, age: float = GOOD_FOR) -> list[int]:
        """Non-empty buckets unchanged for `age` seconds: each wants a lookup of a random id in its range."""
        return [i for i, bucket in enumerate(self._buckets) if bucket and now - self.changed_at[i] >= age]


def random_id_in_bucket(own_id: bytes, index: int, noise: bytes) -> bytes:
    """An id sharing exactly `index` leading bits with ours (noise fills the rest), for refreshes."""
    own, rest = int.from_bytes(own_id, "big"), int.from_bytes(noise[:ID_LENGTH].rjust(ID_LENGTH, b"\0"), "big")
    if index >= BUCKETS:
        return own_id
    flip = 1 << (BUCKETS - 1 - index)
    low = flip - 1
    value = ((own ^ flip) & ~low) | (rest & low)
    return value.to_bytes(ID_LENGTH, "big")
