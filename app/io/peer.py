"""One TCP connection to a peer: connect, handshake, then framed messages in and out."""

from __future__ import annotations

import asyncio
import logging
import os

from app.core.errors import ProtocolError
from app.core.extension import encode_extension_handshake
from app.core.peer_wire import (HANDSHAKE_LENGTH, Handshake, Message, MessageReader,
                                decode_handshake, encode_handshake)
from app.core.tracker import PeerAddress

log = logging.getLogger(__name__)

READ_CHUNK = 1 << 20


def new_peer_id() -> bytes:
    """A fresh id per run: seeders drop a second connection that reuses an id."""
    return b"-PY0100-" + os.urandom(12)


async def _read_handshake(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """The peer's 68 handshake bytes. A peer that hangs up first is a ConnectionError:
    IncompleteReadError is an EOFError, which click would report as Ctrl-C."""
    try:
        async with asyncio.timeout(timeout):
            return await reader.readexactly(HANDSHAKE_LENGTH)
    except asyncio.IncompleteReadError as exc:
        raise ConnectionError(f"peer closed the connection after {len(exc.partial)} "
                              f"of {HANDSHAKE_LENGTH} handshake bytes") from None


class PeerConnection:
    """A handshaken connection. Reads return whole messages; writes are buffered."""

    def __init__(self, address: PeerAddress, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, handshake: Handshake) -> None:
        self.address = address
        self.handshake = handshake
        self._reader = reader
        self._writer = writer
        self._framer = MessageReader()
        self._pending: list[Message] = []
        self._outbox: list[bytes] = []
        self._loop = asyncio.get_running_loop()

    @property
    def peer_id(self) -> bytes:
        return self.handshake.peer_id

    @property
    def local_host(self) -> str | None:
        sockname = self._writer.get_extra_info("sockname")
        return sockname[0] if sockname else None

    @classmethod
    async def open(cls, address: PeerAddress, info_hash: bytes, peer_id: bytes, *,
                   timeout: float = 5.0, metadata_size: int | None = None) -> "PeerConnection":
        """Connect and exchange handshakes. If the peer speaks BEP 10, our extension
        handshake goes out at once: it must be the first message we send."""
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(address.host, address.port, limit=READ_CHUNK)
        try:
            writer.write(encode_handshake(info_hash, peer_id))
            raw = await _read_handshake(reader, timeout)
            handshake = decode_handshake(raw)
            if handshake.info_hash != info_hash:
                raise ProtocolError("peer answered for a different torrent")
            if handshake.peer_id == peer_id:
                raise ProtocolError("connected to ourselves")
            conn = cls(address, reader, writer, handshake)
            if handshake.supports_extensions:
                conn.send(encode_extension_handshake(metadata_size))
            return conn
        except BaseException:
            writer.close()
            raise

    @classmethod
    async def accept(cls, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     info_hashes: dict[bytes, int | None], peer_id: bytes, *,
                     timeout: float = 5.0) -> "PeerConnection":
        """Answer an incoming connection for one of our torrents. `info_hashes`
        maps each hash we serve to its metadata size (for the extension handshake)."""
        try:
            raw = await _read_handshake(reader, timeout)
            handshake = decode_handshake(raw)
            if handshake.info_hash not in info_hashes:
                raise ProtocolError("peer asked for a torrent we do not serve")
            writer.write(encode_handshake(handshake.info_hash, peer_id))
            host, port = writer.get_extra_info("peername")[:2]
            conn = cls(PeerAddress(host, port), reader, writer, handshake)
            if handshake.supports_extensions:
                conn.send(encode_extension_handshake(info_hashes[handshake.info_hash]))
            return conn
        except BaseException:
            writer.close()
            raise

    async def receive(self, timeout: float | None = None) -> Message:
        """The next message; raises TimeoutError or ConnectionError."""
        if not self._pending:
            self._pending = await self.receive_batch(timeout)
            self._pending.reverse()
        return self._pending.pop()

    async def receive_batch(self, timeout: float | None = None) -> list[Message]:
        """Every message that one read completes (at least one), so the caller can
        answer a burst with a single write instead of one per message."""
        if self._pending:
            batch, self._pending = self._pending[::-1], []
            return batch
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
            # cancellation that races with a completed read, leaving the task alive.
            async with asyncio.timeout(timeout):
                data = await self._reader.read(READ_CHUNK)
            if not data:
                raise ConnectionError("peer closed the connection")
            batch = self._framer.feed(data)
            if batch:
                return batch

    def send(self, data: bytes) -> None:
        """Queue `data`; everything queued in one turn of the event loop goes out
        in one write (a syscall per 16 KiB block would dominate the CPU time)."""
        if not self._outbox:
            self._loop.call_soon(self.flush)
        self._outbox.append(data)

    def flush(self) -> None:
        if self._outbox and not self._writer.is_closing():
            self._writer.write(b"".join(self._outbox))
        self._outbox.clear()

    async def drain(self) -> None:
        self.flush()
        await self._writer.drain()

    def close(self) -> None:
        self.flush()
        self._writer.close()

    def __str__(self) -> str:
        return str(self.address)
