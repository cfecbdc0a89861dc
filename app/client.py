"""The Python API: each stage as one call, composed from app.core and app.io.

    from app.client import download
    result = download("file.torrent", "out/file.iso")

Every function raises app.core.errors.TorrentError (or OSError for the disk)
on failure; the CLI turns those into one `Error:` line.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.core.errors import NoPeersError, TrackerError
from app.core.layer_fetch import missing_layers
from app.core.magnet import MagnetLink, parse_magnet
from app.core.metainfo import Info, Torrent, parse_info
from app.core.tiers import TrackerTiers
from app.core.tracker import AnnounceRequest, PeerAddress, is_own_address, parse_peer_address
from app.io.dht import DhtConfig, DhtNode
from app.io.dht_feed import DhtFeed, open_dht
from app.io.metadata import fetch_metadata, metadata_session, open_with_extensions
from app.io.part_file import part_file_path
from app.io.peer import PeerConnection, new_peer_id
from app.io.piece_layers import fetch_piece_layers
from app.io.selective_storage import SelectiveStorage
from app.io.storage import SinglePieceStorage, StorageError, TorrentStorage
from app.io.swarm import Progress, SeedPolicy, Swarm, SwarmConfig, SwarmResult
from app.io.torrent_file import load_torrent
from app.io.tracker_client import announce_first
from app.io.web_seed import WebSeeds

log = logging.getLogger(__name__)

MAGNET_LEFT = 1   # a magnet's size is unknown before its metadata; trackers want left > 0
DHT_GRACE = 0.5   # seconds a DHT lookup that found peers may go on finding more


@dataclass(frozen=True)
class Source:
    """Where the data can be found: an info hash, tracker tiers and known peers."""
    info_hash: bytes
    trackers: tuple[tuple[str, ...], ...]
    peers: tuple[PeerAddress, ...] = ()
    left: int = MAGNET_LEFT
    private: bool = False      # BEP 27: trackers only, never the DHT or PEX
    web_seeds: tuple[str, ...] = ()   # BEP 19 mirrors (url-list)
    info_hash_v2: bytes | None = None  # a v2 magnet's btmh hash: the metadata must match it too

    @classmethod
    def of_torrent(cls, torrent: Torrent, peers: Sequence[PeerAddress] = ()) -> Source:
        return cls(torrent.info.info_hash, torrent.trackers, tuple(peers), torrent.info.total_length,
                   private=torrent.info.private, web_seeds=torrent.web_seeds)

    @classmethod
    def of_magnet(cls, link: MagnetLink, peers: Sequence[PeerAddress] = ()) -> Source:
        hints = []
        for text in link.peers:
            try:
                hints.append(parse_peer_address(text))
            except ValueError:
                pass  # a bad hint is not worth failing for
        return cls(link.info_hash, link.tracker_tiers, tuple(peers) + tuple(hints),
                   info_hash_v2=link.info_hash_v2, web_seeds=link.web_seeds)


async def find_peers(source: Source, peer_id: bytes | None = None, port: int = 6881,
                     timeout: float = 10.0, dht: DhtNode | None = None) -> list[PeerAddress]:
    """Peers given by hand first, then the first tracker that answers; the DHT
    (when given) looks at the same time and is waited for only if the trackers give nobody."""
    peers = list(dict.fromkeys(source.peers))
    if peers:
        return peers
    if dht is not None and not source.private:
        return await _trackers_and_dht(source, peer_id, port, timeout, dht)
    if source.trackers:
        request = AnnounceRequest(source.info_hash, peer_id or new_peer_id(), port, left=source.left)
        _, reply = await announce_first(TrackerTiers(source.trackers), request, timeout)
        peers.extend(p for p in reply.peers if p not in peers and not is_own_address(p, port))
    if not peers and not source.trackers:
        raise NoPeersError("no tracker and no peers given (use --peer ip:port)")
    return peers


async def _trackers_and_dht(source: Source, peer_id: bytes | None, port: int, timeout: float,
                            dht: DhtNode) -> list[PeerAddress]:
    found: dict[PeerAddress, None] = {}
    some = asyncio.Event()

    def on_peers(peers: list[PeerAddress]) -> None:
        found.update(dict.fromkeys(peers))
        some.set()
    lookup = asyncio.create_task(dht.get_peers(source.info_hash, on_peers))
    tracker_error: Exception | None = None
    try:
        if source.trackers:
            request = AnnounceRequest(source.info_hash, peer_id or new_peer_id(), port, left=source.left)
            try:
                _, reply = await announce_first(TrackerTiers(source.trackers), request, timeout)
                peers = [p for p in reply.peers if not is_own_address(p, port)]
                if peers:
                    return list(dict.fromkeys(peers + list(found)))
            except TrackerError as exc:
                tracker_error = exc
        # The whole lookup, or DHT_GRACE after the first peers: dead nodes must not hold us up.
        waiter = asyncio.create_task(some.wait())
        try:
            async with asyncio.timeout(timeout):
                await asyncio.wait([lookup, waiter], return_when=asyncio.FIRST_COMPLETED)
            await asyncio.wait([lookup], timeout=DHT_GRACE)
        except TimeoutError:
            pass
        finally:
            waiter.cancel()
    finally:
        lookup.cancel()
    peers = [p for p in found if not is_own_address(p, port)]
    if peers:
        return peers
    if tracker_error is not None:
        raise tracker_error
    raise NoPeersError("no peers: " + ("the trackers and " if source.trackers else "") + "the DHT found none")


async def handshake(info_hash: bytes, address: PeerAddress) -> bytes:
    """The remote peer id after a handshake."""
    conn = await PeerConnection.open(address, metadata_session(info_hash, new_peer_id()))
    conn.close()
    return conn.peer_id


async def magnet_handshake(source: Source, timeout: float = 10.0) -> tuple[bytes, int | None]:
    """Peer id and ut_metadata id of the first peer that does the extension handshake."""
    peer_id = new_peer_id()
    errors = []
    for address in await find_peers(source, peer_id, timeout=timeout):
        try:
            conn, ext = await open_with_extensions(address, source.info_hash, peer_id)
        except Exception as exc:  # try the next peer, but remember why
            errors.append(f"{address}: {exc or type(exc).__name__}")
            continue
        conn.close()
        return conn.peer_id, ext.ut_metadata_id
    raise NoPeersError("no peer completed the extension handshake: " + "; ".join(errors))


async def magnet_metadata(source: Source, timeout: float = 10.0, dht: DhtConfig | None = None, *,
                          piece_layers: bool = False) -> Info:
    """The magnet link's info dict, fetched from peers and checked against its hash. With
    `piece_layers` (a download needs them), a v2 torrent's piece layers too, from the same peers."""
    async with open_dht(dht, source.private) as node:
        peers = await find_peers(source, timeout=timeout, dht=node)
    raw = await fetch_metadata(source.info_hash, peers, new_peer_id(), info_hash_v2=source.info_hash_v2)
    info = parse_info(raw)
    return await fetch_missing_layers(info, peers, timeout) if piece_layers else info


async def download_async(info: Info, output: str | Path, source: Source, *,
                         piece: int | None = None, config: SwarmConfig | None = None,
                         progress: Callable[[Progress], None] | None = None,
                         dht: DhtConfig | None = None,
                         started: Callable[[Swarm], None] | None = None,
                         files: frozenset[int] | None = None) -> SwarmResult:
    """Download the whole torrent into `output`, or one `piece` into the file `output`,
    or only the `files` (0-based indices, --select-file) of it.
    `started` is handed the engine before it runs (the piece map reads it)."""
    storage: SinglePieceStorage | TorrentStorage
    wanted: list[int] | None = None
    if piece is not None:
        info.piece_size(piece)  # validates the index before any network traffic
        storage, wanted = SinglePieceStorage(Path(output), info.piece_size(piece)), [piece]
    elif files is not None or part_file_path(info, Path(output)).exists():
        # A part-file left by an earlier --select-file run holds bytes this run can reuse.
        storage = SelectiveStorage(info, Path(output), frozenset(range(len(info.files))) if files is None else files)
        wanted = sorted(storage.wanted)
    else:
        storage = TorrentStorage(info, Path(output))
    swarm = Swarm(info, storage, new_peer_id(), config=config, wanted=wanted,
                  trackers=source.trackers, peers=source.peers, progress=progress)
    if started is not None:
        started(swarm)
    return await WebSeeds(swarm, source.web_seeds).around(run_with_dht(swarm, dht, source.private))


async def fetch_missing_layers(info: Info, peers: Sequence[PeerAddress], timeout: float = 10.0) -> Info:
    """A v2 torrent's missing piece layers (a magnet's metadata has none), fetched from
    `peers` with BEP 52 hash requests; `info` itself when nothing is missing."""
    if not missing_layers(info):
        return info
    try:
        return await fetch_piece_layers(info, peers, new_peer_id(), timeout=timeout)
    except NoPeersError as exc:
        if info.version != "hybrid":
            raise
        # v1-only peers can still serve a hybrid: its SHA-1 hashes check every piece
        log.warning("%s; this hybrid torrent's pieces are checked by SHA-1 alone", exc)
        return info


async def run_with_dht(swarm: Swarm, dht: DhtConfig | None, private: bool) -> SwarmResult:
    """Run the engine with the DHT beside its trackers (never for a private torrent)."""
    async with open_dht(dht, private or swarm.info.private) as node:
        if node is None:
            return await swarm.run()
        feed = DhtFeed(node, swarm.info.info_hash, swarm._add_peers,
                       lambda: swarm.listen_port if swarm.config.listen else None, also_as=swarm.other_names)
        # BEP 5: peers hear of our node (the DHT bit, then a PORT message), and we ping theirs
        swarm.session_config = dataclasses.replace(swarm.session_config, dht_port=node.port)
        swarm.on_dht_port = node.contact
        swarm.sources_pending = feed.pending
        task = asyncio.create_task(feed.run())
        try:
            return await swarm.run()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def seeding_storage(info: Info, path: Path) -> TorrentStorage:
    """Every file, or, after a --select-file download, the files that are there (and the
    part-file's bytes of the pieces they share with others): whatever verifies is served."""
    storage = TorrentStorage(info, path)
    present = frozenset(i for i, entry in enumerate(info.files) if storage.file_path(entry).is_file())
    if len(present) == len(info.files):
        return storage
    if not present:
        raise StorageError(errno.ENOENT, f"nothing to seed: none of the torrent's files is at {path}")
    return SelectiveStorage(info, path, present)


async def seed_async(info: Info, path: str | Path, source: Source, config: SwarmConfig,
                     dht: DhtConfig | None = None) -> SwarmResult:
    """Serve the verified data at `path` until SIGINT or SIGTERM, then tell the trackers."""
    config = dataclasses.replace(config, listen=True, seed=SeedPolicy())
    swarm = Swarm(info, seeding_storage(info, Path(path)), new_peer_id(), config=config,
                  trackers=source.trackers, peers=source.peers, seed_only=True)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, swarm.stop)
    try:
        return await run_with_dht(swarm, dht, source.private)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def download(torrent: str | Path, output: str | Path, *, peers: Sequence[PeerAddress] = (),
             config: SwarmConfig | None = None,
             progress: Callable[[Progress], None] | None = None) -> SwarmResult:
    """Blocking helper: download a .torrent file's content to `output`."""
    parsed = load_torrent(torrent)
    return asyncio.run(download_async(parsed.info, output, Source.of_torrent(parsed, peers),
                                      config=config, progress=progress))


def download_magnet(link: str, output: str | Path, *, peers: Sequence[PeerAddress] = (),
                    config: SwarmConfig | None = None,
                    progress: Callable[[Progress], None] | None = None) -> SwarmResult:
    """Blocking helper: fetch a magnet link's metadata, then its content."""
    source = Source.of_magnet(parse_magnet(link), peers)

    async def run() -> SwarmResult:
        info = await magnet_metadata(source, piece_layers=True)
        return await download_async(info, output, source, config=config, progress=progress)
    return asyncio.run(run())
