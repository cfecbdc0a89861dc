"""Serving a peer's requests: the part of PeerSession (app.core.session) that
decides which of their requests are queued, refuses the rest, and answers each
queued one with a block, a cancel, or (with the fast extension) a reject.

Validation happens here, once per request, so the engine only ever reads blocks
of pieces we have, for a peer we do not choke, within its queue limit.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.core import messages as m
from app.core.errors import ProtocolError
from app.core.pieces import BLOCK_SIZE, Block, LocalPieces
from app.core.session_config import MAX_REQUESTS_IN, Phase


class ServingRequests:
    """Mixed into PeerSession, which provides the flags, `local`, `phase` and `_send`."""
    am_choking: bool
    fast: bool
    phase: Phase
    local: LocalPieces
    piece_sizes: Sequence[int]
    uploaded: int
    last_payload_at: float
    _outbox: list[bytes]

    def __init__(self) -> None:
        self.requests_in: dict[Block, None] = {}   # their requests we have yet to serve
        self._pointless_requests = 0               # refused since the flood guard last counted

    def _send(self, data: bytes) -> None:
        raise NotImplementedError

    def _on_request(self, request: m.Request) -> m.Request | None:
        """A request to serve now, or None when it is refused (choked, a piece we
        lack, too many queued): with the fast extension a refusal is a
        reject_request, without it silence, as BEP 3 allows."""
        self.phase = Phase.RUNNING
        block = self._checked_block(request)
        if block in self.requests_in:
            return None
        # We grant no allowed-fast pieces (BEP 6): while we choke, nothing is served.
        pointless = self.am_choking or not self.local.have[block.index]
        if pointless or len(self.requests_in) >= MAX_REQUESTS_IN:
            # Requests we could never serve count toward the flood guard; a full queue
            # only means the peer pipelines deeper than we queue.
            self._pointless_requests += pointless
            if self.fast:
                self._send(m.RejectRequest(*block).encode())
            return None
        self.requests_in[block] = None
        return request

    def _on_cancel(self, cancel: m.Cancel) -> None:
        block = self._checked_block(cancel)
        if self.requests_in.pop(block, 0) is None and self.fast:
            self._send(m.RejectRequest(*block).encode())   # BEP 6: every request gets an answer

    def _checked_block(self, message: m.Request | m.Cancel | m.RejectRequest) -> Block:
        index, begin, length = message.index, message.begin, message.length
        sizes = self.piece_sizes
        if not 0 < length <= BLOCK_SIZE:
            raise ProtocolError(f"{type(message).__name__} for {length} bytes (limit {BLOCK_SIZE})")
        if index >= len(sizes) or begin + length > sizes[index]:
            raise ProtocolError(f"{type(message).__name__} {index}:{begin}+{length} is outside the torrent")
        return Block(index, begin, length)

    def choke(self) -> None:
        """Stop uploading to the peer. Queued requests are dropped; with the fast
        extension each is answered with reject_request."""
        if self.am_choking:
            return
        self.am_choking = True
        self._send(m.Choke().encode())
        if self.fast:
            self._send(b"".join(m.RejectRequest(*b).encode() for b in self.requests_in))
        self.requests_in.clear()

    def unchoke(self) -> None:
        if self.am_choking:
            self.am_choking = False
            self._send(m.Unchoke().encode())

    def send_block(self, block: Block, data: bytes, now: float) -> bool:
        """Answer one of their requests; False if it was cancelled or refused meanwhile."""
        if self.requests_in.pop(block, 0) is not None:
            return False
        self._outbox.append(m.Piece(block.index, block.begin, data).header())
        self._outbox.append(data)
        self.uploaded += len(data)
        self.last_payload_at = now
        return True
