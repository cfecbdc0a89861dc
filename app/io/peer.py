"""One TCP connection to a peer, driven by a PeerSession (app.core.session).

This layer only moves bytes: the socket reads straight into the session's
buffer (asyncio.BufferedProtocol), so a block is copied once on its way
from the kernel to a message; whatever the session queues goes out in one
write per turn of the event loop. Every protocol decision is the session's.

An incoming connection's first bytes are read into a small buffer of its own instead:
a plain handshake (its first 20 bytes say so) goes on to the session as it is, and
anything else is taken for protocol encryption (MSE, app.core.mse), which is answered
first; the plain stream that follows goes to the session in the same way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, cast

from app.core import mse
from app.core.errors import ProtocolError
from app.core.peer_wire import Handshake
from app.core.pieces import LocalPieces
from app.core.session import Event, HandshakeReceived, PeerSession, SessionConfig
from app.core.tracker import PeerAddress

log = logging.getLogger(__name__)

Clock = Callable[[], float]
# Unread bytes at which a connection stops reading from its socket until its task
# catches up: what bounds a peer's receive buffer when we are slower than it.
PAUSE_AT = 1 << 20
START_READ = 4096   # the read buffer of an incoming connection's first bytes (plain or MSE)


class ClosedDuringHandshake(ConnectionError):
    """The peer hung up before the handshakes were done: it may refuse plain connections
    (then an encrypted one may work: PeerConnection.open's `encrypted`)."""


def new_peer_id() -> bytes:
    """A fresh id per run: seeders drop a second connection that reuses an id."""
    return b"-PY0100-" + os.urandom(12)


class _WireProtocol(asyncio.BufferedProtocol):
    """Bytes in (into the session's buffer), bytes out, and flow control both ways.
    Messages are parsed by the connection's task, not in these callbacks."""

    def __init__(self, session: PeerSession,
                 on_connect: Callable[[_WireProtocol], Coroutine[Any, Any, None]] | None = None,
                 initiator: mse.Initiator | None = None) -> None:
        self.session = session
        self.transport: asyncio.Transport | None = None
        self.closed: Exception | None = None
        self._on_connect = on_connect
        self._data_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self._read_paused = False
        self.unparsed = True   # bytes arrived since the session last parsed (see PeerConnection._next_events)
        # An incoming connection, or an outgoing one that starts with MSE, until the start
        # of its plain stream is known: reads go to _start_buffer and then to `_starting`
        # (the time it may take is the handshake's timeout). Other outgoing connections
        # are plain from the start.
        self._starting: mse.Incoming | mse.Initiator | None = initiator
        self._start_buffer: bytearray | None = None
        if on_connect is not None:
            self._starting = mse.Incoming(session.config.info_hashes)   # the names the session accepts
        if self._starting is not None:
            self._start_buffer = bytearray(START_READ)

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)   # uvloop's is not a subclass
        if isinstance(self._starting, mse.Initiator):
            self._send_mse(self._starting.hello())
        if self._on_connect is not None:  # an incoming connection: its handler runs as a task
            asyncio.get_running_loop().create_task(self._on_connect(self))

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._start_buffer is not None:
            return memoryview(self._start_buffer)
        return self.session.get_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        if self._starting is not None:
            assert self._start_buffer is not None
            self._start(bytes(self._start_buffer[:nbytes]))
            return
        self.session.commit(nbytes)
        self.unparsed = True
        if self.session.buffered >= PAUSE_AT and self.transport is not None and not self._read_paused:
            self._read_paused = True   # the connection's task has fallen behind (busy, or draining)
            self.transport.pause_reading()
        self._wake_reader()

    def _start(self, data: bytes) -> None:
        """A connection's first bytes: an incoming one's plain handshake or MSE to answer,
        or the answer to our own MSE handshake."""
        assert self._starting is not None and self.transport is not None
        try:
            reply = self._starting.receive(data)
        except ProtocolError as exc:
            self._starting = self._start_buffer = None
            self._set_closed(exc)
            self.transport.close()
            return
        if reply:
            self._send_mse(reply)
        plaintext = self._starting.plaintext
        if plaintext is not None:
            encrypted = self._starting.encrypted
            self._starting = self._start_buffer = None
            self._stream_starts(plaintext, encrypted)

    def _send_mse(self, data: bytes) -> None:
        """The MSE handshake's own bytes (app.io.trace does not decode them)."""
        assert self.transport is not None
        self.transport.write(data)

    def _stream_starts(self, data: bytes, encrypted: bool) -> None:
        """The plain stream's first bytes, after an MSE handshake if `encrypted`."""
        self.session.receive_data(data)
        self.unparsed = True
        self._wake_reader()

    @property
    def starting(self) -> bool:
        """Whether reads still go to the start of an incoming connection (not the session)."""
        return self._starting is not None

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
        if self._read_paused and self.session.buffered < PAUSE_AT // 2 and self.transport is not None:
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


# The class each new connection's protocol is made from. app.io.trace swaps in a
# subclass that decodes both directions; chosen per connection, never per message.
protocol_class: type[_WireProtocol] = _WireProtocol


class PeerConnection:
    """A connection whose handshake is done. `receive` returns the session's
    events; `flush` writes what the session queued."""

    def __init__(self, address: PeerAddress, protocol: _WireProtocol, clock: Clock) -> None:
        self.address = address
        self.session = protocol.session
        self._protocol = protocol
        assert protocol.transport is not None
        self._transport: asyncio.Transport = protocol.transport
        self._clock = clock
        self._pending: list[Event] = []
        self._flush_scheduled = False
        self._loop = asyncio.get_running_loop()

    @property
    def handshake(self) -> Handshake:
        assert self.session.peer_handshake is not None
        return self.session.peer_handshake

    @property
    def peer_id(self) -> bytes:
        return self.handshake.peer_id

    @property
    def local_host(self) -> str | None:
        sockname = self._transport.get_extra_info("sockname")
        return sockname[0] if sockname else None

    @classmethod
    async def open(cls, address: PeerAddress, config: SessionConfig, piece_sizes: Sequence[int] | None = None,
                   local: LocalPieces | None = None, *, timeout: float = 5.0,
                   clock: Clock = time.monotonic, encrypted: bool = False) -> PeerConnection:
        """Connect and exchange handshakes (the session sends ours first). `encrypted`:
        inside an MSE handshake first (plaintext method), for peers that refuse plain ones."""
        session = PeerSession(config, piece_sizes, local, initiator=True, now=clock())
        initiator = mse.Initiator(config.info_hash, session.data_to_send(clock())) if encrypted else None
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            _, protocol = await loop.create_connection(lambda: protocol_class(session, initiator=initiator),
                                                       address.host, address.port)
        return await cls(address, protocol, clock)._handshaken(timeout)

    @classmethod
    async def dial(cls, address: PeerAddress, config: SessionConfig, piece_sizes: Sequence[int] | None = None,
                   local: LocalPieces | None = None, *, timeout: float = 5.0,
                   clock: Clock = time.monotonic) -> PeerConnection:
        """`open`, plain first, as the engine dials peers; a peer that hangs up on the plain
        handshake is tried once more inside MSE (some take only encrypted connections,
        as libtorrent does with its incoming policy set to forced)."""
        try:
            return await cls.open(address, config, piece_sizes, local, timeout=timeout, clock=clock)
        except ClosedDuringHandshake:
            log.info("peer %s closed a plain handshake; trying protocol encryption", address)
            return await cls.open(address, config, piece_sizes, local, timeout=timeout, clock=clock, encrypted=True)

    @classmethod
    async def accept(cls, protocol: _WireProtocol, *, timeout: float = 5.0,
                     clock: Clock = time.monotonic) -> PeerConnection:
        """Answer an incoming connection whose protocol already holds a session."""
        assert protocol.transport is not None
        host, port = protocol.transport.get_extra_info("peername")[:2]
        return await cls(PeerAddress(host, port), protocol, clock)._handshaken(timeout)

    async def _handshaken(self, timeout: float) -> PeerConnection:
        """This connection once both handshakes are done; closed if they fail."""
        try:
            await self._await_handshake(timeout)
            return self
        except BaseException:
            self.close()
            raise

    async def _await_handshake(self, timeout: float) -> None:
        self.flush()
        async with asyncio.timeout(timeout):
            while True:
                try:
                    events = await self._next_events()
                except ConnectionError:
                    raise ClosedDuringHandshake(f"peer closed the connection during the handshake "
                                                f"({self.session.phase.value})") from None
                if events:
                    break
        assert isinstance(events[0], HandshakeReceived)
        self._pending = events[1:]
        self.flush()

    async def _next_events(self) -> list[Event]:
        protocol = self._protocol
        while True:
            if protocol.unparsed:   # else nothing new to parse: wait at once (once per read saved)
                protocol.unparsed = False
                events = self.session.next_events(self._clock())
                if events:
                    return events
            await protocol.wait_for_data()

    async def receive(self, timeout: float | None = None) -> list[Event]:
        """Every event received so far (at least one), so a burst of messages is
        answered with one write. Raises TimeoutError, ConnectionError or ProtocolError."""
        if self._pending:
            events, self._pending = self._pending, []
            return events
        if timeout is None:   # the engine's tick keeps the deadlines: no timer per read
            return await self._next_events()
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
        # cancellation that races with a completed read, leaving the task alive.
        async with asyncio.timeout(timeout):
            return await self._next_events()

    def flush(self) -> None:
        """Write what the session queued, in one write."""
        self._flush_scheduled = False
        data = self.session.data_to_send(self._clock())
        if data and not self._transport.is_closing():
            self._transport.write(data)

    def flush_soon(self) -> None:
        """After changing the session from outside this connection's task (a have
        for every peer, a choke round): one write at the end of this loop turn."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    async def drain(self) -> None:
        self.flush()
        await self._protocol.drain()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __str__(self) -> str:
        return str(self.address)


async def listen(host: str | None, port: int, new_session: Callable[[], PeerSession],
                 on_connect: Callable[[_WireProtocol], Coroutine[Any, Any, None]]) -> asyncio.Server:
    """Accept peers on host:port; each connection gets a fresh session and runs
    `on_connect` as a task."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: protocol_class(new_session(), on_connect), host, port)
