"""The peer list: every address we know of, what became of it, and which
connected peer to give up when a better use of its slot is waiting.

Pure: time is passed in (`now`), so back-off and eviction are tested without
waiting. The engine asks it whom to dial next and tells it how each
connection ended.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from app.core.tracker import LOOPBACK_HOSTS, PeerAddress, is_own_address

MAX_CONNECT_FAILURES = 4      # failed connections before an address is given up
MAX_BACKOFF = 30.0            # seconds, the longest wait before redialling
MAX_STRIKES = 2               # bad pieces before a peer is banned
USELESS_AFTER = 5.0           # a connection with no interest either way is useless after this long
IDLE_LIMIT = 60.0             # ... and one with no block either way for this long
SLOW_FRACTION = 0.1           # a peer under a tenth of the median rate is worth swapping out


K = TypeVar("K", bound=Hashable)


@dataclass
class _Entry:
    failures: int = 0
    retry_at: float | None = None   # when a failed address may be dialled again
    strikes: int = 0
    banned: bool = False
    last_error: str | None = None


class PeerList:
    """Known addresses: candidates to dial, failures with back-off, bans."""

    def __init__(self, own_hosts: Iterable[str] = LOOPBACK_HOSTS, own_port: int | None = None) -> None:
        self.own_hosts: set[str] = set(own_hosts)   # grows with how peers see us
        self.own_port = own_port
        self._entries: dict[PeerAddress, _Entry] = {}
        self._candidates: dict[PeerAddress, None] = {}   # in the order they came
        self._active: set[PeerAddress] = set()           # dialling or connected

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, addresses: Iterable[PeerAddress]) -> int:
        """New addresses become candidates (never our own); returns how many were new."""
        added = 0
        for address in addresses:
            if address in self._entries or address.port == 0 or \
                    is_own_address(address, self.own_port, frozenset(self.own_hosts)):
                continue
            self._entries[address] = _Entry()
            self._candidates[address] = None
            added += 1
        return added

    def next_to_dial(self, now: float, count: int) -> list[PeerAddress]:
        """Up to `count` addresses to connect to now: new ones, and failed ones whose wait is over."""
        for address, entry in self._entries.items():
            if entry.retry_at is not None and entry.retry_at <= now and not entry.banned:
                entry.retry_at = None
                self._candidates[address] = None
        chosen: list[PeerAddress] = []
        while self._candidates and len(chosen) < count:
            address = next(iter(self._candidates))
            del self._candidates[address]
            if not self._entries[address].banned and address not in self._active:
                chosen.append(address)
        self._active.update(chosen)
        return chosen

    def connecting(self, address: PeerAddress) -> bool:
        """An incoming connection: False if the address is banned or already connected."""
        entry = self._entries.setdefault(address, _Entry())
        if entry.banned or address in self._active:
            return False
        self._candidates.pop(address, None)
        self._active.add(address)
        return True

    def connected(self, address: PeerAddress) -> None:
        """A handshake completed. Earlier failures still count: a peer that handshakes
        and then always fails must not be redialled forever."""
        self._entries[address].last_error = None

    def disconnected(self, address: PeerAddress, now: float, error: str | None = None, *,
                     retry: bool = True) -> None:
        """A connection ended. With an error and `retry`, it is redialled after a
        back-off that doubles each time (1, 2, 4 ... s), until MAX_CONNECT_FAILURES."""
        self._active.discard(address)
        entry = self._entries.setdefault(address, _Entry())
        if error is None:
            return
        entry.last_error = error
        entry.failures += 1
        if retry and not entry.banned and entry.failures < MAX_CONNECT_FAILURES:
            entry.retry_at = now + min(MAX_BACKOFF, 2.0 ** (entry.failures - 1))

    def ban(self, address: PeerAddress, reason: str) -> None:
        """Never dial this address again, nor accept it."""
        entry = self._entries.setdefault(address, _Entry())
        entry.banned, entry.last_error, entry.retry_at = True, reason, None
        self._candidates.pop(address, None)

    def strike(self, address: PeerAddress, count: int = 1) -> bool:
        """Count bad data against a peer; True when that makes it banned."""
        entry = self._entries.setdefault(address, _Entry())
        entry.strikes += count
        if entry.strikes >= MAX_STRIKES and not entry.banned:
            self.ban(address, f"sent bad data {entry.strikes} times")
            return True
        return False

    def is_banned(self, address: PeerAddress) -> bool:
        entry = self._entries.get(address)
        return entry is not None and entry.banned

    def has_prospects(self) -> bool:
        """Someone is connected or dialling, a candidate waits, or a retry is due."""
        return bool(self._active or self._candidates or
                    any(e.retry_at is not None for e in self._entries.values()))

    def failure_summary(self, limit: int = 3) -> str:
        """What happened to the peers we tried, for the one Error line."""
        failed = [(a, e.last_error) for a, e in self._entries.items() if e.last_error]
        if not failed:
            return f"{len(self._entries)} peers known, none could be reached"
        shown = "; ".join(f"{address}: {error}" for address, error in failed[:limit])
        more = len(failed) - limit
        return shown + (f"; and {more} more" if more > 0 else "")


# --- which connected peer to give up ----------------------------------------------------

@dataclass(frozen=True)
class SlotView:
    """What eviction needs to know of one connected peer."""
    key: PeerAddress
    connected_for: float
    idle_for: float          # seconds since a block moved either way
    interest: bool           # either side is interested in the other


def is_useless(peer: SlotView) -> bool:
    """A peer holding a slot for nothing: no interest either way once it had
    time to say so, or no block exchanged for a long while."""
    return (not peer.interest and peer.connected_for > USELESS_AFTER) or peer.idle_for > IDLE_LIMIT


def peers_to_evict(peers: Sequence[SlotView], wanted: int) -> list[PeerAddress]:
    """Up to `wanted` useless peers to drop for newcomers, the longest idle first."""
    useless = sorted((p for p in peers if is_useless(p)), key=lambda p: p.idle_for, reverse=True)
    return [p.key for p in useless[:wanted]]


def slowest_to_replace(download_rates: dict[K, float]) -> K | None:
    """When every slot is taken and other peers wait, the one to drop: the
    slowest, if it gives less than SLOW_FRACTION of the median rate."""
    if len(download_rates) < 3:
        return None
    ranked = sorted(download_rates.items(), key=lambda item: item[1])
    median = ranked[len(ranked) // 2][1]
    slowest, rate = ranked[0]
    return slowest if median > 0 and rate < SLOW_FRACTION * median else None
