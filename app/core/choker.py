"""Choking (BEP 3 tit-for-tat): who may download from us in the next round.

Pure: the caller passes each peer's rates and interest, the round number and
a random source; the swarm calls it every 10 s and carries out the result.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

REGULAR_SLOTS = 4
ROUND_SECONDS = 10.0
OPTIMISTIC_ROUNDS = 3          # the optimistic unchoke moves every 30 s

K = TypeVar("K", bound=Hashable)   # what the caller names its peers by


@dataclass(frozen=True)
class PeerStats(Generic[K]):
    key: K
    interested: bool        # the peer wants data from us
    download_rate: float    # bytes/s the peer sends us
    upload_rate: float      # bytes/s we send the peer


@dataclass(frozen=True)
class ChokeDecision(Generic[K]):
    unchoked: frozenset[K]
    optimistic: K | None


def choose_unchoked(peers: Sequence[PeerStats[K]], *, seeding: bool, round_number: int,
                    optimistic: K | None, rng: random.Random,
                    slots: int = REGULAR_SLOTS) -> ChokeDecision[K]:
    """Regular slots go to the best uploaders to us (tit-for-tat), or round-robin
    when we are seeding and nobody uploads; one more slot is an optimistic
    unchoke, so new peers get a chance to show their rate."""
    interested = [p for p in peers if p.interested]
    if seeding:
        regular = _round_robin(interested, round_number, slots)
    else:
        ranked = sorted(interested, key=lambda p: p.download_rate, reverse=True)
        regular = [p.key for p in ranked[:slots]]
    candidates = [p.key for p in interested if p.key not in regular]
    keep = optimistic in candidates and round_number % OPTIMISTIC_ROUNDS != 0
    if not keep:
        optimistic = rng.choice(candidates) if candidates else None
    unchoked = set(regular) | ({optimistic} if optimistic is not None else set())
    return ChokeDecision(frozenset(unchoked), optimistic)


def _round_robin(peers: list[PeerStats[K]], round_number: int, slots: int) -> list[K]:
    if not peers:
        return []
    start = (round_number * slots) % len(peers)
    rotated = peers[start:] + peers[:start]
    return [p.key for p in rotated[:slots]]
