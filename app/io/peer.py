"""One TCP connection to a peer: connect, handshake, then framed messages in and out.

The socket reads straight into the framer's buffer (asyncio.BufferedProtocol
and MessageReader.get_buffer), so a block is copied once on its way from the
kernel to a message, instead of three times through a StreamReader.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Awaitable, Callable

from app.core.errors import ProtocolError
from app.core.extension import encode_extension_handshake
from app.core.peer_wire import (HANDSHAKE_LENGTH, MIN_RECEIVE, Handshake, Message, MessageReader,
                                decode_handshake, encode_handshake)
from app.core.tracker import PeerAddress

log = logging.getLogger(__name__)


def new_peer_id() -> bytes:
    """A fresh id per run: seeders drop a second connection that reuses an id."""
    return b"-PY0100-" + os.urandom(12)


class _WireProtocol(asyncio.BufferedProtocol):
    """Bytes in (into the framer's buffer), bytes out, and flow control both ways.
    Messages are parsed by the reader's task, not in these callbacks."""

    def __init__(self, on_connect: Callable[["_WireProtocol"], Awaitable[None]] | None = None) -> None:
        self.framer = MessageReader()
        self.transport: asyncio.Transport | None = None
        self.closed: Exception | None = None
        self._on_connect = on_connect
        self._data_waiter: asyncio.Future | None = None
        self._drain_waiter: asyncio.Future | None = None
        self._write_paused = False
        self._read_paused = False

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self._on_connect is not None:  # an incoming connection: its handler runs as a task
            asyncio.get_running_loop().create_task(self._on_connect(self))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.framer.get_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        self.framer.commit(nbytes)
        if self.framer.free_space() < MIN_RECEIVE:
            self._read_paused = True   # the reader's task has fallen behind
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self._set_closed(ConnectionError("peer closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._set_closed(exc or ConnectionError("connection closed"))
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    # used by PeerConnection
    async def wait_for_data(self) -> None:
        """Until more bytes arrive; raises if the connection is gone."""
        if self.closed is not None:
            raise self.closed
        if self._read_paused and self.framer.free_space() >= MIN_RECEIVE:
            self._read_paused = False
            self.transport.resume_reading()
        self._data_waiter = asyncio.get_running_loop().create_future()
        try:
            await self._data_waiter
        finally:
            self._data_waiter = None

    async def drain(self) -> None:
        if self.closed is not None:
            raise self.closed
        if self._write_paused:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None

    def _set_closed(self, exc: Exception) -> None:
        if self.closed is None:
            self.closed = exc
        self._wake_reader()

    def _wake_reader(self) -> None:
        if self._data_waiter is not None and not self._data_waiter.done():
            self._data_waiter.set_result(None)


async def _read_handshake(protocol: _WireProtocol, timeout: float) -> Handshake:
    """The peer's 68 handshake bytes (they are not length-prefixed like messages)."""
    async with asyncio.timeout(timeout):
        while (raw := protocol.framer.take_raw(HANDSHAKE_LENGTH)) is None:
            try:
                await protocol.wait_for_data()
            except ConnectionError:
                raise ConnectionError(f"peer closed the connection after {protocol.framer.buffered} "
                                      f"of {HANDSHAKE_LENGTH} handshake bytes") from None
    return decode_handshake(raw)


class PeerConnection:
    """A handshaken connection. Reads return whole messages; writes are batched."""

    def __init__(self, address: PeerAddress, protocol: _WireProtocol, handshake: Handshake) -> None:
        self.address = address
        self.handshake = handshake
        self._protocol = protocol
        self._transport = protocol.transport
        self._pending: list[Message] = []
        self._outbox: list[bytes] = []
        self._loop = asyncio.get_running_loop()

    @property
    def peer_id(self) -> bytes:
        return self.handshake.peer_id

    @property
    def local_host(self) -> str | None:
        sockname = self._transport.get_extra_info("sockname")
        return sockname[0] if sockname else None

    @classmethod
    async def open(cls, address: PeerAddress, info_hash: bytes, peer_id: bytes, *,
                   timeout: float = 5.0, metadata_size: int | None = None) -> "PeerConnection":
        """Connect and exchange handshakes. If the peer speaks BEP 10, our extension
        handshake goes out at once: it must be the first message we send."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            transport, protocol = await loop.create_connection(_WireProtocol, address.host, address.port)
        try:
            transport.write(encode_handshake(info_hash, peer_id))
            handshake = await _read_handshake(protocol, timeout)
            if handshake.info_hash != info_hash:
                raise ProtocolError("peer answered for a different torrent")
            if handshake.peer_id == peer_id:
                raise ProtocolError("connected to ourselves")
            conn = cls(address, protocol, handshake)
            if handshake.supports_extensions:
                conn.send(encode_extension_handshake(metadata_size))
            return conn
        except BaseException:
            transport.close()
            raise

    @classmethod
    async def accept(cls, protocol: _WireProtocol, info_hashes: dict[bytes, int | None],
                     peer_id: bytes, *, timeout: float = 5.0) -> "PeerConnection":
        """Answer an incoming connection for one of our torrents. `info_hashes`
        maps each hash we serve to its metadata size (for the extension handshake)."""
        try:
            handshake = await _read_handshake(protocol, timeout)
            if handshake.info_hash not in info_hashes:
                raise ProtocolError("peer asked for a torrent we do not serve")
            protocol.transport.write(encode_handshake(handshake.info_hash, peer_id))
            host, port = protocol.transport.get_extra_info("peername")[:2]
            conn = cls(PeerAddress(host, port), protocol, handshake)
            if handshake.supports_extensions:
                conn.send(encode_extension_handshake(info_hashes[handshake.info_hash]))
            return conn
        except BaseException:
            protocol.transport.close()
            raise

    async def receive(self, timeout: float | None = None) -> Message:
        """The next message; raises TimeoutError or ConnectionError."""
        if not self._pending:
            self._pending = await self.receive_batch(timeout)
            self._pending.reverse()
        return self._pending.pop()

    async def receive_batch(self, timeout: float | None = None) -> list[Message]:
        """Every message received so far (at least one), so the caller can answer
        a burst with a single write instead of one per message."""
        if self._pending:
            batch, self._pending = self._pending[::-1], []
            return batch
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
        # cancellation that races with a completed read, leaving the task alive.
        async with asyncio.timeout(timeout):
            while not (batch := self._protocol.framer.messages()):
                await self._protocol.wait_for_data()
        return batch

    def send(self, data: bytes) -> None:
        """Queue `data`; everything queued in one turn of the event loop goes out
        in one write (a syscall per 16 KiB block would dominate the CPU time)."""
        if not self._outbox:
            self._loop.call_soon(self.flush)
        self._outbox.append(data)

    def flush(self) -> None:
        if self._outbox and not self._transport.is_closing():
            self._transport.write(b"".join(self._outbox))
        self._outbox.clear()

    async def drain(self) -> None:
        self.flush()
        await self._protocol.drain()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __str__(self) -> str:
        return str(self.address)


async def listen(host: str | None, port: int,
                 on_connect: Callable[[_WireProtocol], Awaitable[None]]) -> asyncio.AbstractServer:
    """Accept peers on host:port; each new connection runs `on_connect` as a task."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: _WireProtocol(on_connect), host, port)
