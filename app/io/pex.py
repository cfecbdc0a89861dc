"""Peer exchange (BEP 11) in the engine: what we tell each peer, what we take.

The protocol (message format, per-peer pacing, bounds) is app.core.pex; this
module picks the addresses worth advertising (peers we dialled, or that told
us their listening port) and hands what others advertise to the peer list,
at most MAX_LEARNED addresses in all. Never for a private torrent (BEP 27).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from app.core import pex
from app.core.errors import ProtocolError
from app.core.tracker import PeerAddress
from app.io.engine_types import ConnectedPeer

if TYPE_CHECKING:
    from app.io.swarm import Swarm

log = logging.getLogger(__name__)

MAX_LEARNED = 1000           # addresses taken from PEX over the whole run
CHECK_EVERY = 5.0            # seconds between looks at who is due a message


class PexExchange:
    def __init__(self, swarm: Swarm, enabled: bool) -> None:
        self.swarm = swarm
        self.enabled = enabled
        self.learned: set[PeerAddress] = set()
        self._senders: dict[PeerAddress, pex.PexSender] = {}
        self._next_check = 0.0

    def received(self, peer: ConnectedPeer, body: bytes) -> None:
        """A ut_pex message from a peer: its new addresses go to the peer list."""
        if not self.enabled:
            return
        try:
            message = pex.parse_pex(body)
        except ProtocolError as exc:
            log.debug("bad ut_pex message from %s: %s", peer.address, exc)
            return
        room = MAX_LEARNED - len(self.learned)
        new = [a for a in message.added if a not in self.learned][:max(0, room)]
        if new:
            self.learned.update(new)
            log.debug("ut_pex from %s: %d new peers", peer.address, len(new))
            self.swarm._add_peers(new)

    @staticmethod
    def advertised(peer: ConnectedPeer) -> PeerAddress | None:
        """The address others can dial for this peer, if we know one."""
        if peer.session._initiator:   # we dialled it: its address is where it listens
            return peer.address
        their = peer.session.peer_extensions
        if their is not None and their.listen_port:
            return PeerAddress(peer.address.host, their.listen_port)
        return None

    def tick(self, now: float) -> None:
        """Send each peer that speaks ut_pex what changed, at most once a minute (app.core.pex)."""
        if not self.enabled or now < self._next_check:
            return
        self._next_check = now + CHECK_EVERY
        peers = list(self.swarm.peers.values())
        connected: dict[PeerAddress, int] = {}
        for peer in peers:
            address = self.advertised(peer)
            if address is not None:
                has = peer.session.peer_has
                seed = bool(has) and all(has)
                connected[address] = (pex.REACHABLE if peer.session._initiator else 0) | (pex.SEED if seed else 0)
        for address in [a for a in self._senders if a not in self.swarm.peers]:
            del self._senders[address]
        for peer in peers:
            their = peer.session.peer_extensions
            if their is None or their.ut_pex_id is None:
                continue
            sender = self._senders.setdefault(peer.address, pex.PexSender(now))
            body = sender.message(now, connected, self.advertised(peer))
            if body is not None:
                peer.session.send_extended(their.ut_pex_id, body)
                peer.conn.flush_soon()
