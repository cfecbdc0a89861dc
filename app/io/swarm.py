"""The swarm engine: one asyncio loop driving many peer connections, both ways.

Decisions come from the pure core: which block from whom (app.core.picker),
who may download from us (app.core.choker). This module moves bytes between
sockets, the core and the disk, and keeps the set of peers and trackers fresh.
The same engine downloads, uploads while downloading, and seeds.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

from app.core import extension as ext
from app.core import peer_wire as wire
from app.core.choker import REGULAR_SLOTS, ROUND_SECONDS, PeerStats, choose_unchoked, peer_to_replace
from app.core.errors import NoPeersError, ProtocolError, TorrentError, TrackerError
from app.core.metainfo import Info
from app.core.picker import PiecePicker
from app.core.pieces import BLOCK_SIZE
from app.core.tiers import TrackerTiers
from app.core.tracker import LOOPBACK_HOSTS, AnnounceRequest, PeerAddress, is_own_address
from app.io.peer import PeerConnection, listen
from app.io.tracker_client import announce_first

log = logging.getLogger(__name__)

MIN_QUEUE, START_QUEUE, MAX_QUEUE = 4, 32, 250   # 250: rain's MaxRequestsIn
QUEUE_SECONDS = 2.0          # keep about this many seconds of data requested per peer
MAX_STRIKES = 2              # bad pieces before a peer is banned
MAX_CONNECT_FAILURES = 4
TICK = 0.5                   # seconds between housekeeping turns
RATE_TICKS = 6               # the shown rate averages the last 3 s
MAX_MESSAGES_PER_SECOND = 5000   # more than this (without payload) is a flood
CHOKE_PATIENCE = 30.0        # a peer that chokes us this long gives its slot to a new one


class Storage(Protocol):
    def open(self, create: bool = True) -> None: ...
    def write_piece(self, index: int, data: bytes) -> None: ...
    def read_block(self, index: int, begin: int, length: int) -> bytes: ...
    def verified_pieces(self) -> set[int]: ...
    def close(self) -> None: ...


@dataclass
class SeedPolicy:
    """When to stop seeding after the download: a ratio, a time, or never (None, None)."""
    ratio: float | None = None
    seconds: float | None = None

    def done(self, uploaded: int, total: int, seeded_for: float) -> bool:
        if self.ratio is not None and uploaded >= self.ratio * total:
            return True
        return self.seconds is not None and seeded_for >= self.seconds


@dataclass
class SwarmConfig:
    max_peers: int = 50
    port: int = 6881                # announced to trackers, and listened on when `listen`
    listen: bool = False
    listen_host: str | None = None  # None: every interface
    connect_timeout: float = 5.0
    request_timeout: float = 6.0    # a peer with requests out that sends nothing this long is dropped
    stall_timeout: float = 60.0     # give up when nothing arrives for this long
    announce_timeout: float = 10.0
    memory_budget: int = 32 << 20   # bytes of piece buffers in flight or awaiting their check
    seed: SeedPolicy | None = None  # keep seeding after completion (needs `listen`)


@dataclass(frozen=True)
class Progress:
    done_bytes: int
    total_bytes: int
    rate: float            # download bytes/s over the last few seconds
    peers: int
    pieces_done: int
    pieces_total: int
    uploaded: int = 0


@dataclass
class SwarmResult:
    downloaded: int          # payload bytes received this run
    uploaded: int            # payload bytes sent this run
    resumed_pieces: int      # pieces found verified on disk at start
    peers_used: int          # peers that sent at least one good block
    seconds: float


@dataclass
class _Peer:
    conn: PeerConnection
    has: list[bool]
    choked: bool = True              # they choke us
    am_choking: bool = True          # we choke them
    interested_in_us: bool = False
    queue: int = START_QUEUE
    received: int = 0                # bytes from them in the current tick
    sent: int = 0                    # bytes to them in the current tick
    rate: float = 0.0
    up_rate: float = 0.0
    ut_metadata: int | None = None   # their id for ut_metadata messages
    messages: int = 0                # messages this tick (flood guard)
    useful_at: float = 0.0           # when it last unchoked us or sent a block


class Swarm:
    def __init__(self, info: Info, storage: Storage, peer_id: bytes, *,
                 config: SwarmConfig | None = None, wanted: Sequence[int] | None = None,
                 trackers: tuple[tuple[str, ...], ...] = (), peers: Sequence[PeerAddress] = (),
                 progress: Callable[[Progress], None] | None = None, seed_only: bool = False) -> None:
        self.info = info
        self.storage = storage
        self.peer_id = peer_id
        self.config = config or SwarmConfig()
        self.wanted = set(range(info.piece_count) if wanted is None else wanted)
        self.seed_only = seed_only
        self.tiers = [TrackerTiers([tier]) for tier in trackers]
        self.progress = progress
        self.picker: PiecePicker | None = None
        self.peers: dict[PeerAddress, _Peer] = {}
        self._candidates: dict[PeerAddress, None] = {}
        self._known: set[PeerAddress] = set()
        self._own_hosts: set[str] = set(LOOPBACK_HOSTS)  # grows with our connections' local addresses
        self._failures: dict[PeerAddress, int] = {}
        self._retry_at: dict[PeerAddress, float] = {}
        self._strikes: dict[PeerAddress, int] = {}
        self._banned: set[PeerAddress] = set()
        self._sessions: dict[PeerAddress, asyncio.Task] = {}
        self._contributors: set[PeerAddress] = set()
        self._wake = asyncio.Event()
        self._fatal: BaseException | None = None
        self._announce_errors: dict[int, TrackerError] = {}   # tiers whose last announce failed
        self._announced_tiers: set[int] = set()
        self._tracker_ids: dict[int, bytes] = {}
        self._announces_pending = len(self.tiers)
        self._downloaded = 0
        self._uploaded = 0
        self._rate_window: deque[int] = deque(maxlen=RATE_TICKS)   # bytes per tick, newest last
        self._tick_bytes = 0
        self._last_progress = time.monotonic()
        self._round = 0
        self._optimistic: PeerAddress | None = None
        self._next_rechoke = 0.0
        self._rng = random.Random()
        self.listen_port: int | None = None
        self._stopping = False
        # One worker hashes and writes pieces, in order, beside the event loop:
        # more threads would only fight over the GIL on two cores.
        self._disk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="disk")
        self.add_peers(peers)

    def stop(self) -> None:
        """Finish cleanly at the next turn (Ctrl-C while seeding): peers closed, trackers told."""
        self._stopping = True
        self._wake.set()

    # --- the main loop ---------------------------------------------------------------

    async def run(self) -> SwarmResult:
        started = time.monotonic()
        self.storage.open(create=not self.seed_only)
        server = None
        try:
            have = self.storage.verified_pieces()
            if self.seed_only:
                if not have:
                    raise TorrentError("no piece of the data verifies; nothing to seed")
                self.wanted = have
            have &= self.wanted
            sizes = [self.info.piece_size(i) for i in range(self.info.piece_count)]
            self.picker = PiecePicker(sizes, have, self.wanted,
                                      max_active_pieces=max(4, self.config.memory_budget // self.info.piece_length))
            if have and not self.seed_only:
                log.info("resuming: %d of %d pieces already verified on disk", len(have), len(self.wanted))
            if self.config.listen:
                server = await self._listen()
            if (not self.picker.complete or self.config.seed is not None) and not self._stopping:
                await self._run_until_done()
            return SwarmResult(self._downloaded, self._uploaded, len(have), len(self._contributors),
                               time.monotonic() - started)
        finally:
            if server is not None:
                server.close()
            self._disk.shutdown(wait=True)
            self.storage.close()

    async def _run_until_done(self) -> None:
        announcers = [asyncio.create_task(self._tier_loop(i)) for i in range(len(self.tiers))]
        completed_at = time.monotonic() if self.picker.complete else None
        next_tick = time.monotonic() + TICK
        try:
            while not self._stopping:
                if self._fatal:
                    raise self._fatal
                if self.picker.complete:
                    if completed_at is None:
                        completed_at = time.monotonic()
                        self._on_complete()
                    if self._seeding_over(completed_at):
                        break
                else:
                    self._check_starved()
                self._connect_more()
                self._wake.clear()
                now = time.monotonic()
                if now >= next_tick:  # by the clock: frequent wake-ups must not starve it
                    self._tick()
                    next_tick = now + TICK
                try:
                    async with asyncio.timeout(next_tick - now):
                        await self._wake.wait()
                except TimeoutError:
                    pass
        finally:
            for task in announcers:
                task.cancel()
            await asyncio.gather(*announcers, return_exceptions=True)
            await self._close_all()
            await self._announce_all("stopped" if not self.picker.complete or self.config.seed else "completed")

    def _seeding_over(self, completed_at: float) -> bool:
        policy = self.config.seed
        if policy is None or not self.config.listen:
            return True
        return policy.done(self._uploaded, self.info.total_length, time.monotonic() - completed_at)

    def _on_complete(self) -> None:
        """Tell peers we need nothing more, and trackers that we finished."""
        for peer in self.peers.values():
            peer.conn.send(wire.encode_message(wire.MessageId.NOT_INTERESTED))
        if self.config.seed is not None and not self.seed_only:
            asyncio.create_task(self._announce_all("completed"))

    def _check_starved(self) -> None:
        now = time.monotonic()
        if self._sessions or self._candidates or self._retry_at:
            if now - self._last_progress > self.config.stall_timeout:
                raise NoPeersError(f"no data for {self.config.stall_timeout:.0f} s from any peer")
            return
        if self._announces_pending:
            return  # the first announce of some tier is still running
        if self._announce_errors and not self._known:
            raise TrackerError("; ".join(str(e) for _, e in sorted(self._announce_errors.items())))
        if not self.tiers or now - self._last_progress > self.config.stall_timeout:
            raise NoPeersError(f"no peer could provide the data ({len(self._known)} tried)")

    def _tick(self) -> None:
        """Housekeeping: adapt queue depths, run the choker, report progress."""
        now = time.monotonic()
        for peer in self.peers.values():
            peer.rate = 0.7 * peer.rate + 0.3 * (peer.received / TICK)
            peer.up_rate = 0.7 * peer.up_rate + 0.3 * (peer.sent / TICK)
            peer.received = peer.sent = peer.messages = 0
            peer.queue = max(MIN_QUEUE, min(MAX_QUEUE, int(peer.rate * QUEUE_SECONDS / BLOCK_SIZE)))
        self._rate_window.append(self._tick_bytes)
        self._tick_bytes = 0
        self._replace_useless_peers(now)
        self._refill_peers()
        if now >= self._next_rechoke:
            self._rechoke()
            self._next_rechoke = now + ROUND_SECONDS
        if self.progress:
            self.progress(self.snapshot())

    def _refill_peers(self) -> None:
        """Requests normally follow incoming blocks. After a piece is checked (its
        buffer frees room for a new piece) or fails, or blocks are freed by another
        peer, unchoked peers with room in their queue are asked directly: an idle
        one would otherwise wait forever."""
        if self.picker.complete:
            return
        for address, peer in self.peers.items():
            if not peer.choked:
                self._request_more(address, peer)

    def _replace_useless_peers(self, now: float) -> None:
        """While others wait for a slot, drop a peer that has kept us choked for
        too long, and (each choke round) the slowest one if it is far behind."""
        if not self._candidates or self.picker.complete:
            return
        for address, peer in list(self.peers.items()):
            if peer.choked and now - peer.useful_at > CHOKE_PATIENCE:
                log.info("peer %s kept us choked for %.0f s; trying another", address, now - peer.useful_at)
                peer.conn.close()
        if len(self._sessions) >= self.config.max_peers and now >= self._next_rechoke:
            slow = peer_to_replace({a: p.rate for a, p in self.peers.items() if not p.choked})
            if slow is not None:
                log.info("peer %s is far slower than the others; trying another", slow)
                self.peers[slow].conn.close()

    def _bytes_of(self, pieces: set[int]) -> int:
        return sum(self.info.piece_size(i) for i in pieces)

    def snapshot(self) -> Progress:
        picker = self.picker
        done = self._bytes_of(picker.done & self.wanted)
        total = self._bytes_of(self.wanted)
        seconds = len(self._rate_window) * TICK
        rate = sum(self._rate_window) / seconds if seconds else 0.0
        return Progress(done, total, rate, len(self.peers),
                        len(picker.done & self.wanted), len(self.wanted), self._uploaded)

    # --- choking -----------------------------------------------------------------------

    def _rechoke(self) -> None:
        stats = [PeerStats(a, p.interested_in_us, p.rate, p.up_rate) for a, p in self.peers.items()]
        decision = choose_unchoked(stats, seeding=self.picker.complete, round_number=self._round,
                                   optimistic=self._optimistic, rng=self._rng)
        self._round += 1
        self._optimistic = decision.optimistic
        for address, peer in self.peers.items():
            self._set_choking(peer, address not in decision.unchoked)

    def _set_choking(self, peer: _Peer, choke: bool) -> None:
        if peer.am_choking != choke:
            peer.am_choking = choke
            peer.conn.send(wire.encode_message(wire.MessageId.CHOKE if choke else wire.MessageId.UNCHOKE))

    def _unchoked_count(self) -> int:
        return sum(not p.am_choking for p in self.peers.values())

    # --- peers -----------------------------------------------------------------------

    def add_peers(self, addresses: Sequence[PeerAddress]) -> None:
        for address in addresses:
            if address in self._known or address.port == 0 or \
                    is_own_address(address, self.listen_port, self._own_hosts):
                continue
            self._known.add(address)
            self._candidates[address] = None
        self._wake.set()

    def _connect_more(self) -> None:
        if self.picker.complete:
            return  # a seeder waits to be contacted
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
            self._sessions[address] = asyncio.create_task(self._session(address))

    async def _session(self, address: PeerAddress, incoming: PeerConnection | None = None) -> None:
        try:
            conn = incoming or await PeerConnection.open(
                address, self.info.info_hash, self.peer_id, timeout=self.config.connect_timeout,
                metadata_size=len(self.info.raw))
            if incoming is None and conn.local_host:
                self._own_hosts.add(conn.local_host)   # how peers see us, to never dial ourselves
            await self._run_peer(address, conn)
            self._failures.pop(address, None)
        except ProtocolError as exc:
            log.info("peer %s broke the protocol (%s); dropped for good", address, exc)
            self._banned.add(address)
        except (OSError, TorrentError) as exc:  # TimeoutError and ConnectionError are OSErrors
            log.info("peer %s: %s", address, exc or type(exc).__name__)
            count = self._failures[address] = self._failures.get(address, 0) + 1
            if (incoming is None and address not in self._banned and count < MAX_CONNECT_FAILURES
                    and not self.picker.complete):
                self._retry_at[address] = time.monotonic() + min(30.0, 2.0 ** count)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not be hidden as a peer failure
            log.exception("peer %s: unexpected error", address)
            self._fatal = exc
        finally:
            self._sessions.pop(address, None)
            self._wake.set()

    async def _run_peer(self, address: PeerAddress, conn: PeerConnection) -> None:
        if any(p.conn.peer_id == conn.peer_id for p in self.peers.values()):
            conn.close()
            raise ConnectionError("already connected to this peer")
        peer = _Peer(conn, [False] * self.info.piece_count, useful_at=time.monotonic())
        self.peers[address] = peer
        log.debug("peer %s connected (%s)", address, conn.peer_id[:8])
        if self.picker.done:
            conn.send(wire.encode_bitfield([i in self.picker.done for i in range(self.info.piece_count)]))
        if not self.picker.complete:
            conn.send(wire.encode_message(wire.MessageId.INTERESTED))
        try:
            while True:
                waiting = bool(self.picker.outstanding.get(address)) and not peer.choked
                try:
                    batch = await conn.receive_batch(self.config.request_timeout if waiting else 60.0)
                except TimeoutError:
                    if waiting:
                        raise TimeoutError("peer stopped sending blocks") from None
                    conn.send(wire.encode_message(None))  # keep-alive
                    continue
                for message in batch:
                    self._handle(address, peer, message)
                # One refill per batch: a write per message would cost a syscall per block.
                if not peer.choked and not self.picker.complete:
                    self._request_more(address, peer)
                await conn.drain()
        finally:
            del self.peers[address]
            self.picker.release(address)
            self.picker.peer_has([i for i, h in enumerate(peer.has) if h], -1)
            conn.close()

    def _handle(self, address: PeerAddress, peer: _Peer, message: wire.Message) -> None:
        mid, payload = message.id, message.payload
        if mid == wire.MessageId.PIECE:
            self._on_piece(address, peer, payload)
            return
        if mid == wire.MessageId.REQUEST:
            self._serve(peer, *wire.parse_request(payload))
            return
        peer.messages += 1   # pieces and requests carry data; anything else en masse is a flood
        if peer.messages > MAX_MESSAGES_PER_SECOND * TICK:
            raise ProtocolError("message flood")
        if mid == wire.MessageId.UNCHOKE:
            peer.choked = False
            peer.useful_at = time.monotonic()
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
        elif mid == wire.MessageId.INTERESTED:
            peer.interested_in_us = True
            if self._unchoked_count() < REGULAR_SLOTS + 1:
                self._set_choking(peer, False)  # a free slot: no need to wait for the next round
        elif mid == wire.MessageId.NOT_INTERESTED:
            peer.interested_in_us = False
        elif mid == wire.MessageId.EXTENDED:
            self._on_extended(peer, payload)
        # Keep-alives, CANCEL (we answer requests at once), PORT, the fast
        # extension's ids and unknown ids need no action: ignore them.

    def _on_piece(self, address: PeerAddress, peer: _Peer, payload: bytes) -> None:
        index, begin, block = wire.parse_piece(payload)
        outcome = self.picker.on_block(address, index, begin, block)
        peer.received += len(block)
        peer.useful_at = time.monotonic()
        if outcome.duplicate:
            return
        now = time.monotonic()
        self._downloaded += len(block)
        self._tick_bytes += len(block)
        self._last_progress = now
        self._contributors.add(address)
        for other, spare in outcome.cancels:
            if other in self.peers:
                self.peers[other].conn.send(wire.encode_cancel(spare.index, spare.begin, spare.length))
        if outcome.piece is not None:
            asyncio.create_task(self._verify_and_store(outcome.index, outcome.piece))

    def _request_more(self, address: PeerAddress, peer: _Peer) -> None:
        room = peer.queue - len(self.picker.outstanding.get(address, ()))
        if room < max(1, peer.queue // 4):
            return  # wait for a quarter of the queue to drain: fewer, larger writes
        blocks = self.picker.pick(address, peer.has, room)
        if blocks:
            peer.conn.send(b"".join(wire.encode_request(b.index, b.begin, b.length) for b in blocks))

    # --- uploading ------------------------------------------------------------------------

    def _serve(self, peer: _Peer, index: int, begin: int, length: int) -> None:
        """Answer a request. Malformed ones close the connection; requests while
        choked or for pieces we lack are dropped, as BEP 3 allows."""
        if length > BLOCK_SIZE or length <= 0:
            raise ProtocolError(f"request for {length} bytes (limit {BLOCK_SIZE})")
        if index >= self.info.piece_count or begin + length > self.info.piece_size(index):
            raise ProtocolError(f"request {index}:{begin}+{length} outside the torrent")
        if peer.am_choking or index not in self.picker.done:
            return
        block = self.storage.read_block(index, begin, length)
        peer.conn.send(wire.encode_piece(index, begin, block))
        peer.sent += length
        self._uploaded += length

    def _on_extended(self, peer: _Peer, payload: bytes) -> None:
        ext_id, body = ext.split_extended(payload)
        if ext_id == ext.HANDSHAKE_ID:
            peer.ut_metadata = ext.parse_extension_handshake(body).ut_metadata_id
        elif ext_id == ext.OUR_UT_METADATA_ID and peer.ut_metadata is not None:
            message = ext.parse_metadata_message(body)
            if message.msg_type == ext.REQUEST:
                peer.conn.send(self._metadata_reply(peer.ut_metadata, message.piece))

    def _metadata_reply(self, their_id: int, piece: int) -> bytes:
        raw = self.info.raw
        if piece >= ext.metadata_piece_count(len(raw)):
            return ext.encode_metadata_reject(their_id, piece)
        start = piece * ext.METADATA_PIECE_SIZE
        return ext.encode_metadata_data(their_id, piece, len(raw), raw[start:start + ext.METADATA_PIECE_SIZE])

    async def _listen(self) -> asyncio.AbstractServer:
        try:
            server = await listen(self.config.listen_host, self.config.port, self._accept)
        except OSError as exc:  # port taken: any free port still lets peers reach us
            log.warning("cannot listen on port %d (%s); using a free port", self.config.port, exc.strerror)
            server = await listen(self.config.listen_host, 0, self._accept)
        self.listen_port = server.sockets[0].getsockname()[1]
        log.info("listening on port %d", self.listen_port)
        return server

    async def _accept(self, protocol) -> None:
        """An incoming connection's task (see app.io.peer.listen)."""
        if len(self.peers) >= self.config.max_peers or self.picker is None:
            protocol.transport.close()
            return
        try:
            conn = await PeerConnection.accept(protocol, {self.info.info_hash: len(self.info.raw)},
                                               self.peer_id, timeout=self.config.connect_timeout)
        except (OSError, TorrentError) as exc:  # TimeoutError is an OSError
            log.info("incoming connection refused: %s", exc or type(exc).__name__)
            return
        except asyncio.CancelledError:
            protocol.transport.close()
            return  # shutting down mid-handshake: nothing to report
        address = conn.address
        if address in self._sessions:
            conn.close()
            return
        self._sessions[address] = asyncio.current_task()
        await self._session(address, incoming=conn)

    # --- pieces ------------------------------------------------------------------------

    async def _verify_and_store(self, index: int, data: bytearray) -> None:
        """Hash and write off the event loop (both release the GIL), then record the result."""
        try:
            ok = await asyncio.get_running_loop().run_in_executor(self._disk, self._check_and_write, index, data)
        except OSError as exc:
            self._fatal = exc
            self._wake.set()
            return
        try:
            self._record_check(index, data, ok)
        finally:
            self.picker.recycle(data)

    def _record_check(self, index: int, data: bytearray, ok: bool) -> None:
        if ok:
            for address in self.picker.verified(index, data):
                self._strike(address, MAX_STRIKES)  # its blocks differ from the good copy
            have = wire.encode_have(index)
            for peer in self.peers.values():
                if not peer.has[index]:  # a peer that has the piece needs no news of it
                    peer.conn.send(have)
            self._refill_peers()
            if self.picker.complete:
                self._wake.set()
            return
        log.warning("piece %d failed its hash check; fetching it again", index)
        for address in self.picker.failed(index, data):
            self._strike(address)
        self._refill_peers()
        self._wake.set()

    def _strike(self, address: PeerAddress, count: int = 1) -> None:
        """Count bad data against a peer; at MAX_STRIKES it is dropped and never redialled."""
        strikes = self._strikes[address] = self._strikes.get(address, 0) + count
        if strikes >= MAX_STRIKES and address not in self._banned:
            log.warning("peer %s sent bad data %d times; banned", address, strikes)
            self._banned.add(address)
            self._retry_at.pop(address, None)
            if address in self._sessions:
                self._sessions[address].cancel()

    def _check_and_write(self, index: int, data: bytearray) -> bool:
        if hashlib.sha1(data).digest() != self.info.piece_hashes[index]:
            return False
        self.storage.write_piece(index, data)
        return True

    # --- trackers ------------------------------------------------------------------------

    def _announce_request(self, event: str = "", tracker_id: bytes | None = None) -> AnnounceRequest:
        left = self.info.total_length - self._bytes_of(self.picker.done)
        return AnnounceRequest(self.info.info_hash, self.peer_id, self.listen_port or self.config.port,
                               uploaded=self._uploaded, downloaded=self._downloaded, left=left,
                               event=event, tracker_id=tracker_id)

    async def _announce_tier(self, tier: int, event: str, timeout: float):
        """Announce to the first tracker of the tier that answers; None if none does.
        A `tracker id` the tier's tracker gave is sent back to it (BEP 3)."""
        request = self._announce_request(event, self._tracker_ids.get(tier))
        try:
            _, reply = await announce_first(self.tiers[tier], request, timeout)
        except TrackerError as exc:
            if event in ("", "started"):
                self._announce_errors[tier] = exc
                log.info("tier %d: %s", tier, exc)  # an Error line names it if nothing else works
            return None
        self._announce_errors.pop(tier, None)
        if reply.tracker_id is not None:
            self._tracker_ids[tier] = reply.tracker_id
        self._announced_tiers.add(tier)
        return reply

    async def _tier_loop(self, tier: int) -> None:
        """Each tier is announced to on its own schedule; their peers are merged."""
        event, first = "started", True
        while True:
            reply = await self._announce_tier(tier, event, self.config.announce_timeout)
            if first:
                first = False
                self._announces_pending -= 1
            if reply is not None:
                event = ""
                self.add_peers(reply.peers)
                log.info("tracker tier %d gave %d peers; next announce in %d s", tier, len(reply.peers), reply.interval)
                delay = max(reply.interval, reply.min_interval or 0)
            else:
                delay = 15.0
            self._wake.set()
            await asyncio.sleep(max(5.0, delay))

    async def _announce_all(self, event: str) -> None:
        """A last word to every tier that answered before (best effort, short timeout)."""
        tiers = sorted(self._announced_tiers)
        await asyncio.gather(*(self._announce_tier(t, event, 2.0) for t in tiers), return_exceptions=True)

    async def _close_all(self) -> None:
        for peer in self.peers.values():
            peer.conn.close()
        tasks = [t for t in self._sessions.values() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
