"""Getting a v2 torrent's missing piece layers from peers (BEP 52), after a magnet link's metadata.

Several peers are asked at once, each on its own connection, from one shared
list of hash requests (app.core.layer_fetch): a request a peer rejects goes
to another peer; a peer whose hashes do not lead to the file's root, or that
hangs up, is dropped and its requests go back to the list.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from app.core import messages as m
from app.core.errors import NoPeersError, ProtocolError, TorrentError
from app.core.layer_fetch import Key, PieceLayerFetch
from app.core.metainfo import Info
from app.core.pieces import LocalPieces
from app.core.session import SessionConfig
from app.core.tracker import PeerAddress
from app.io.peer import PeerConnection

log = logging.getLogger(__name__)

PARALLEL_PEERS = 4
REQUESTS_PER_PEER = 4   # hash requests out at once on one connection (each up to 512 hashes)


def v2_session(info: Info, peer_id: bytes) -> SessionConfig:
    """A connection that speaks v2 for `info`: the v2 bit set, and for a hybrid joined by
    its v1 hash, the truncated v2 hash a peer upgrades the connection to (BEP 52)."""
    if info.info_hash_v2 is None:
        raise ValueError("not a v2 torrent")
    truncated = info.info_hash_v2[:20]
    return SessionConfig(info.info_hash, peer_id, fast=False, v2=True,
                         info_hash_v2=None if truncated == info.info_hash else truncated)


class _Work:
    """The requests left, shared by every peer's task: each is out with one peer at a time,
    and never again with a peer that rejected it."""

    def __init__(self, fetch: PieceLayerFetch) -> None:
        self.fetch = fetch
        self.taken: dict[Key, PeerAddress] = {}
        self.refused: dict[Key, set[PeerAddress]] = {}
        self.changed = asyncio.Event()

    def take(self, address: PeerAddress, count: int) -> list[m.HashRequest]:
        chosen: list[m.HashRequest] = []
        for request in self.fetch.requests():
            if len(chosen) >= count:
                break
            if request.key not in self.taken and address not in self.refused.get(request.key, ()):
                self.taken[request.key] = address
                chosen.append(request)
        return chosen

    def left_for(self, address: PeerAddress) -> bool:
        """Whether some request is still one this peer may yet be asked (now or later)."""
        return any(address not in self.refused.get(r.key, ()) for r in self.fetch.requests())

    def release(self, keys: Sequence[Key], refused_by: PeerAddress | None = None) -> None:
        for key in keys:
            self.taken.pop(key, None)
            if refused_by is not None:
                self.refused.setdefault(key, set()).add(refused_by)
        self._wake()

    def _wake(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


async def fetch_layers_over(conn: PeerConnection, work: _Work, timeout: float) -> None:
    """Ask one connected v2 peer for requests from `work` until nothing is left for it."""
    address, session = conn.address, conn.session
    if not session.v2:
        raise ProtocolError("peer does not speak BitTorrent v2 on this connection")
    mine: list[Key] = []
    try:
        while not work.fetch.complete:
            for request in work.take(address, REQUESTS_PER_PEER - len(mine)):
                session.request_hashes(request)
                mine.append(request.key)
            conn.flush()
            if not mine:
                if not work.left_for(address):
                    return
                try:   # what is left is out with other peers: wait until one answers or fails
                    async with asyncio.timeout(timeout):
                        await work.changed.wait()
                except TimeoutError:
                    pass
                continue
            for event in await conn.receive(timeout):
                if isinstance(event, m.Hashes) and event.key in mine:
                    work.fetch.add(event)   # ProtocolError if they fail the root: released below
                    mine.remove(event.key)
                    work.release([event.key])
                elif isinstance(event, m.HashReject) and event.key in mine:
                    mine.remove(event.key)
                    work.release([event.key], refused_by=address)
    finally:
        work.release(mine)


async def _from_peer(address: PeerAddress, info: Info, work: _Work, peer_id: bytes, timeout: float) -> None:
    # The pieces are known (the metadata is), though none is wanted on this connection:
    # their bitfield is read for what it is, and we stay not interested.
    sizes = [info.piece_size(i) for i in range(info.piece_count)]
    conn = await PeerConnection.open(address, v2_session(info, peer_id), sizes, LocalPieces(len(sizes), wanted=()),
                                     timeout=timeout)
    try:
        await fetch_layers_over(conn, work, timeout)
    finally:
        conn.close()


async def fetch_piece_layers(info: Info, peers: Sequence[PeerAddress], peer_id: bytes,
                             timeout: float = 10.0) -> Info:
    """`info` with every missing piece layer, fetched from `peers` and each checked against
    its file's `pieces root`; `info` itself if none is missing. NoPeersError if the peers
    together could not give them all."""
    fetch = PieceLayerFetch(info)
    if fetch.complete:
        return info
    work = _Work(fetch)
    queue = list(dict.fromkeys(peers))
    pending: dict[asyncio.Task[None], PeerAddress] = {}
    errors: list[str] = []
    try:
        while not fetch.complete and (queue or pending):
            while queue and len(pending) < PARALLEL_PEERS:
                address = queue.pop(0)
                pending[asyncio.create_task(_from_peer(address, info, work, peer_id, timeout))] = address
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                address = pending.pop(task)
                try:
                    task.result()
                except (OSError, TorrentError) as exc:   # TimeoutError is an OSError
                    log.info("piece layers from %s failed: %s", address, exc or type(exc).__name__)
                    errors.append(f"{address}: {exc or type(exc).__name__}")
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    if not fetch.complete:
        missing = len(fetch.requests())
        raise NoPeersError(f"no peer gave the piece layers ({missing} hash requests unanswered)"
                           + (f": {'; '.join(errors[:5])}" if errors else ""))
    result = fetch.result()
    log.info("piece layers of %d files fetched from peers", len(result.piece_layers) - len(info.piece_layers))
    return result
