"""The download engine: one asyncio loop driving many peer connections.

The decisions (which block from whom, endgame, cancels) come from
app.core.picker; this module moves bytes between sockets, the picker and
the disk, and keeps the set of peers fresh.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

from app.core import peer_wire as wire
from app.core.errors import NoPeersError, ProtocolError, TorrentError, TrackerError
from app.core.metainfo import Info
from app.core.picker import PiecePicker
from app.core.pieces import BLOCK_SIZE
from app.core.tracker import AnnounceRequest, PeerAddress
from app.io.peer import PeerConnection
from app.io.tracker_client import announce_first

log = logging.getLogger(__name__)

MIN_QUEUE, START_QUEUE, MAX_QUEUE = 4, 32, 250   # 250: rain's MaxRequestsIn
QUEUE_SECONDS = 2.0          # keep about this many seconds of data requested per peer
MAX_STRIKES = 2              # bad pieces before a peer is banned
MAX_CONNECT_FAILURES = 4


class Storage(Protocol):
    def open(self, create: bool = True) -> None: ...
    def write_piece(self, index: int, data: bytes) -> None: ...
    def verified_pieces(self) -> set[int]: ...
    def close(self) -> None: ...


@dataclass
class SwarmConfig:
    max_peers: int = 50
    port: int = 6881
    connect_timeout: float = 5.0
    request_timeout: float = 6.0    # a peer with requests out that sends nothing this long is dropped
    stall_timeout: float = 60.0     # give up when nothing arrives for this long
    announce_timeout: float = 10.0
    memory_budget: int = 64 << 20   # bytes of in-flight piece buffers


@dataclass(frozen=True)
class Progress:
    done_bytes: int
    total_bytes: int
    rate: float            # bytes/s over the last few seconds
    peers: int
    pieces_done: int
    pieces_total: int


@dataclass
class SwarmResult:
    downloaded: int          # payload bytes received this run
    resumed_pieces: int      # pieces found verified on disk at start
    peers_used: int          # peers that sent at least one good block
    seconds: float


@dataclass
class _Peer:
    conn: PeerConnection
    has: list[bool]
    choked: bool = True
    queue: int = START_QUEUE
    received: int = 0                     # bytes in the current rate window
    rate: float = 0.0
    last_block: float = field(default_factory=time.monotonic)


class Swarm:
    def __init__(self, info: Info, storage: Storage, peer_id: bytes, *,
                 config: SwarmConfig | None = None, wanted: Sequence[int] | None = None,
                 trackers: tuple[tuple[str, ...], ...] = (), peers: Sequence[PeerAddress] = (),
                 progress: Callable[[Progress], None] | None = None) -> None:
        self.info = info
        self.storage = storage
        self.peer_id = peer_id
        self.config = config or SwarmConfig()
        self.wanted = set(range(info.piece_count) if wanted is None else wanted)
        self.trackers = trackers
        self.progress = progress
        self.picker: PiecePicker | None = None
        self.peers: dict[PeerAddress, _Peer] = {}
        self._candidates: dict[PeerAddress, None] = dict.fromkeys(peers)
        self._known: set[PeerAddress] = set(peers)
        self._failures: dict[PeerAddress, int] = {}
        self._retry_at: dict[PeerAddress, float] = {}
        self._strikes: dict[PeerAddress, int] = {}
        self._banned: set[PeerAddress] = set()
        self._sessions: dict[PeerAddress, asyncio.Task] = {}
        self._contributors: set[PeerAddress] = set()
        self._wake = asyncio.Event()
        self._fatal: BaseException | None = None
        self._announce_error: TrackerError | None = None
        self._announced_once = False
        self._downloaded = 0
        self._rate_window: list[tuple[float, int]] = []
        self._last_progress = time.monotonic()

    # --- the main loop ---------------------------------------------------------------

    async def run(self) -> SwarmResult:
        started = time.monotonic()
        self.storage.open()
        try:
            have = self.storage.verified_pieces() & self.wanted
            sizes = [self.info.piece_size(i) for i in range(self.info.piece_count)]
            self.picker = PiecePicker(sizes, have, self.wanted,
                                      max_active_pieces=max(4, self.config.memory_budget // self.info.piece_length))
            if have:
                log.info("resuming: %d of %d pieces already verified on disk", len(have), len(self.wanted))
            if not self.picker.complete:
                await self._download()
            return SwarmResult(self._downloaded, len(have), len(self._contributors),
                               time.monotonic() - started)
        finally:
            self.storage.close()

    async def _download(self) -> None:
        announcer = asyncio.create_task(self._announce_loop()) if self.trackers else None
        ticker = 0
        try:
            while not self.picker.complete:
                if self._fatal:
                    raise self._fatal
                self._connect_more()
                self._check_starved()
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), 0.5)
                except asyncio.TimeoutError:
                    pass
                ticker += 1
                self._tick()
        finally:
            if announcer:
                announcer.cancel()
            await self._close_all()
            if self.trackers and self._announced_once:
                await self._announce_once("completed" if self.picker.complete else "stopped", timeout=2.0)

    def _check_starved(self) -> None:
        now = time.monotonic()
        if self._sessions or self._candidates or self._retry_at:
            if now - self._last_progress > self.config.stall_timeout:
                raise NoPeersError(f"no data for {self.config.stall_timeout:.0f} s from any peer")
            return
        if self.trackers and not self._announced_once and self._announce_error is None:
            return  # the first announce is still running
        if self._announce_error and not self._known:
            raise self._announce_error
        if not self.trackers or now - self._last_progress > self.config.stall_timeout:
            raise NoPeersError(f"no peer could provide the data ({len(self._known)} tried)")

    def _tick(self) -> None:
        """Once per loop turn: adapt queue depths and report progress."""
        now = time.monotonic()
        for peer in self.peers.values():
            peer.rate = 0.7 * peer.rate + 0.3 * (peer.received / 0.5)
            peer.received = 0
            peer.queue = max(MIN_QUEUE, min(MAX_QUEUE, int(peer.rate * QUEUE_SECONDS / BLOCK_SIZE)))
        self._rate_window = [(t, n) for t, n in self._rate_window if now - t < 3.0]
        if self.progress:
            self.progress(self.snapshot())

    def snapshot(self) -> Progress:
        picker = self.picker
        done = sum(self.info.piece_size(i) for i in picker.done & self.wanted)
        total = sum(self.info.piece_size(i) for i in self.wanted)
        window = sum(n for _, n in self._rate_window)
        return Progress(done, total, window / 3.0, len(self.peers),
                        len(picker.done & self.wanted), len(self.wanted))

    # --- peers -----------------------------------------------------------------------

    def add_peers(self, addresses: Sequence[PeerAddress]) -> None:
        for address in addresses:
            if address not in self._known and address.port != 0:
                self._known.add(address)
                self._candidates[address] = None
        self._wake.set()

    def _connect_more(self) -> None:
        now = time.monotonic()
        for address, when in list(self._retry_at.items()):
            if when <= now:
                del self._retry_at[address]
                self._candidates[address] = None
        while self._candidates and len(self._sessions) < self.config.max_peers:
            address = next(iter(self._candidates))
            del self._candidates[address]
            if address in self._banned or address in self._sessions:
                continue
            task = asyncio.create_task(self._session(address))
            self._sessions[address] = task

    async def _session(self, address: PeerAddress) -> None:
        try:
            await self._run_peer(address)
            self._failures.pop(address, None)
        except ProtocolError as exc:
            log.info("peer %s broke the protocol (%s); dropped for good", address, exc)
            self._banned.add(address)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, TorrentError) as exc:
            log.info("peer %s: %s", address, exc or type(exc).__name__)
            count = self._failures[address] = self._failures.get(address, 0) + 1
            if address not in self._banned and count < MAX_CONNECT_FAILURES and not self.picker.complete:
                self._retry_at[address] = time.monotonic() + min(30.0, 2.0 ** count)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not kill the whole download silently
            log.exception("peer %s: unexpected error", address)
            self._fatal = exc
        finally:
            self._sessions.pop(address, None)
            self._wake.set()

    async def _run_peer(self, address: PeerAddress) -> None:
        conn = await PeerConnection.open(address, self.info.info_hash, self.peer_id,
                                         timeout=self.config.connect_timeout)
        peer = _Peer(conn, [False] * self.info.piece_count)
        self.peers[address] = peer
        log.debug("peer %s connected (%s)", address, conn.peer_id[:8])
        conn.send(wire.encode_message(wire.MessageId.INTERESTED))
        try:
            while not self.picker.complete:
                waiting = bool(self.picker.outstanding.get(address)) and not peer.choked
                try:
                    message = await conn.receive(self.config.request_timeout if waiting else 30.0)
                except asyncio.TimeoutError:
                    if waiting:
                        raise asyncio.TimeoutError("peer stopped sending blocks") from None
                    conn.send(wire.encode_message(None))  # keep-alive
                    continue
                self._handle(address, peer, message)
                if not peer.choked:
                    self._request_more(address, peer)
                await conn.drain()
        finally:
            self.peers.pop(address, None)
            self.picker.release(address)
            self.picker.peer_has([i for i, h in enumerate(peer.has) if h], -1)
            conn.close()

    def _handle(self, address: PeerAddress, peer: _Peer, message: wire.Message) -> None:
        mid, payload = message.id, message.payload
        if mid == wire.MessageId.PIECE:
            self._on_piece(address, peer, payload)
        elif mid == wire.MessageId.UNCHOKE:
            peer.choked = False
        elif mid == wire.MessageId.CHOKE:
            peer.choked = True
            self.picker.release(address, list(self.picker.outstanding.get(address, ())))
        elif mid == wire.MessageId.HAVE:
            index = wire.parse_have(payload, self.info.piece_count)
            if not peer.has[index]:
                peer.has[index] = True
                self.picker.peer_has([index])
        elif mid == wire.MessageId.BITFIELD:
            old = [i for i, h in enumerate(peer.has) if h]
            peer.has = wire.parse_bitfield(payload, self.info.piece_count)
            self.picker.peer_has(old, -1)
            self.picker.peer_has([i for i, h in enumerate(peer.has) if h])
        # Other ids (keep-alive, interested, requests, PORT, extended, fast
        # extension, unknown) need no action from a downloader: ignore them.

    def _on_piece(self, address: PeerAddress, peer: _Peer, payload: bytes) -> None:
        index, begin, block = wire.parse_piece(payload)
        outcome = self.picker.on_block(address, index, begin, block)
        peer.last_block = time.monotonic()
        peer.received += len(block)
        if outcome.duplicate:
            return
        self._downloaded += len(block)
        self._rate_window.append((peer.last_block, len(block)))
        self._last_progress = peer.last_block
        self._contributors.add(address)
        for other, spare in outcome.cancels:
            if other in self.peers:
                self.peers[other].conn.send(wire.encode_cancel(spare.index, spare.begin, spare.length))
        if outcome.piece is not None:
            asyncio.create_task(self._verify_and_store(outcome.index, outcome.piece))

    def _request_more(self, address: PeerAddress, peer: _Peer) -> None:
        room = peer.queue - len(self.picker.outstanding.get(address, ()))
        if room <= 0:
            return
        blocks = self.picker.pick(address, peer.has, room)
        if blocks:
            peer.conn.send(b"".join(wire.encode_request(b.index, b.begin, b.length) for b in blocks))

    # --- pieces ------------------------------------------------------------------------

    async def _verify_and_store(self, index: int, data: bytes) -> None:
        """Hash and write off the event loop (both release the GIL), then record the result."""
        try:
            ok = await asyncio.to_thread(self._check_and_write, index, data)
        except OSError as exc:
            self._fatal = exc
            self._wake.set()
            return
        if ok:
            self.picker.verified(index)
            if self.picker.complete:
                self._wake.set()
            return
        culprits = self.picker.failed(index)
        log.warning("piece %d failed its hash check; fetching it again", index)
        for address in culprits:
            strikes = self._strikes[address] = self._strikes.get(address, 0) + 1
            if strikes >= MAX_STRIKES and address not in self._banned:
                log.warning("peer %s sent %d bad pieces; banned", address, strikes)
                self._banned.add(address)
                self._retry_at.pop(address, None)
                if address in self._sessions:
                    self._sessions[address].cancel()
        self._wake.set()

    def _check_and_write(self, index: int, data: bytes) -> bool:
        if hashlib.sha1(data).digest() != self.info.piece_hashes[index]:
            return False
        self.storage.write_piece(index, data)
        return True

    # --- trackers ------------------------------------------------------------------------

    def _announce_request(self, event: str = "") -> AnnounceRequest:
        left = self.info.total_length - sum(self.info.piece_size(i) for i in self.picker.done)
        return AnnounceRequest(self.info.info_hash, self.peer_id, self.config.port,
                               downloaded=self._downloaded, left=left, event=event)

    async def _announce_once(self, event: str, timeout: float):
        try:
            url, reply = await announce_first(self.trackers, self._announce_request(event), timeout)
        except TrackerError as exc:
            if event in ("", "started"):
                self._announce_error = exc
                log.warning("%s", exc)
            return None
        self._announced_once = True
        self._announce_error = None
        return reply

    async def _announce_loop(self) -> None:
        event = "started"
        while True:
            reply = await self._announce_once(event, self.config.announce_timeout)
            if reply is not None:
                event = ""
                self.add_peers(reply.peers)
                log.info("tracker gave %d peers; next announce in %d s", len(reply.peers), reply.interval)
                delay = max(reply.interval, reply.min_interval or 0)
            else:
                self._wake.set()
                delay = 15.0
            await asyncio.sleep(max(5.0, delay))

    async def _close_all(self) -> None:
        tasks = list(self._sessions.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
