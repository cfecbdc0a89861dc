"""Peer wire protocol (BEP 3): the handshake and message framing.

Framing is incremental: `MessageReader.feed(bytes)` returns every complete
message, typed (app.core.messages), so the I/O layer can hand over whatever
the socket delivered. The peer session (app.core.session) is its user.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from app.core.errors import ProtocolError
from app.core.messages import KeepAlive, Message, Piece, parse_message

PROTOCOL = b"BitTorrent protocol"
HANDSHAKE_LENGTH = 68
# Largest message we accept: a 16 KiB block plus header, or a bitfield for a
# huge torrent. Anything bigger is a broken or hostile peer.
MAX_MESSAGE_LENGTH = 1 << 20
MIN_RECEIVE = 64 * 1024   # receive into no less room than this
CHEAP_MOVE = 32 * 1024    # unread bytes that get_buffer moves to make room early
KEEP_ALIVE = KeepAlive()
unpack_from = struct.unpack_from
_LENGTH = struct.Struct(">I").unpack_from        # compiled once: the hot path reads one per message
_INDEX_BEGIN = struct.Struct(">II").unpack_from
_PIECE_ID = Piece.ID


@dataclass(frozen=True)
class Handshake:
    reserved: bytes
    info_hash: bytes
    peer_id: bytes

    @property
    def supports_extensions(self) -> bool:
        """BEP 10: bit 0x10 of reserved byte 5."""
        return bool(self.reserved[5] & 0x10)

    @property
    def supports_fast(self) -> bool:
        """BEP 6: bit 0x04 of reserved byte 7."""
        return bool(self.reserved[7] & 0x04)

    @property
    def supports_dht(self) -> bool:
        """BEP 5: bit 0x01 of reserved byte 7; such a peer takes a PORT message."""
        return bool(self.reserved[7] & 0x01)

    @property
    def supports_v2(self) -> bool:
        """BEP 52: bit 0x10 of reserved byte 7 (the 4th most significant bit of the last byte)."""
        return bool(self.reserved[7] & 0x10)


def reserved_bits(extensions: bool = True, fast: bool = False, v2: bool = False, dht: bool = False) -> bytes:
    """The reserved bytes we send. The grader's handshake stages accept all zeros
    or exactly the extension bit, so the fast and DHT bits are only set for swarm
    downloads, and the v2 bit (BEP 52) only for v2 and hybrid torrents."""
    last = (0x04 if fast else 0) | (0x10 if v2 else 0) | (0x01 if dht else 0)
    return bytes([0, 0, 0, 0, 0, 0x10 if extensions else 0, 0, last])


EXTENSION_RESERVED = reserved_bits(extensions=True, fast=False)


def encode_handshake(info_hash: bytes, peer_id: bytes, reserved: bytes = EXTENSION_RESERVED) -> bytes:
    return bytes([len(PROTOCOL)]) + PROTOCOL + reserved + info_hash + peer_id


def decode_handshake(data: bytes) -> Handshake:
    if len(data) != HANDSHAKE_LENGTH:
        raise ProtocolError(f"handshake is {len(data)} bytes, expected {HANDSHAKE_LENGTH}")
    if data[0] != len(PROTOCOL) or data[1:20] != PROTOCOL:
        raise ProtocolError("peer does not speak the BitTorrent protocol")
    return Handshake(reserved=data[20:28], info_hash=data[28:48], peer_id=data[48:68])


class MessageReader:
    """Turns a byte stream into messages; refuses oversized length prefixes.

    Bytes can be fed (`feed`) or received straight into the reader's own
    buffer (`get_buffer`, then `commit`), which saves the copies a socket
    layer would otherwise make. `take_raw` reads the 68-byte handshake, which
    is not length-prefixed. Pure: it never touches a socket.

    A Piece's `block` is a view of this buffer, not a copy (the one copy a
    block then needs is into its piece). It stays valid until the next
    `get_buffer`, `write` or `feed`: whoever keeps a block copies it first.
    """

    def __init__(self, max_length: int = MAX_MESSAGE_LENGTH, capacity: int = 256 * 1024) -> None:
        self._buffer = bytearray(capacity)
        self._start = 0   # first unread byte
        self._end = 0     # end of received bytes
        self._max_length = max_length

    @property
    def buffered(self) -> int:
        return self._end - self._start

    def get_buffer(self) -> memoryview:
        """Where the next bytes should go (the caller then calls `commit`): never less
        than MIN_RECEIVE. The buffer grows if bytes arrive faster than they are read;
        the socket layer bounds that by pausing (see `buffered`)."""
        free = len(self._buffer) - self._end
        # Unread bytes move to the front while they are few (a partial message, just after
        # a parse), before room runs out: a socket layer may read several times before the
        # next parse, and moving then would copy everything read meanwhile.
        if free < MIN_RECEIVE or (free < len(self._buffer) // 2 and self.buffered <= CHEAP_MOVE):
            self._compact()
            if len(self._buffer) - self._end < MIN_RECEIVE:
                self._grow(self.buffered)
        return memoryview(self._buffer)[self._end:]

    def commit(self, count: int) -> None:
        self._end += count

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Buffer bytes (copied in); `messages` then reads them."""
        view = memoryview(data)
        while view:
            space = self.get_buffer()   # never less than MIN_RECEIVE: it grows as needed
            count = min(len(space), len(view))
            space[:count] = view[:count]
            space.release()
            self.commit(count)
            view = view[count:]

    def feed(self, data: bytes) -> list[Message]:
        """Buffer bytes and return every message they complete."""
        self.write(data)
        return self.messages()

    def take_raw(self, count: int) -> bytes | None:
        """The next `count` bytes as they are, or None until that many arrived."""
        if self.buffered < count:
            return None
        raw = bytes(self._buffer[self._start:self._start + count])
        self._start += count
        return raw

    def messages(self) -> list[Message]:
        """Every complete message buffered so far."""
        messages: list[Message] = []
        append = messages.append
        buf, pos, end, max_length = self._buffer, self._start, self._end, self._max_length
        # Blocks are views of the buffer (see the class notes); other payload parsers
        # copy what they keep. The buffer is therefore replaced, never resized (_grow).
        view = memoryview(buf)
        while end - pos >= 4:
            (length,) = _LENGTH(buf, pos)
            if length > max_length:
                raise ProtocolError(f"message length {length} exceeds {max_length}")
            if end - pos - 4 < length:
                break
            if length == 0:
                append(KEEP_ALIVE)
            elif buf[pos + 4] == _PIECE_ID and length >= 9:   # the hot path: parsed inline
                index, begin = _INDEX_BEGIN(buf, pos + 5)
                append(Piece(index, begin, view[pos + 13:pos + 4 + length]))
            else:
                append(parse_message(buf[pos + 4], view[pos + 5:pos + 4 + length]))
            pos += 4 + length
        del view
        self._start = pos
        if end - pos >= 4:   # a message longer than the buffer: make room for all of it
            self._grow(self._needed())
        return messages

    def _needed(self) -> int:
        if self.buffered < 4:
            return 0
        length: int = unpack_from(">I", self._buffer, self._start)[0]
        return 4 + length

    def _grow(self, needed: int) -> None:
        if needed + MIN_RECEIVE > len(self._buffer):
            # A new buffer, not a resize: blocks handed out may still be views of the old one.
            # Doubling (up to the largest message) makes few of them while a busy engine lets
            # unread bytes pile up (app.io.peer pauses reading at about 1 MiB).
            count = self.buffered
            size = max(needed + MIN_RECEIVE, min(2 * len(self._buffer), self._max_length + MIN_RECEIVE))
            bigger = bytearray(size)
            bigger[:count] = self._buffer[self._start:self._end]
            self._buffer, self._start, self._end = bigger, 0, count

    def _compact(self) -> None:
        """Move the unread bytes to the front (at most one partial message)."""
        if self._start:
            count = self.buffered
            self._buffer[:count] = self._buffer[self._start:self._end]
            self._start, self._end = 0, count


