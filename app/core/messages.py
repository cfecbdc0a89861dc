"""Peer wire messages (BEP 3, BEP 6, BEP 10, BEP 52) as small typed values.

Each message class knows its id, how to encode itself (`encode()`, the whole
length-prefixed frame) and how to read its payload (`parse(payload)`).
`parse_message(id, payload)` picks the class by id. Checks that need the
torrent (a piece index in range, a bitfield's length) belong to the peer
session, which knows the torrent; here only the shape of each payload is
checked.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from app.core.errors import ProtocolError

_HEADER = struct.Struct(">IB")       # length prefix and id
_INDEX = struct.Struct(">I")
_BLOCK = struct.Struct(">III")       # index, begin, length
_PIECE_HEADER = struct.Struct(">IBII")  # length prefix, id, index, begin
_REQUEST_FRAME = struct.Struct(">IBIII")
_HASH_HEADER = struct.Struct(">32sIIII")   # pieces root, base layer, index, length, proof layers
HASH_SIZE = 32

Bytes = bytes | bytearray | memoryview


def frame(message_id: int, payload: Bytes = b"") -> bytes:
    """A length-prefixed message: 4-byte length, 1-byte id, payload."""
    return _HEADER.pack(len(payload) + 1, message_id) + payload


class _Empty:
    """A message with no payload: choke, unchoke, interested, ..."""
    ID: ClassVar[int]
    __slots__ = ()

    def encode(self) -> bytes:
        return _HEADER.pack(1, self.ID)

    @classmethod
    def parse(cls, payload: Bytes) -> _Empty:
        if len(payload):
            raise ProtocolError(f"{cls.__name__} message with a {len(payload)}-byte payload")
        return cls()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return self.ID

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class KeepAlive(_Empty):
    ID = -1   # not a real id: a keep-alive is a zero-length frame

    def encode(self) -> bytes:
        return b"\0\0\0\0"


class Choke(_Empty):
    ID = 0


class Unchoke(_Empty):
    ID = 1


class Interested(_Empty):
    ID = 2


class NotInterested(_Empty):
    ID = 3


class HaveAll(_Empty):
    """BEP 6: instead of a bitfield with every bit set."""
    ID = 14


class HaveNone(_Empty):
    """BEP 6: instead of an empty bitfield."""
    ID = 15


@dataclass(frozen=True, slots=True)
class _PieceIndex:
    """A message whose payload is one piece index: have, suggest, allowed_fast."""
    ID: ClassVar[int]
    index: int

    def encode(self) -> bytes:
        return _HEADER.pack(5, self.ID) + _INDEX.pack(self.index)

    @classmethod
    def parse(cls, payload: Bytes) -> _PieceIndex:
        if len(payload) != 4:
            raise ProtocolError(f"{cls.__name__} message of {len(payload)} bytes, expected 4")
        return cls(_INDEX.unpack(payload)[0])


class Have(_PieceIndex):
    ID = 4
    __slots__ = ()


class Suggest(_PieceIndex):
    """BEP 6: the peer suggests we download this piece (it is cheap for it to serve)."""
    ID = 13
    __slots__ = ()


class AllowedFast(_PieceIndex):
    """BEP 6: we may request blocks of this piece even while choked."""
    ID = 17
    __slots__ = ()


@dataclass(frozen=True, slots=True)
class _BlockRef:
    """A message naming one block: request, cancel, reject_request."""
    ID: ClassVar[int]
    index: int
    begin: int
    length: int

    def encode(self) -> bytes:
        return _HEADER.pack(13, self.ID) + _BLOCK.pack(self.index, self.begin, self.length)

    @classmethod
    def parse(cls, payload: Bytes) -> _BlockRef:
        if len(payload) != 12:
            raise ProtocolError(f"{cls.__name__} message of {len(payload)} bytes, expected 12")
        return cls(*_BLOCK.unpack(payload))


class Request(_BlockRef):
    ID = 6
    __slots__ = ()


def encode_requests(blocks: Sequence[tuple[int, int, int]]) -> bytes:
    """Many requests as one write, without a message object each (the hot path)."""
    pack = _REQUEST_FRAME.pack
    return b"".join([pack(13, 6, index, begin, length) for index, begin, length in blocks])


class Cancel(_BlockRef):
    ID = 8
    __slots__ = ()


class RejectRequest(_BlockRef):
    """BEP 6: the peer will not answer this request."""
    ID = 16
    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Bitfield:
    """The pieces a peer has, one bit each, high bit first. `bits` is the raw payload;
    its length and spare bits are checked against the torrent by the session."""
    ID: ClassVar[int] = 5
    bits: bytes

    def encode(self) -> bytes:
        return frame(self.ID, self.bits)

    @classmethod
    def parse(cls, payload: Bytes) -> Bitfield:
        return cls(bytes(payload))

    @classmethod
    def of(cls, flags: Bytes) -> Bitfield:
        """From one byte (0 or 1) per piece, as the session keeps them."""
        return cls(pack_bits(flags))


class Piece:
    """A block of data. `block` may be a view of the receive buffer: copy it
    before the next bytes are received if it must be kept. A plain slotted class,
    not a frozen dataclass: one is made per 16 KiB received, and a frozen
    dataclass's __init__ costs three times as much."""
    ID: ClassVar[int] = 7
    __slots__ = ("index", "begin", "block")

    def __init__(self, index: int, begin: int, block: Bytes) -> None:
        self.index = index
        self.begin = begin
        self.block = block

    def __repr__(self) -> str:
        return f"Piece(index={self.index}, begin={self.begin}, block=<{len(self.block)} bytes>)"

    def encode(self) -> bytes:
        return self.header() + self.block

    def header(self) -> bytes:
        """The frame up to the block, so a sender can write the block without a copy."""
        return _PIECE_HEADER.pack(9 + len(self.block), self.ID, self.index, self.begin)

    @classmethod
    def parse(cls, payload: Bytes) -> Piece:
        if len(payload) < 8:
            raise ProtocolError("piece message too short")
        index, begin = struct.unpack_from(">II", payload)
        return cls(index, begin, memoryview(payload)[8:])

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Piece) and (self.index, self.begin) == (other.index, other.begin)
                and bytes(self.block) == bytes(other.block))

    def __hash__(self) -> int:
        return hash((self.index, self.begin, len(self.block)))


@dataclass(frozen=True, slots=True)
class Port:
    """BEP 5: the peer's DHT port."""
    ID: ClassVar[int] = 9
    port: int

    def encode(self) -> bytes:
        return frame(self.ID, struct.pack(">H", self.port))

    @classmethod
    def parse(cls, payload: Bytes) -> Port:
        if len(payload) != 2:
            raise ProtocolError(f"port message of {len(payload)} bytes, expected 2")
        return cls(struct.unpack(">H", payload)[0])


@dataclass(frozen=True, slots=True)
class Extended:
    """BEP 10: an extension message; `ext_id` 0 is the extension handshake."""
    ID: ClassVar[int] = 20
    ext_id: int
    body: bytes

    def encode(self) -> bytes:
        return frame(self.ID, bytes([self.ext_id]) + self.body)

    @classmethod
    def parse(cls, payload: Bytes) -> Extended:
        if not len(payload):
            raise ProtocolError("empty extended message")
        return cls(payload[0], bytes(payload[1:]))


@dataclass(frozen=True, slots=True)
class _HashHeader:
    """BEP 52: a range of one file's merkle tree. `base_layer` counts layers above
    the leaves (0 = the 16 KiB blocks); `index` and `length` pick nodes of that
    layer; `proof_layers` asks for the uncle hashes that tie them to the root.
    Whether the values make sense for a torrent is for app.core.hash_exchange."""
    ID: ClassVar[int]
    pieces_root: bytes
    base_layer: int
    index: int
    length: int
    proof_layers: int

    def header(self) -> bytes:
        if len(self.pieces_root) != HASH_SIZE:
            raise ValueError(f"pieces root of {len(self.pieces_root)} bytes")
        return _HASH_HEADER.pack(self.pieces_root, self.base_layer, self.index, self.length, self.proof_layers)

    @property
    def key(self) -> tuple[bytes, int, int, int, int]:
        """What a reply must repeat: the same for a request, its hashes and its reject."""
        return (self.pieces_root, self.base_layer, self.index, self.length, self.proof_layers)

    def encode(self) -> bytes:
        return frame(self.ID, self.header())

    @classmethod
    def parse(cls, payload: Bytes) -> _HashHeader:
        if len(payload) != _HASH_HEADER.size:
            raise ProtocolError(f"{cls.__name__} message of {len(payload)} bytes, expected {_HASH_HEADER.size}")
        return cls(*_HASH_HEADER.unpack(payload))


class HashRequest(_HashHeader):
    """BEP 52: ask for `length` hashes of `base_layer` from `index`, with proof."""
    ID = 21
    __slots__ = ()


class HashReject(_HashHeader):
    """BEP 52: the peer will not answer this hash request (same payload as the request)."""
    ID = 23
    __slots__ = ()


def uncle_count(length: int, proof_layers: int) -> int:
    """Uncle hashes a `hashes` reply carries after its `length` base hashes (BEP 52):
    the first log2(length) - 1 proof layers are implied by the base hashes themselves."""
    implied = max(length - 1, 0).bit_length() - 1    # log2 of length rounded up to a power of two, less one
    return max(0, proof_layers - implied)


@dataclass(frozen=True, slots=True)
class Hashes:
    """BEP 52: the answer to a hash request: its header, the `length` base-layer
    hashes, then one uncle hash per remaining proof layer, lowest first."""
    ID: ClassVar[int] = 22
    pieces_root: bytes
    base_layer: int
    index: int
    length: int
    proof_layers: int
    hashes: tuple[bytes, ...]

    @property
    def key(self) -> tuple[bytes, int, int, int, int]:
        return (self.pieces_root, self.base_layer, self.index, self.length, self.proof_layers)

    @property
    def base(self) -> tuple[bytes, ...]:
        return self.hashes[:self.length]

    @property
    def uncles(self) -> tuple[bytes, ...]:
        return self.hashes[self.length:]

    def encode(self) -> bytes:
        if any(len(h) != HASH_SIZE for h in self.hashes):
            raise ValueError("hashes must be 32 bytes each")
        return frame(self.ID, HashRequest(*self.key).header() + b"".join(self.hashes))

    @classmethod
    def parse(cls, payload: Bytes) -> Hashes:
        size = _HASH_HEADER.size
        if len(payload) < size or (len(payload) - size) % HASH_SIZE:
            raise ProtocolError(f"hashes message of {len(payload)} bytes (a {size}-byte header, then 32-byte hashes)")
        root, base, index, length, proof = _HASH_HEADER.unpack_from(payload)
        count = (len(payload) - size) // HASH_SIZE
        if count != length + uncle_count(length, proof):
            raise ProtocolError(f"hashes message with {count} hashes for length {length} and {proof} proof layers")
        data = bytes(payload[size:])
        return cls(root, base, index, length, proof,
                   tuple(data[i:i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)))


@dataclass(frozen=True, slots=True)
class Unknown:
    """An id this client does not speak (BEP 3: ignore it)."""
    id: int
    payload: bytes

    def encode(self) -> bytes:
        return frame(self.id, self.payload)


Message = (KeepAlive | Choke | Unchoke | Interested | NotInterested | Have | Bitfield | Request | Piece
           | Cancel | Port | Suggest | HaveAll | HaveNone | RejectRequest | AllowedFast | Extended | HashRequest
           | Hashes | HashReject | Unknown)

_CLASSES: dict[int, Any] = {cls.ID: cls for cls in (
    Choke, Unchoke, Interested, NotInterested, Have, Bitfield, Request, Piece, Cancel, Port,
    Suggest, HaveAll, HaveNone, RejectRequest, AllowedFast, Extended, HashRequest, Hashes, HashReject)}

FAST_IDS = frozenset({Suggest.ID, HaveAll.ID, HaveNone.ID, RejectRequest.ID, AllowedFast.ID})
HASH_IDS = frozenset({HashRequest.ID, Hashes.ID, HashReject.ID})   # BEP 52: only on v2 connections


def parse_message(message_id: int, payload: Bytes) -> Message:
    """The typed message for one frame's id and payload."""
    cls = _CLASSES.get(message_id)
    if cls is None:
        return Unknown(message_id, bytes(payload))
    message: Message = cls.parse(payload)
    return message


# --- bitfields ---------------------------------------------------------------------------
# The session keeps piece sets as one byte (0 or 1) per piece: indexing is fast and
# two sets combine with int.from_bytes. On the wire they are packed, 8 pieces a byte.

_UNPACK = [bytes((b >> (7 - i)) & 1 for i in range(8)) for b in range(256)]


def unpack_bits(bits: Bytes, piece_count: int) -> bytearray:
    """One byte per piece from a wire bitfield. Its length must fit the torrent
    and spare bits at the end must be zero (BEP 3)."""
    if len(bits) != (piece_count + 7) // 8:
        raise ProtocolError(f"bitfield of {len(bits)} bytes for {piece_count} pieces")
    flags = bytearray(b"".join(_UNPACK[b] for b in bits))
    if any(flags[piece_count:]):
        raise ProtocolError("bitfield has spare bits set")
    del flags[piece_count:]
    return flags


def pack_bits(flags: Bytes) -> bytes:
    """The wire bitfield for one byte (0 or 1) per piece."""
    padded = bytes(flags) + bytes(-len(flags) % 8)
    return int(padded.translate(_AS_DIGITS) or b"0", 2).to_bytes(len(padded) // 8, "big") if padded else b""


_AS_DIGITS = bytes.maketrans(b"\x00\x01", b"01")


def count_common(a: Bytes, b: Bytes) -> int:
    """How many pieces are set in both one-byte-per-piece sets."""
    return (int.from_bytes(a, "big") & int.from_bytes(b, "big")).bit_count()
