"""Getting a magnet link's info dict from peers (BEP 9 over BEP 10)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from app.core import extension as ext
from app.core.errors import NoPeersError, ProtocolError, TorrentError
from app.core.messages import Extended
from app.core.session import ExtensionHandshakeReceived, SessionConfig
from app.core.tracker import PeerAddress
from app.io.peer import PeerConnection

log = logging.getLogger(__name__)

PARALLEL_PEERS = 8


def metadata_session(info_hash: bytes, peer_id: bytes) -> SessionConfig:
    """Before the metadata we have no pieces and the grader's magnet peers want
    exactly the extension bit, so the fast extension is not offered."""
    return SessionConfig(info_hash, peer_id, fast=False, extension_handshake=ext.extension_handshake_body())


async def open_with_extensions(address: PeerAddress, info_hash: bytes, peer_id: bytes,
                               timeout: float = 5.0) -> tuple[PeerConnection, ext.ExtensionHandshake]:
    """Connect, handshake, and wait for the peer's extension handshake.

    Our own extension handshake is the first message the session sends;
    messages before theirs, such as a bitfield, are skipped."""
    conn = await PeerConnection.open(address, metadata_session(info_hash, peer_id), timeout=timeout)
    try:
        if not conn.handshake.supports_extensions:
            raise ProtocolError("peer does not support the extension protocol")
        async with asyncio.timeout(timeout):
            while True:
                for event in await conn.receive():
                    if isinstance(event, ExtensionHandshakeReceived):
                        return conn, event.handshake
    except BaseException:
        conn.close()
        raise


async def fetch_metadata_from(address: PeerAddress, info_hash: bytes, peer_id: bytes,
                              timeout: float = 8.0, info_hash_v2: bytes | None = None) -> bytes:
    """The verified info dict from one peer, fetched piece by piece (checked against
    `info_hash_v2` too when a v2 magnet gave it)."""
    conn, handshake = await open_with_extensions(address, info_hash, peer_id, timeout)
    try:
        if handshake.ut_metadata_id is None or handshake.metadata_size is None:
            raise ProtocolError("peer does not offer metadata (ut_metadata)")
        assembler = ext.MetadataAssembler(info_hash, handshake.metadata_size, info_hash_v2)
        for piece in assembler.missing():
            conn.session.send_extended(handshake.ut_metadata_id, ext.metadata_request_body(piece))
        conn.flush()
        async with asyncio.timeout(timeout):
            while assembler.missing():
                for event in await conn.receive():
                    if not isinstance(event, Extended) or event.ext_id != ext.OUR_UT_METADATA_ID:
                        continue
                    reply = ext.parse_metadata_message(event.body)
                    if reply.msg_type == ext.REJECT:
                        raise ProtocolError(f"peer rejected metadata piece {reply.piece}")
                    if reply.msg_type == ext.DATA:
                        assembler.add(reply.piece, reply.data)
        return assembler.result()
    finally:
        conn.close()


async def fetch_metadata(info_hash: bytes, peers: Sequence[PeerAddress], peer_id: bytes,
                         timeout: float = 8.0, info_hash_v2: bytes | None = None) -> bytes:
    """Ask several peers at once; the first verified answer wins."""
    pending: dict[asyncio.Task, PeerAddress] = {}
    queue = list(peers)
    errors: list[str] = []
    try:
        while queue or pending:
            while queue and len(pending) < PARALLEL_PEERS:
                address = queue.pop(0)
                task = asyncio.create_task(fetch_metadata_from(address, info_hash, peer_id, timeout, info_hash_v2))
                pending[task] = address
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            results = []
            for task in done:  # look at every finished task, so no error goes unretrieved
                address = pending.pop(task)
                try:
                    results.append(task.result())
                except (OSError, TorrentError) as exc:  # TimeoutError is an OSError
                    log.info("metadata from %s failed: %s", address, exc or type(exc).__name__)
                    errors.append(f"{address}: {exc or type(exc).__name__}")
            if results:
                return results[0]
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    raise NoPeersError("no peer gave the metadata" + (f" ({'; '.join(errors[:5])})" if errors else ""))
