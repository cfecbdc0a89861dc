"""The engine's rate limits: token buckets (app.core.rate) applied where bytes are decided.

Downloads are limited where requests go out: a block is asked for only when
the bucket can pay for it, so the peers' sending follows our requests and no
socket needs pausing. Uploads are limited where a peer's request is answered:
a request the bucket cannot pay for yet waits in a queue, answered in order
as tokens accrue (the session drops it if the peer cancels or we choke).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence

from app.core.pieces import BLOCK_SIZE, Block
from app.core.rate import TokenBucket
from app.io.engine_types import ConnectedPeer


class Throttle:
    def __init__(self, download_rate: int, upload_rate: int, clock: Callable[[], float]) -> None:
        now = clock()
        self.clock = clock
        self.download = TokenBucket(download_rate, now) if download_rate > 0 else None
        self.upload = TokenBucket(upload_rate, now) if upload_rate > 0 else None
        self._queued: deque[tuple[ConnectedPeer, Block]] = deque()
        self._refill_timer: asyncio.TimerHandle | None = None
        self._drain_timer: asyncio.TimerHandle | None = None
        self.on_tokens: Callable[[], None] = lambda: None            # ask peers for blocks again
        self.send: Callable[[ConnectedPeer, Block], None] = lambda peer, block: None

    # --- downloads ----------------------------------------------------------------------

    def blocks_allowed(self, wanted: int) -> int:
        if self.download is None or wanted <= 0:
            return wanted
        now = self.clock()
        allowed = self.download.units_allowed(now, BLOCK_SIZE, wanted)
        if not allowed and self._refill_timer is None:
            self._refill_timer = asyncio.get_running_loop().call_later(
                self.download.wait_time(now, BLOCK_SIZE), self._tokens_back)
        return allowed

    def requested(self, blocks: Sequence[Block]) -> None:
        if self.download is not None and blocks:
            self.download.spend(sum(b.length for b in blocks), self.clock())

    def _tokens_back(self) -> None:
        self._refill_timer = None
        self.on_tokens()

    # --- uploads ------------------------------------------------------------------------

    def defer_upload(self, peer: ConnectedPeer, block: Block) -> bool:
        """True if the block must wait for tokens (it is queued); False: send it now."""
        if self.upload is None:
            return False
        now = self.clock()
        if not self._queued and self.upload.units_allowed(now, block.length, 1):
            self.upload.spend(block.length, now)
            return False
        self._queued.append((peer, block))
        self._schedule_drain(now)
        return True

    def _schedule_drain(self, now: float) -> None:
        if self._drain_timer is None and self.upload is not None and self._queued:
            wait = self.upload.wait_time(now, self._queued[0][1].length)
            self._drain_timer = asyncio.get_running_loop().call_later(max(wait, 0.005), self._drain)

    def _drain(self) -> None:
        self._drain_timer = None
        assert self.upload is not None
        now = self.clock()
        while self._queued and self.upload.units_allowed(now, self._queued[0][1].length, 1):
            peer, block = self._queued.popleft()
            if peer.drop_reason is None:
                self.upload.spend(block.length, now)
                self.send(peer, block)
                peer.conn.flush_soon()
        if self._queued:
            self._schedule_drain(now)

    def close(self) -> None:
        for timer in (self._refill_timer, self._drain_timer):
            if timer is not None:
                timer.cancel()
        self._queued.clear()
