"""The choker's rounds, carried out on live connections: every ROUND_SECONDS the
pure decision (app.core.choker.choose_unchoked) is taken from the peers' rates
and interest, then each session is choked or unchoked to match it."""

from __future__ import annotations

import random
from collections.abc import Mapping

from app.core.choker import REGULAR_SLOTS, ROUND_SECONDS, PeerStats, choose_unchoked
from app.core.tracker import PeerAddress
from app.io.engine_types import ConnectedPeer


class ChokeRounds:
    def __init__(self, rng: random.Random | None = None) -> None:
        self.next_round_at = 0.0
        self._round = 0
        self._optimistic: PeerAddress | None = None
        self._rng = rng or random.Random()

    def due(self, now: float) -> bool:
        return now >= self.next_round_at

    def rechoke(self, peers: Mapping[PeerAddress, ConnectedPeer], seeding: bool, now: float) -> None:
        """One round: only peers holding a slot compete for the upload slots."""
        stats = [PeerStats(a, p.session.peer_interested, p.rate, p.up_rate) for a, p in peers.items() if p.admitted]
        decision = choose_unchoked(stats, seeding=seeding, round_number=self._round,
                                   optimistic=self._optimistic, rng=self._rng)
        self._round += 1
        self._optimistic = decision.optimistic
        self.next_round_at = now + ROUND_SECONDS
        for address, peer in peers.items():
            if address in decision.unchoked:
                peer.session.unchoke()
            else:
                peer.session.choke()
            peer.conn.flush_soon()


def free_upload_slot(peers: Mapping[PeerAddress, ConnectedPeer]) -> bool:
    """An interested peer is unchoked at once while the regular slots are not all taken."""
    return sum(not p.session.am_choking for p in peers.values()) < REGULAR_SLOTS + 1
