"""The engine: one asyncio loop driving many peer connections, both ways.

It composes the parts; it does not contain them:
  app.core.session         each connection's protocol state (what a message means)
  app.core.picker          which block to ask which peer for
  app.core.request_policy  how many requests to keep out per peer
  app.core.choker          who may download from us (app.io.choking runs its rounds)
  app.core.peer_list       whom to dial, back-off, bans, whom to evict
  app.io.announcer         trackers
  app.io.piece_store       hash check, then disk
  app.io.peer              the sockets

The same engine downloads, uploads while downloading, and seeds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from app.core import extension as ext
from app.core.errors import NoPeersError, ProtocolError, TorrentError, TrackerError
from app.core.metainfo import Info
from app.core.peer_list import PeerList, SlotView, peers_to_evict, slowest_to_replace
from app.core.picker import PiecePicker
from app.core.piece_check import PieceCheck
from app.core.pieces import fetch_sizes
from app.core.request_policy import owes_blocks_too_long
from app.core.session import PeerSession, SessionConfig
from app.core.tracker import AnnounceRequest, PeerAddress
from app.core.write_batch import WriteBatcher, pieces_per_extent
from app.io.announcer import Announcer
from app.io.choking import ChokeRounds, free_upload_slot
from app.io.direct_io import aligned_buffer
from app.io.engine_types import TICK, ConnectedPeer, Progress, SeedPolicy, SwarmConfig, SwarmResult
from app.io.peer import PeerConnection, _WireProtocol, listen
from app.io.peer_events import PeerEvents
from app.io.pex import PexExchange
from app.io.piece_store import PieceStore, Storage
from app.io.throttle import Throttle

__all__ = ["Progress", "SeedPolicy", "Swarm", "SwarmConfig", "SwarmResult"]

log = logging.getLogger(__name__)

RATE_TICKS = 6               # the shown rate averages the last 3 s
CHOKE_PATIENCE = 30.0        # a peer that chokes us this long gives its slot to a new one
ADMISSION_GRACE = 10.0       # an incoming peer waits this long for a slot before it is closed
# Connections still in their handshake (each has HANDSHAKE_TIMEOUT to finish) or waiting for
# a slot, beyond which new ones are refused: what bounds memory and file descriptors.
HALF_OPEN_FACTOR = 8
SEQUENTIAL_WINDOW = 4        # --sequential: rarest first among this many next pieces


class Swarm:
    def __init__(self, info: Info, storage: Storage, peer_id: bytes, *,
                 config: SwarmConfig | None = None, wanted: Sequence[int] | None = None,
                 trackers: tuple[tuple[str, ...], ...] = (), peers: Sequence[PeerAddress] = (),
                 progress: Callable[[Progress], None] | None = None, seed_only: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.info = info
        self.config = config or SwarmConfig()
        self.seed_only = seed_only
        self.progress = progress
        self.clock = clock
        self.sizes = [info.piece_size(i) for i in range(info.piece_count)]
        extent = pieces_per_extent(info.piece_length)   # pieces started together, written together
        # the picker fetches each piece up to its last byte of data: padding blocks are zeros
        self.picker = PiecePicker(fetch_sizes(info.files, info.piece_length, self.sizes), (),
                                  () if seed_only else wanted,
                                  max_active_pieces=max(4, self.config.memory_budget // info.piece_length),
                                  sequential_window=SEQUENTIAL_WINDOW if self.config.sequential else 0,
                                  new_buffer=aligned_buffer,   # so verified pieces can skip the page cache
                                  extent_pieces=extent)
        self.throttle = Throttle(self.config.max_download_rate, self.config.max_upload_rate, clock)
        self.store = PieceStore(storage, PieceCheck(info).matches, self.sizes,
                                WriteBatcher(info.piece_length, extent), self.picker.is_downloading, clock)
        self.peer_list = PeerList(own_port=self.config.port)
        self.announcer = Announcer(trackers, self._announce_request, self._add_peers,
                                   self.config.announce_timeout, clock, also_as=self.other_names)
        self.session_config = SessionConfig(
            info.info_hash, peer_id, fast=self.config.fast_extension,
            extension_handshake=ext.extension_handshake_body(len(info.raw), pex=not info.private),
            v2=info.info_hash_v2 is not None,   # BEP 52: hash requests, and a hybrid's v2 hash accepted
            info_hash_v2=info.info_hash_v2[:20] if info.info_hash_v2 else None)
        self.pex = PexExchange(self, enabled=not info.private)   # peer exchange (BEP 11), app.io.pex
        self.peers: dict[PeerAddress, ConnectedPeer] = {}       # handshake done, slot or waiting for one
        self.tasks: dict[PeerAddress, asyncio.Task[None]] = {}
        self.events = PeerEvents(self)
        self.throttle.on_tokens, self.throttle.send = self.events.refill_all, self.events.send_block
        self.contributors: set[PeerAddress] = set()
        self.downloaded = 0
        self.uploaded = 0
        self.tick_bytes = 0
        self.last_progress = clock()
        self.waiting_for_peers = False
        self.listen_port: int | None = None
        self._wake = asyncio.Event()
        self._fatal: BaseException | None = None
        self._rate_window: deque[int] = deque(maxlen=RATE_TICKS)
        self.choking = ChokeRounds()   # who may download from us, app.io.choking
        self._early_round: int | None = None
        self._stopping = False
        self.sources_pending: Callable[[], bool] = lambda: False   # e.g. the DHT's first lookup (app.io.dht_feed)
        self.on_dht_port: Callable[[PeerAddress], None] = lambda node: None   # a peer's DHT node (BEP 5 PORT)
        self.running = False   # resumed pieces known, trackers started (web seeds wait for it)
        self._add_peers(peers)

    def stop(self) -> None:
        """Finish cleanly at the next turn (Ctrl-C while seeding): peers closed, trackers told."""
        self._stopping = True
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def fail(self, exc: BaseException) -> None:
        """A bug or a disk failure: the run ends with it."""
        self._fatal = exc
        self._wake.set()

    # --- the main loop ---------------------------------------------------------------

    async def run(self) -> SwarmResult:
        started = self.clock()
        server = None
        try:
            have = self.store.open(create=not self.seed_only)
            if self.seed_only and not have:
                raise TorrentError("no piece of the data verifies; nothing to seed")
            self.picker.restore(have)
            resumed = len(have & self.picker.wanted)
            if resumed and not self.seed_only:
                log.info("resuming: %d of %d pieces already verified on disk", resumed, len(self.picker.wanted))
            self.store.start(self.events.on_checked)
            if self.config.listen:
                server = await self._listen()
            if (not self.picker.complete or self.config.seed is not None) and not self._stopping:
                await self._run_until_done()
            return SwarmResult(self.downloaded, self.uploaded, resumed, len(self.contributors),
                               self.clock() - started)
        finally:
            if server is not None:
                server.close()
            self.throttle.close()
            self.store.close()

    async def _run_until_done(self) -> None:
        self.announcer.start()
        self.running = True
        completed_at = self.clock() if self.picker.complete else None
        next_tick = self.clock() + TICK
        try:
            while not self._stopping:
                if self._fatal:
                    raise self._fatal
                now = self.clock()
                if self.picker.complete:
                    if completed_at is None:
                        completed_at = now
                        self._on_complete()
                    if self._seeding_over(now - completed_at):
                        break
                else:
                    self._check_starved(now)
                    self._connect_more(now)
                self._wake.clear()
                if now >= next_tick:  # by the clock: frequent wake-ups must not starve it
                    self._tick(now)
                    next_tick = now + TICK
                try:
                    async with asyncio.timeout(next_tick - now):
                        await self._wake.wait()
                except TimeoutError:
                    pass
        finally:
            await self._close_all()
            done = self.picker.complete and not self.config.seed
            await self.announcer.stop("completed" if done else "stopped")

    def _seeding_over(self, seeded_for: float) -> bool:
        policy = self.config.seed
        if policy is None or not self.config.listen:
            return True
        return policy.done(self.uploaded, self.info.total_length, seeded_for)

    def _on_complete(self) -> None:
        """Sessions have dropped their interest as pieces verified; trackers hear we finished."""
        if self.config.seed is not None and not self.seed_only:
            asyncio.create_task(self.announcer.announce_all("completed"))

    def _check_starved(self, now: float) -> None:
        """When nobody can give us data, say so instead of waiting silently: first
        ask the trackers again (early), then stop with what happened to each peer."""
        self.waiting_for_peers = not self.peers
        if self.peers or self.peer_list.has_prospects():
            self._early_round = None
            if now - self.last_progress > self.config.stall_timeout:
                raise NoPeersError(f"no data for {self.config.stall_timeout:.0f} s from any peer")
            return
        if self.announcer.first_pending or self.sources_pending():
            return  # the first announce of some tier (or the DHT's first lookup) is still running
        if self.announcer.tiers and self._early_round is None and self.announcer.announce_early():
            log.info("every known peer failed; asking the trackers for more")
            self._early_round = self.announcer.rounds
            return
        if self._early_round is not None and self.announcer.rounds == self._early_round:
            return  # the early announce is under way
        if self.announcer.errors and not len(self.peer_list):
            raise TrackerError("; ".join(str(e) for _, e in sorted(self.announcer.errors.items())))
        if not len(self.peer_list):
            raise NoPeersError("no peers: the trackers listed none")
        raise NoPeersError(f"no peer could provide the data ({self.peer_list.failure_summary()})")

    def _tick(self, now: float) -> None:
        """Housekeeping: rates, deadlines, slots, the choker, progress."""
        for peer in list(self.peers.values()):
            peer.update_rates(TICK)
            reason = peer.session.tick(now)
            if reason is None and owes_blocks_too_long(now, len(self.picker.outstanding.get(peer.address, ())),
                                                       peer.last_block_at, self.config.request_timeout):
                reason = "stopped sending blocks"
            if reason is not None:
                peer.drop(reason)
            else:
                peer.conn.flush_soon()
        self._rate_window.append(self.tick_bytes)
        self.tick_bytes = 0
        self._manage_slots(now)
        self.store.settle()   # pieces that waited long enough for the rest of their extent
        self.pex.tick(now)
        self.events.refill_all()
        if self.choking.due(now):
            self.choking.rechoke(self.peers, self.picker.complete, now)
        if self.progress:
            self.progress(self.snapshot())

    def snapshot(self) -> Progress:
        picker = self.picker
        wanted_done = picker.done & picker.wanted
        seconds = len(self._rate_window) * TICK
        rate = sum(self._rate_window) / seconds if seconds else 0.0
        state = "seeding" if picker.complete else "waiting for peers" if self.waiting_for_peers else "downloading"
        return Progress(self._bytes_of(wanted_done), self._bytes_of(picker.wanted), rate, len(self.peers),
                        len(wanted_done), len(picker.wanted), self.uploaded, state)

    def _bytes_of(self, pieces: set[int]) -> int:
        return sum(self.picker.piece_sizes[i] for i in pieces)

    # --- slots ---------------------------------------------------------------------------

    def admitted_count(self) -> int:
        return sum(p.admitted for p in self.peers.values())

    def _manage_slots(self, now: float) -> None:
        """Peers waiting for a slot take those of useless peers; a peer that keeps
        us choked, or is far slower than the rest, makes way for new candidates."""
        waiting = sorted((p for p in self.peers.values() if not p.admitted),
                         key=lambda p: (not p.session.peer_interested, p.session.connected_at))
        free = self.config.max_peers - self.admitted_count()
        if len(waiting) > free:
            views = [SlotView(p.address, now - p.session.connected_at, p.session.idle_for(now),
                              p.session.am_interested or p.session.peer_interested)
                     for p in self.peers.values() if p.admitted]
            for address in peers_to_evict(views, len(waiting) - free):
                self.peers[address].drop("useless while others wait for a slot")
                free += 1
        for peer in waiting:
            if free > 0:
                peer.admitted, free = True, free - 1
                self.events.on_admitted(peer)
            elif now - peer.session.connected_at > ADMISSION_GRACE:
                peer.drop("no free slot", retry=False)
        if self.picker.complete or not self.peer_list.has_prospects():
            return
        for peer in self.peers.values():
            if peer.session.peer_choking and now - peer.useful_at > CHOKE_PATIENCE:
                peer.drop(f"kept us choked for {now - peer.useful_at:.0f} s")
        if self.admitted_count() >= self.config.max_peers and self.choking.due(now):
            slow = slowest_to_replace({a: p.rate for a, p in self.peers.items() if not p.session.peer_choking})
            if slow is not None:
                self.peers[slow].drop("far slower than the others")

    def free_upload_slot(self) -> bool:
        return free_upload_slot(self.peers)

    # --- peers -----------------------------------------------------------------------

    def _add_peers(self, addresses: Sequence[PeerAddress]) -> None:
        if self.peer_list.add(addresses):
            self._early_round = None
        self._wake.set()

    def _connect_more(self, now: float) -> None:
        room = self.config.max_peers - len(self.tasks)
        for address in self.peer_list.next_to_dial(now, max(0, room)):
            self.tasks[address] = asyncio.create_task(self._dial(address))

    async def _dial(self, address: PeerAddress) -> None:
        async def connect() -> PeerConnection:
            conn = await PeerConnection.dial(address, self.session_config, self.sizes, self.picker.local,
                                             timeout=self.config.connect_timeout, clock=self.clock)
            if conn.local_host:
                self.peer_list.own_hosts.add(conn.local_host)   # how peers see us, to never dial ourselves
            return conn
        await self._run_connection(address, connect(), incoming=False)

    async def _accept(self, protocol: _WireProtocol) -> None:
        """An incoming connection's task (see app.io.peer.listen)."""
        assert protocol.transport is not None
        host, port = protocol.transport.get_extra_info("peername")[:2]
        address = PeerAddress(host, port)
        if not self.peer_list.connecting(address) or len(self.tasks) >= HALF_OPEN_FACTOR * self.config.max_peers:
            protocol.transport.close()   # banned, a duplicate, or far too many connections at once
            return
        self.tasks[address] = asyncio.current_task()   # type: ignore[assignment]
        await self._run_connection(address, PeerConnection.accept(protocol, clock=self.clock), incoming=True)

    async def _run_connection(self, address: PeerAddress, handshake: Awaitable[PeerConnection],
                              incoming: bool) -> None:
        """One peer from handshake to goodbye; how it ended goes to the peer list."""
        error: str | None = None
        retry = not incoming
        peer: ConnectedPeer | None = None
        try:
            conn = await handshake
            peer = self._register(conn)
            await self.events.serve(peer)
        except ProtocolError as exc:
            log.info("peer %s broke the protocol (%s); dropped for good", address, exc)
            self.peer_list.ban(address, f"broke the protocol: {exc}")
        except (OSError, TorrentError) as exc:  # TimeoutError and ConnectionError are OSErrors
            error = (peer.drop_reason if peer is not None and peer.drop_reason else str(exc) or type(exc).__name__)
            retry = retry and (peer is None or peer.drop_retry)
            log.info("peer %s: %s", address, error)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not be hidden as a peer failure
            log.exception("peer %s: unexpected error", address)
            self.fail(exc)
        finally:
            if peer is not None:
                self._unregister(peer)
            self.tasks.pop(address, None)
            self.peer_list.disconnected(address, self.clock(), error, retry=retry and not self.picker.complete)
            self._wake.set()

    def _register(self, conn: PeerConnection) -> ConnectedPeer:
        if any(p.conn.peer_id == conn.peer_id for p in self.peers.values()):
            conn.close()
            raise ConnectionError("already connected to this peer")
        self.peer_list.connected(conn.address)
        peer = ConnectedPeer(conn, self.clock())
        peer.admitted = self.admitted_count() < self.config.max_peers
        self.peers[conn.address] = peer
        log.debug("peer %s connected (%s)%s", conn.address, conn.peer_id[:8], "" if peer.admitted else ", waiting")
        return peer

    def _unregister(self, peer: ConnectedPeer) -> None:
        self.peers.pop(peer.address, None)
        self.picker.release(peer.address)
        self.picker.peer_has([i for i, h in enumerate(peer.session.peer_has) if h], -1)
        peer.conn.close()

    async def _listen(self) -> asyncio.Server:
        def new_session() -> PeerSession:
            return PeerSession(self.session_config, self.sizes, self.picker.local, initiator=False,
                               now=self.clock())
        try:
            server = await listen(self.config.listen_host, self.config.port, new_session, self._accept)
        except OSError as exc:  # port taken: any free port still lets peers reach us
            log.warning("cannot listen on port %d (%s); using a free port", self.config.port, exc.strerror)
            server = await listen(self.config.listen_host, 0, new_session, self._accept)
        self.listen_port = self.peer_list.own_port = server.sockets[0].getsockname()[1]
        log.info("listening on port %d", self.listen_port)
        self.session_config = dataclasses.replace(   # our port in the extension handshake, for PEX
            self.session_config, extension_handshake=ext.extension_handshake_body(
                len(self.info.raw), pex=not self.info.private, listen_port=self.listen_port))
        return server

    async def _close_all(self) -> None:
        for peer in self.peers.values():
            peer.conn.close()
        tasks = [t for t in self.tasks.values() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)

    # --- trackers ------------------------------------------------------------------------

    @property
    def other_names(self) -> tuple[bytes, ...]:
        """A hybrid is also known by its truncated v2 hash (BEP 52), to trackers and the DHT."""
        info = self.info
        return (info.info_hash_v2[:20],) if info.version == "hybrid" and info.info_hash_v2 else ()

    def _announce_request(self, event: str, tracker_id: bytes | None) -> AnnounceRequest:
        left = max(0, self.info.total_length - self._bytes_of(self.picker.done))
        return AnnounceRequest(self.info.info_hash, self.session_config.peer_id,
                               self.listen_port or self.config.port, uploaded=self.uploaded,
                               downloaded=self.downloaded, left=left, event=event, tracker_id=tracker_id)
