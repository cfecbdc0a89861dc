"""What the engine does with each peer's events, in the order a download meets them:

  PeerHas (bitfield/have)  -> the picker counts availability; the session
                              has already sent `interested` if the peer is useful
  Unchoked                 -> ask for blocks (the picker chooses, the policy sizes)
  BlocksReceived           -> into the pieces' buffers; a complete piece is
                              hashed and stored, then `have` goes to every peer
  Choked / BlockRejected   -> the blocks go back to the picker for others
  Request                  -> read from disk and send (uploads)
  Extended                 -> ut_metadata requests answered from our info dict
  HashRequest              -> BEP 52: hashes from our piece layers, or a hash reject
  Port                     -> BEP 5: their DHT node, pinged by ours (app.io.dht)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from app.core import extension as ext
from app.core import messages as m
from app.core.hash_exchange import answer_hash_request
from app.core.peer_list import MAX_STRIKES
from app.core.pieces import Block, PieceBuffer
from app.core.request_policy import blocks_to_request
from app.core.session import BlockRejected, BlocksReceived, Choked, Event, InterestChanged, PeerHas, Unchoked
from app.core.tracker import PeerAddress
from app.io.engine_types import ConnectedPeer
from app.io.piece_store import CheckResult

if TYPE_CHECKING:
    from app.io.swarm import Swarm

log = logging.getLogger(__name__)


class PeerEvents:
    def __init__(self, swarm: Swarm) -> None:
        self.swarm = swarm
        self.picker = swarm.picker
        self._handlers: dict[type, Callable[[ConnectedPeer, Any], None]] = {
            BlocksReceived: self._on_blocks, m.Request: self._on_request, PeerHas: self._on_has,
            Unchoked: self._on_unchoked, Choked: self._on_choked, BlockRejected: self._on_rejected,
            InterestChanged: self._on_interest, m.Extended: self._on_extended,
            m.HashRequest: self._on_hash_request, m.Port: self._on_dht_port,
        }

    async def serve(self, peer: ConnectedPeer) -> None:
        """The peer's task: events in, one write out per batch, until it ends."""
        if peer.admitted:
            self.on_admitted(peer)
        conn = peer.conn
        while True:
            events = await conn.receive()   # deadlines and keep-alives: the engine's tick (session.tick)
            self.handle(peer, events)
            await conn.drain()

    def handle(self, peer: ConnectedPeer, events: list[Event]) -> None:
        """One batch of a peer's events, then its requests topped up: one refill per
        batch, as a write per message would cost a syscall per block."""
        handlers = self._handlers
        for event in events:
            handler = handlers.get(type(event))
            if handler is not None:
                handler(peer, event)
        self.refill(peer)

    def on_admitted(self, peer: ConnectedPeer) -> None:
        if peer.session.peer_interested and self.swarm.free_upload_slot():
            peer.session.unchoke()
        self.refill(peer)
        peer.conn.flush_soon()

    # --- downloading ----------------------------------------------------------------------

    def _on_has(self, peer: ConnectedPeer, event: PeerHas) -> None:
        self.picker.peer_has(event.pieces)

    def _on_unchoked(self, peer: ConnectedPeer, event: Unchoked) -> None:
        peer.useful_at = self.swarm.clock()

    def _on_choked(self, peer: ConnectedPeer, event: Choked) -> None:
        if event.requests_dropped:   # without BEP 6 a choke cancels everything we asked
            self.picker.release(peer.address, list(self.picker.outstanding.get(peer.address, ())))

    def _on_rejected(self, peer: ConnectedPeer, event: BlockRejected) -> None:
        if event.block in self.picker.outstanding.get(peer.address, ()):
            self.picker.release(peer.address, [event.block])

    def _on_blocks(self, peer: ConnectedPeer, event: BlocksReceived) -> None:
        """A burst of blocks (about twenty 16 KiB blocks per read): stored by the picker
        in one call, and the clocks and counters updated once for all of them."""
        swarm = self.swarm
        arrivals = self.picker.on_blocks(peer.address, event.blocks)
        now = swarm.clock()
        peer.received += event.size
        peer.last_block_at = peer.useful_at = now
        if arrivals.new_bytes:   # not only late duplicates
            swarm.downloaded += arrivals.new_bytes
            swarm.tick_bytes += arrivals.new_bytes
            swarm.last_progress = now
            swarm.contributors.add(peer.address)
        for other, spare in arrivals.cancels:
            holder = swarm.peers.get(other)   # type: ignore[call-overload]  # the picker's keys are addresses
            if holder is not None:
                holder.session.cancel(spare)
                holder.conn.flush_soon()
        if arrivals.pieces:
            swarm.store.submit(arrivals.pieces)

    def refill(self, peer: ConnectedPeer) -> None:
        """Keep the peer's request queue about `depth` deep."""
        session = peer.session
        if self.picker.complete or not peer.admitted or not session.am_interested:
            return
        has = session.peer_has
        if session.peer_choking:
            if not session.allowed_fast:
                return
            has = bytearray(len(has))   # while choked, only the allowed-fast pieces (BEP 6)
            for index in session.allowed_fast:
                has[index] = session.peer_has[index]
        outstanding = len(self.picker.outstanding.get(peer.address, ()))
        count = self.swarm.throttle.blocks_allowed(blocks_to_request(peer.depth, outstanding))
        if not count:
            return
        blocks = self.picker.pick(peer.address, has, count)
        if blocks:
            self.swarm.throttle.requested(blocks)
            if not outstanding:
                peer.last_block_at = self.swarm.clock()   # its timeout runs from now
            session.request(blocks)

    def refill_all(self) -> None:
        """Requests normally follow incoming blocks. When a piece fails, or is checked
        while a peer was held back by the active-piece limit (its buffer frees room for
        a new piece), unchoked peers are asked directly: an idle one would otherwise
        wait until the next tick."""
        if self.picker.complete:
            return
        for peer in self.swarm.peers.values():
            self.refill(peer)
            peer.conn.flush_soon()

    def on_checked(self, index: int, data: PieceBuffer, result: CheckResult) -> None:
        """A piece came back from the hash check (and the disk, if it matched)."""
        swarm = self.swarm
        if isinstance(result, OSError):
            swarm.fail(result)
            return
        try:
            self._record_check(index, data, result)
        except Exception as exc:   # a bug: end the run with it rather than lose it in a callback
            swarm.fail(exc)
        finally:
            self.picker.recycle(data)

    def _record_check(self, index: int, data: PieceBuffer, ok: bool) -> None:
        picker = self.picker
        if ok:
            for address in picker.verified(index, data):
                self._strike(address, MAX_STRIKES)  # its blocks differ from the good copy
            for peer in self.swarm.peers.values():
                peer.session.we_have(index)   # a have, or dropped interest
                if not picker.outstanding.get(peer.address):
                    peer.conn.flush_soon()   # otherwise it rides with the requests its next blocks bring
            if picker.complete:
                self.swarm.wake()   # the engine ends the download (or starts seeding)
        else:
            log.warning("piece %d failed its hash check; fetching it again", index)
            for address in picker.failed(index, data):
                self._strike(address)
        if not ok or picker.held_back:
            picker.held_back = False
            self.refill_all()

    def _strike(self, address: Any, count: int = 1) -> None:
        if self.swarm.peer_list.strike(address, count):
            log.warning("peer %s sent bad data; banned", address)
            peer = self.swarm.peers.get(address)
            if peer is not None:
                peer.drop("sent bad data", retry=False)

    # --- uploading ------------------------------------------------------------------------

    def _on_interest(self, peer: ConnectedPeer, event: InterestChanged) -> None:
        if event.interested and peer.admitted and self.swarm.free_upload_slot():
            peer.session.unchoke()   # a free slot: no need to wait for the next round

    def _on_request(self, peer: ConnectedPeer, request: m.Request) -> None:
        """The session has checked it (in range, unchoked, a piece we have)."""
        block = Block(request.index, request.begin, request.length)
        if not self.swarm.throttle.defer_upload(peer, block):
            self.send_block(peer, block)

    def send_block(self, peer: ConnectedPeer, block: Block) -> None:
        """Read from disk and send; also called later for uploads the rate limit held back."""
        if self.swarm.peers.get(peer.address) is not peer:
            return   # gone while the block waited
        data = self.swarm.store.read_block(block.index, block.begin, block.length)
        if peer.session.send_block(block, data, self.swarm.clock()):
            peer.sent += block.length
            self.swarm.uploaded += block.length

    def _on_hash_request(self, peer: ConnectedPeer, request: m.HashRequest) -> None:
        peer.session.send_hashes(answer_hash_request(self.swarm.info, request))

    def _on_dht_port(self, peer: ConnectedPeer, message: m.Port) -> None:
        """BEP 5: the peer runs a DHT node on this UDP port of its address."""
        self.swarm.on_dht_port(PeerAddress(peer.address.host, message.port))

    def _on_extended(self, peer: ConnectedPeer, message: m.Extended) -> None:
        if message.ext_id == ext.OUR_UT_PEX_ID:
            self.swarm.pex.received(peer, message.body)
            return
        their = peer.session.peer_extensions
        if message.ext_id != ext.OUR_UT_METADATA_ID or their is None or their.ut_metadata_id is None:
            return
        request = ext.parse_metadata_message(message.body)
        if request.msg_type == ext.REQUEST:
            peer.session.send_extended(their.ut_metadata_id, ext.metadata_reply_body(self.swarm.info.raw,
                                                                                      request.piece))
