"""`--trace`: every protocol event as one line on stderr.

Tracing is off unless `enable` is called, and then costs only the connections
it watches. Nothing on the download path checks for it per message: when it is
on, new peer connections get `TracingProtocol` instead of the plain protocol
(app.io.peer chooses the class once per connection). It copies the bytes each
way and decodes them with its own readers, so the trace shows exactly what
crossed the wire, in order, and the session's codec is the one used.

Each line: seconds since tracing began, → sent or ← received, the peer or
tracker, the message (app.core.trace_format). In the default mode block
messages (request, piece, cancel, reject_request, have) are shown for the first
BLOCK_LINES of each kind and direction per peer, then as a running count at
most once a second.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import IO, Any
from urllib.parse import urlsplit

from app.core import bencode, mse
from app.core import trace_format as fmt
from app.core.errors import TorrentError
from app.core.messages import Extended
from app.core.peer_wire import HANDSHAKE_LENGTH, MessageReader, decode_handshake
from app.core.session import PeerSession
from app.core.tracker import AnnounceRequest, AnnounceResponse, PeerAddress, announce_url, parse_announce_response
from app.io import peer as peer_io

SENT, RECEIVED = "→", "←"
BLOCK_LINES = 4           # block messages of each kind and direction shown per peer, then counted
SUMMARY_SECONDS = 1.0     # at most one running-count line per peer this often

ACTIVE: Tracer | None = None   # the process's tracer; None: tracing is off


class Tracer:
    """Writes trace lines; `show_all` turns off the per-peer limit on block messages."""

    def __init__(self, stream: IO[str] | None = None, *, show_all: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.show_all = show_all
        self.clock = clock
        self.started = clock()

    def line(self, direction: str, who: str, text: str) -> None:
        stream = self.stream or sys.stderr   # looked up late: tests swap sys.stderr
        stream.write(f"{self.clock() - self.started:8.3f} {direction} {who} {text}\n")
        stream.flush()

    # --- trackers -----------------------------------------------------------------------

    def announce_sent(self, url: str, request: AnnounceRequest) -> None:
        if url.lower().startswith(("http://", "https://")):
            self.line(SENT, _tracker_name(url), fmt.format_announce_url(announce_url(url, request)))
        else:
            self.line(SENT, _tracker_name(url), fmt.format_announce_request(request) + " (BEP 15)")

    def announce_received(self, url: str, response: AnnounceResponse) -> None:
        self.line(RECEIVED, _tracker_name(url), fmt.format_announce_response(response))

    def announce_failed(self, url: str, error: Exception) -> None:
        self.line(RECEIVED, _tracker_name(url), f"announce failed: {error}")

    def announce_served(self, client: str, target: str, reply: bytes) -> None:
        """The embedded tracker's side (`tracker`, `demo`): a request in, our reply out."""
        self.line(RECEIVED, client, fmt.format_announce_url(target))
        try:
            text = fmt.format_announce_response(parse_announce_response(reply))
        except TorrentError as exc:
            text = f"announce refused: {exc}"
        self.line(SENT, client, text)

    # --- the DHT (BEP 5) ----------------------------------------------------------------

    def krpc(self, direction: str, address: PeerAddress, message: Mapping[bytes, object]) -> None:
        """One decoded KRPC message (`direction` is SENT or RECEIVED)."""
        self.line(direction, f"{address} (dht)", fmt.format_krpc(message))

    def krpc_datagram(self, direction: str, address: PeerAddress, data: bytes) -> None:
        """For the DHT's socket: one datagram as sent or received, decoded here."""
        try:
            message = bencode.decode(data)
        except TorrentError:
            message = None
        if isinstance(message, dict):
            self.krpc(direction, address, message)
        else:
            self.line(direction, f"{address} (dht)", f"not a KRPC message ({len(data)} bytes)")


class _Stream:
    """One direction of one connection: the handshake, then framed messages."""

    def __init__(self, direction: str) -> None:
        self.direction = direction
        self.reader = MessageReader(capacity=64 * 1024)
        self.start = bytearray()   # bytes before the end of the 68-byte handshake
        self.handshake_done = False
        self.broken = False
        self.extensions: dict[int, str] = {}   # ids the receiving side assigned (its `m` dict)


class WireTap:
    """Decodes both directions of one peer connection into trace lines."""

    def __init__(self, tracer: Tracer, who: str, session: PeerSession) -> None:
        self.tracer = tracer
        self.who = who
        self.session = session
        self.incoming = _Stream(RECEIVED)
        self.outgoing = _Stream(SENT)
        self.shown: Counter[str] = Counter()   # block messages shown, by kind and direction
        self.hidden: Counter[str] = Counter()   # and not shown, since the start
        self.unreported = 0                      # hidden since the last running count
        self.last_summary = tracer.clock()

    def received(self, data: bytes) -> None:
        self._decode(self.incoming, data, self.outgoing)

    def sent(self, data: bytes) -> None:
        self._decode(self.outgoing, data, self.incoming)

    def closed(self, error: Exception | None) -> None:
        self._summary()
        self.tracer.line("×", self.who, "connection closed" + (f" ({error})" if error else ""))

    def _decode(self, stream: _Stream, data: bytes, other: _Stream) -> None:
        if stream.broken or not data:
            return
        try:
            if not stream.handshake_done:   # the handshake is not length-prefixed
                stream.start += data
                if len(stream.start) < HANDSHAKE_LENGTH:
                    return
                stream.handshake_done = True
                raw, rest = bytes(stream.start[:HANDSHAKE_LENGTH]), bytes(stream.start[HANDSHAKE_LENGTH:])
                stream.start.clear()
                self.tracer.line(stream.direction, self.who, fmt.format_handshake(decode_handshake(raw)))
                messages = stream.reader.feed(rest) if rest else []
            else:
                messages = stream.reader.feed(data)
        except TorrentError as exc:
            stream.broken = True
            self.tracer.line(stream.direction, self.who, f"undecodable ({exc}); no more trace this way")
            return
        pieces = len(self.session.piece_sizes) or None
        for message in messages:
            if isinstance(message, Extended) and message.ext_id == 0:
                other.extensions = fmt.extension_ids(message.body)   # ids the other way must use
            if not self.tracer.show_all and fmt.is_block_message(message):
                kind = f"{fmt.message_name(message)} {stream.direction}"
                if self.shown[kind] >= BLOCK_LINES:
                    self.hidden[kind] += 1
                    self.unreported += 1
                    continue
                self.shown[kind] += 1
            self.tracer.line(stream.direction, self.who, fmt.format_message(message, stream.extensions, pieces))
        if self.unreported and self.tracer.clock() - self.last_summary >= SUMMARY_SECONDS:
            self._summary()

    def _summary(self) -> None:
        """The running count of block messages not shown (--trace=all shows them)."""
        self.last_summary = self.tracer.clock()
        if not self.unreported:
            return
        self.unreported = 0
        parts = ", ".join(f"{name} {count}" for name, count in sorted(self.hidden.items()))
        self.tracer.line("…", self.who, f"{self.hidden.total()} block messages so far not shown: {parts}")


class _TappedTransport:
    """The real transport, but every write is shown to the tap first."""

    def __init__(self, transport: asyncio.Transport, tap: WireTap) -> None:
        self._transport = transport
        self._tap = tap

    @property
    def untapped(self) -> asyncio.Transport:
        return self._transport

    def write(self, data: Any) -> None:
        self._tap.sent(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class TracingProtocol(peer_io._WireProtocol):
    """The peer protocol with a tap on both directions (used only while tracing)."""

    tap: WireTap | None = None
    _view: memoryview | None = None
    _initiator: mse.Initiator | None = None   # an outgoing connection that starts with MSE

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._initiator = self._starting if isinstance(self._starting, mse.Initiator) else None
        tracer = ACTIVE
        peername = transport.get_extra_info("peername")
        if tracer is not None and peername:
            self.tap = WireTap(tracer, str(PeerAddress(peername[0], peername[1])), self.session)
            transport = _TappedTransport(transport, self.tap)   # type: ignore[arg-type, assignment]
        super().connection_made(transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        self._view = super().get_buffer(sizehint)
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        # an incoming connection's first bytes are shown by _stream_starts, as the plain
        # stream they start (after an MSE handshake, not its encrypted bytes)
        if self.tap is not None and self._view is not None and not self.starting:
            self.tap.received(bytes(self._view[:nbytes]))
        self._view = None   # no export of the session's buffer may outlive the read
        super().buffer_updated(nbytes)

    def _send_mse(self, data: bytes) -> None:
        transport = self.transport
        if isinstance(transport, _TappedTransport):   # not part of the BitTorrent stream
            transport = transport.untapped
        assert transport is not None
        transport.write(data)

    def _stream_starts(self, data: bytes, encrypted: bool) -> None:
        if self.tap is not None:
            if encrypted:
                self.tap.tracer.line(RECEIVED, self.tap.who, "MSE handshake, plaintext selected")
            if self._initiator is not None:   # our handshake went out inside the MSE handshake
                self.tap.sent(self._initiator.ia)
            self.tap.received(data)
        super()._stream_starts(data, encrypted)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.tap is not None:
            self.tap.closed(exc)
            self.tap = None
        super().connection_lost(exc)


def enable(show_all: bool = False, stream: IO[str] | None = None) -> Tracer:
    """Turn tracing on for this process: new connections are traced from now on."""
    global ACTIVE
    ACTIVE = Tracer(stream, show_all=show_all)
    peer_io.protocol_class = TracingProtocol
    return ACTIVE


def disable() -> None:
    global ACTIVE
    ACTIVE = None
    peer_io.protocol_class = peer_io._WireProtocol


def _tracker_name(url: str) -> str:
    """The tracker's scheme and host; the path is on the request line."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
