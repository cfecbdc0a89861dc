"""One peer connection as a state machine, with no socket and no clock (sans-IO).

Bytes go in (`receive_data`, or straight into `get_buffer`/`commit`), and
`next_events(now)` returns what they meant, already checked against the
protocol. Whatever the session has to send accumulates in `data_to_send()`.
The engine that owns the socket feeds one and drains the other.

The story of a connection, phase by phase:

  HANDSHAKE  both sides send 68 bytes: protocol, reserved bits, info hash, peer id.
             The reserved bits say which extensions each side speaks (BEP 10, BEP 6,
             BEP 52's v2); a v2 connection is one that agrees on the v2 info hash.
  BITFIELD   the one moment a peer may say which pieces it has: a bitfield, or
             have_all / have_none with the fast extension. Only extension
             messages (BEP 10) may come before it: a peer that starts from a
             magnet link fetches the metadata first, and only then knows how
             many pieces there are.
  RUNNING    have, choke/unchoke, interested/not interested, request, piece,
             cancel, and the fast extension's reject_request, allowed_fast, suggest;
             on v2 connections, hash request / hashes / hash reject at any time.
  CLOSED     after a protocol error; nothing more is accepted.

Four flags describe a running connection (BEP 3): `am_choking` (we refuse to
upload to them), `am_interested` (they have pieces we need), `peer_choking`
and `peer_interested`. Our interest is kept true to what they have: the
session sends `interested` when a bitfield or have makes the peer useful, and
`not interested` when we no longer need anything it has.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.core import extension as ext
from app.core import messages as m
from app.core.errors import ProtocolError
from app.core.peer_wire import (
    HANDSHAKE_LENGTH,
    Handshake,
    MessageReader,
    decode_handshake,
    encode_handshake,
    reserved_bits,
)
from app.core.pieces import Block, LocalPieces
from app.core.session_config import (
    HANDSHAKE_TIMEOUT,
    INACTIVITY_TIMEOUT,
    KEEPALIVE_SECONDS,
    MAX_CONTROL_PER_SECOND,
    MAX_REQUESTS_IN,
    Phase,
    SessionConfig,
)
from app.core.session_events import (
    BlockRejected,
    BlocksReceived,
    Choked,
    Event,
    ExtensionHandshakeReceived,
    HandshakeReceived,
    InterestChanged,
    PeerHas,
    Unchoked,
)
from app.core.session_uploads import ServingRequests
from app.core.session_v2 import HashMessages

__all__ = ["HANDSHAKE_TIMEOUT", "INACTIVITY_TIMEOUT", "KEEPALIVE_SECONDS", "MAX_CONTROL_PER_SECOND",
           "MAX_REQUESTS_IN", "BlockRejected", "BlocksReceived", "Choked", "Event", "ExtensionHandshakeReceived",
           "HandshakeReceived", "InterestChanged", "PeerHas", "Phase", "PeerSession", "SessionConfig", "Unchoked"]

class PeerSession(HashMessages, ServingRequests):
    """One connection's protocol state. `initiator`: we opened the connection,
    so our handshake goes first; otherwise we answer theirs. Serving their
    requests is app.core.session_uploads; BEP 52's hash messages, app.core.session_v2."""

    def __init__(self, config: SessionConfig, piece_sizes: Sequence[int] | None, local: LocalPieces | None, *,
                 initiator: bool, now: float) -> None:
        HashMessages.__init__(self)
        ServingRequests.__init__(self)
        self.config = config
        # Before a magnet link's metadata arrives the torrent's pieces are unknown:
        # the peer's bitfield and haves are then taken on trust and ignored.
        self.metadata_only = piece_sizes is None
        self.piece_sizes: Sequence[int] = piece_sizes or ()
        self.local = local or LocalPieces(0)
        self.phase = Phase.HANDSHAKE
        self.am_choking = True
        self.am_interested = False
        self.peer_choking = True
        self.peer_interested = False
        self.peer_handshake: Handshake | None = None
        self.peer_extensions: ext.ExtensionHandshake | None = None
        self.fast = False                       # both sides speak BEP 6
        self.peer_has = bytearray(len(self.piece_sizes))
        self.useful = 0                         # pieces they have that we need
        self.allowed_fast: set[int] = set()     # pieces we may request while choked
        self.connected_at = now
        self.last_received_at = now
        self.last_sent_at = now
        self.last_payload_at = now              # a block sent or received
        self.uploaded = 0
        self.downloaded = 0
        self._reader = MessageReader()
        self._initiator = initiator
        self._outbox: list[bytes] = []
        self._window_start = now
        self._window_count = 0
        if initiator:
            self._send(self._handshake_bytes())

    # --- bytes in ---------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the peer; `next_events` makes sense of them."""
        self._reader.write(data)

    def get_buffer(self) -> memoryview:
        """Zero-copy receive: the socket layer reads into this, then calls `commit`."""
        return self._reader.get_buffer()

    def commit(self, count: int) -> None:
        self._reader.commit(count)

    @property
    def buffered(self) -> int:
        """Bytes received and not yet made into events."""
        return self._reader.buffered

    def next_events(self, now: float) -> list[Event]:
        """Every event the buffered bytes complete. Raises ProtocolError, after
        which the connection must be closed."""
        if self.phase is Phase.CLOSED:
            raise ProtocolError("session is closed")
        try:
            return self._events(now)
        except ProtocolError:
            self.phase = Phase.CLOSED
            raise

    def _events(self, now: float) -> list[Event]:
        events: list[Event] = []
        if self.phase is Phase.HANDSHAKE:
            raw = self._reader.take_raw(HANDSHAKE_LENGTH)
            if raw is None:
                return events
            self.last_received_at = now
            events.append(self._on_handshake(decode_handshake(raw)))
        messages = self._reader.messages()
        if not messages:
            return events
        self.last_received_at = now
        control = received = 0
        piece_count = len(self.piece_sizes)
        piece_type, append = m.Piece, events.append
        run: BlocksReceived | None = None   # the blocks since the last other message
        for message in messages:
            kind = type(message)
            if kind is piece_type:   # the hot path, inline: most messages are blocks
                if message.index >= piece_count:   # type: ignore[union-attr]
                    raise ProtocolError(f"block of piece {message.index}, which does not exist")  # type: ignore[union-attr]
                size = len(message.block)   # type: ignore[union-attr]
                received += size
                if run is None:
                    run = BlocksReceived([])
                    append(run)
                run.blocks.append(message)   # type: ignore[arg-type]
                run.size += size
                continue
            run = None   # events keep the order of the messages
            if kind is m.Request:
                request = self._on_request(message)   # type: ignore[arg-type]
                if request is not None:
                    events.append(request)
                continue
            control += 1
            event = self._on_control(message)
            if event is not None:
                events.append(event)
        if received:
            self.downloaded += received
            self.last_payload_at = now
            if self.phase is Phase.BITFIELD:
                self.phase = Phase.RUNNING
        self._count_control(control + self._pointless_requests, now)
        return events

    def _count_control(self, count: int, now: float) -> None:
        """Flood guard: messages that carry no data, per second."""
        if now - self._window_start >= 1.0:
            self._window_start, self._window_count = now, 0
        self._window_count += count
        if self._window_count > MAX_CONTROL_PER_SECOND:
            raise ProtocolError(f"message flood ({self._window_count} messages in a second)")

    # --- the handshake ------------------------------------------------------------------

    def _handshake_bytes(self, info_hash: bytes | None = None) -> bytes:
        config = self.config
        reserved = reserved_bits(extensions=config.extensions, fast=config.fast, v2=config.v2,
                                 dht=config.dht_port is not None)
        return encode_handshake(info_hash or config.info_hash, config.peer_id, reserved)

    def _on_handshake(self, handshake: Handshake) -> HandshakeReceived:
        v2_hash = (self.config.info_hash_v2 or self.config.info_hash) if self.config.v2 else None
        if handshake.info_hash not in self.config.info_hashes:
            raise ProtocolError("peer answered for a different torrent" if self._initiator
                                else "peer asked for a torrent we do not serve")
        if handshake.peer_id == self.config.peer_id:
            raise ProtocolError("connected to ourselves")
        self.peer_handshake = handshake
        self.fast = self.config.fast and handshake.supports_fast
        # BEP 52 (as libtorrent does it): v2 when the handshake names the v2 hash; we answer
        # a peer that names a hybrid's v1 hash with the v2 bit with the v2 hash (the upgrade).
        self.v2 = v2_hash is not None and (handshake.info_hash == v2_hash
                                           or (not self._initiator and handshake.supports_v2))
        self.phase = Phase.BITFIELD
        if not self._initiator:
            self._send(self._handshake_bytes(v2_hash if self.v2 else None))
        body = self.config.extension_handshake
        if body is not None and self.config.extensions and handshake.supports_extensions:
            self._send(m.Extended(ext.HANDSHAKE_ID, body).encode())   # must be our first message
        self._send_pieces_summary()
        if self.config.dht_port and handshake.supports_dht:
            self._send(m.Port(self.config.dht_port).encode())   # after the bitfield: nothing may precede it
        return HandshakeReceived(handshake)

    def _send_pieces_summary(self) -> None:
        """Our one bitfield (or have_all/have_none), right after the handshake."""
        have = sum(self.local.have)
        if self.fast and have and have == len(self.local.have):
            self._send(m.HaveAll().encode())
        elif self.fast and have == 0:
            self._send(m.HaveNone().encode())
        elif have:
            self._send(m.Bitfield.of(self.local.have).encode())

    # --- messages -----------------------------------------------------------------------

    def _on_control(self, message: m.Message) -> Event | None:
        """Every message but piece and request, which are the hot path."""
        kind = type(message)
        if kind is m.KeepAlive or kind is m.Unknown:
            return None
        if kind is m.Port:   # BEP 5, at any time: their DHT node (for the engine to ping)
            return message if message.port else None   # type: ignore[union-attr,return-value]  # kind is Port
        if kind is m.Extended:
            return self._on_extended(message)   # type: ignore[arg-type]
        if message.ID in m.FAST_IDS and not self.fast:   # type: ignore[union-attr]
            raise ProtocolError(f"{kind.__name__} without the fast extension")
        if message.ID in m.HASH_IDS:   # type: ignore[union-attr]
            return self._on_hash_message(message)   # type: ignore[arg-type]
        if kind is m.Bitfield or kind is m.HaveAll or kind is m.HaveNone:
            return self._on_pieces_summary(message)
        self.phase = Phase.RUNNING
        if kind is m.Have:
            if self.metadata_only:
                return None
            return self._on_have(self._checked_index(message))   # type: ignore[arg-type]
        if kind is m.Choke:
            self.peer_choking = True
            return Choked(requests_dropped=not self.fast)
        if kind is m.Unchoke:
            self.peer_choking = False
            return Unchoked()
        if kind is m.Interested or kind is m.NotInterested:
            interested = kind is m.Interested
            if interested == self.peer_interested:
                return None
            self.peer_interested = interested
            return InterestChanged(interested)
        if kind is m.Cancel:
            self._on_cancel(message)   # type: ignore[arg-type]
            return None
        if kind is m.RejectRequest:
            return BlockRejected(self._checked_block(message))   # type: ignore[arg-type]
        if self.metadata_only and (kind is m.AllowedFast or kind is m.Suggest):
            return None   # hints about pieces we cannot know yet
        if kind is m.AllowedFast:
            self.allowed_fast.add(self._checked_index(message))   # type: ignore[arg-type]
            return message   # type: ignore[return-value]
        if kind is m.Suggest:
            self._checked_index(message)   # type: ignore[arg-type]
            return message   # type: ignore[return-value]
        raise AssertionError(f"unhandled message {message!r}")

    def _on_pieces_summary(self, message: m.Message) -> PeerHas | None:
        if self.phase is not Phase.BITFIELD:
            raise ProtocolError(f"{type(message).__name__} after other messages (it must come first)")
        self.phase = Phase.RUNNING
        if self.metadata_only:
            return None
        count = len(self.piece_sizes)
        if isinstance(message, m.Bitfield):
            self.peer_has = m.unpack_bits(message.bits, count)
        elif isinstance(message, m.HaveAll):
            self.peer_has = bytearray(b"\x01" * count)
        self.useful = m.count_common(self.peer_has, self.local.need)
        self._update_interest()
        return PeerHas([i for i in range(count) if self.peer_has[i]])

    def _on_have(self, index: int) -> PeerHas | None:
        if self.peer_has[index]:
            return None
        self.peer_has[index] = 1
        if self.local.need[index]:
            self.useful += 1
            self._update_interest()
        return PeerHas((index,))

    def _on_extended(self, message: m.Extended) -> Event | None:
        if message.ext_id == ext.HANDSHAKE_ID:
            self.peer_extensions = ext.parse_extension_handshake(message.body)
            return ExtensionHandshakeReceived(self.peer_extensions)
        return message   # extension messages leave the bitfield moment open (see the module notes)

    def _checked_index(self, message: m.Have | m.AllowedFast | m.Suggest) -> int:
        if message.index >= len(self.piece_sizes):
            raise ProtocolError(f"{type(message).__name__} for piece {message.index}, which does not exist")
        return message.index

    # --- our side ------------------------------------------------------------------------

    def _update_interest(self) -> None:
        want = self.useful > 0
        if want != self.am_interested:
            self.am_interested = want
            self._send((m.Interested() if want else m.NotInterested()).encode())

    def we_have(self, index: int) -> None:
        """A piece we needed verified (after LocalPieces.add): tell the peer, unless it
        has the piece already, and drop our interest if it has nothing else we need."""
        if self.phase is Phase.HANDSHAKE:
            return   # the bitfield sent after the handshake will include it
        if self.peer_has[index]:
            self.useful -= 1
            self._update_interest()
        else:
            self._send(m.Have(index).encode())

    def can_request(self, index: int) -> bool:
        return self.phase is Phase.RUNNING and bool(self.peer_has[index]) and (
            not self.peer_choking or index in self.allowed_fast)

    def request(self, blocks: Sequence[Block]) -> None:
        self._send(m.encode_requests(blocks))

    def cancel(self, block: Block) -> None:
        self._send(m.Cancel(*block).encode())

    def send_extended(self, ext_id: int, body: bytes) -> None:
        self._send(m.Extended(ext_id, body).encode())

    def _send(self, data: bytes) -> None:
        if data:
            self._outbox.append(data)

    def data_to_send(self, now: float) -> bytes:
        """Everything queued since the last call, as one write."""
        if not self._outbox:
            return b""
        data = b"".join(self._outbox)
        self._outbox.clear()
        self.last_sent_at = now
        return data

    # --- time ----------------------------------------------------------------------------

    def tick(self, now: float) -> str | None:
        """Timing rules: a keep-alive when we have been quiet, and the reason to
        drop the peer if it is past a deadline (None while it is fine)."""
        if self.phase is Phase.HANDSHAKE and now - self.connected_at > HANDSHAKE_TIMEOUT:
            return f"no handshake within {HANDSHAKE_TIMEOUT:.0f} s"
        if now - self.last_received_at > INACTIVITY_TIMEOUT:
            return f"nothing received for {INACTIVITY_TIMEOUT:.0f} s"
        if self.phase is not Phase.HANDSHAKE and now - self.last_sent_at > KEEPALIVE_SECONDS and not self._outbox:
            self._send(m.KeepAlive().encode())
        return None

    def idle_for(self, now: float) -> float:
        """Seconds since a block last moved either way (or since connecting)."""
        return now - self.last_payload_at
