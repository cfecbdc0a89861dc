"""Extension protocol (BEP 10) and metadata exchange (BEP 9, ut_metadata).

The metadata of a magnet link comes in 16 KiB pieces; `MetadataAssembler`
collects them and checks the whole against the link's hashes: SHA-1 against
btih, SHA-256 against btmh (BEP 52), both when a hybrid's link gives both.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from app.core import bencode
from app.core.errors import BencodeError, ProtocolError

HANDSHAKE_ID = 0                 # extended message id 0 is always the handshake
UT_METADATA = b"ut_metadata"
OUR_UT_METADATA_ID = 1           # the id peers must use when sending us ut_metadata
METADATA_PIECE_SIZE = 16 * 1024
UT_PEX = b"ut_pex"
OUR_UT_PEX_ID = 2                # the id peers must use when sending us ut_pex (app.core.pex)
MAX_METADATA_SIZE = 16 * 1024 * 1024   # bigger metadata than this is not a real torrent
REQUEST, DATA, REJECT = 0, 1, 2


@dataclass(frozen=True)
class ExtensionHandshake:
    ut_metadata_id: int | None   # the id the peer wants for ut_metadata; None if unsupported
    metadata_size: int | None
    client: str | None = None
    ut_pex_id: int | None = None     # the id the peer wants for ut_pex (BEP 11); None if unsupported
    listen_port: int | None = None   # `p`: the TCP port the peer listens on


def extension_handshake_body(metadata_size: int | None = None, pex: bool = False,
                             listen_port: int | None = None) -> bytes:
    """Our extension handshake (sent as extended message 0): the extensions we
    speak, with the ids peers must use for them, and the metadata size if known.
    `pex` offers ut_pex (BEP 11), never on a private torrent; `listen_port` (`p`) lets
    peers we dialled tell others where we listen."""
    body: dict[bytes, object] = {b"m": {UT_METADATA: OUR_UT_METADATA_ID, **({UT_PEX: OUR_UT_PEX_ID} if pex else {})}}
    if metadata_size is not None:
        body[b"metadata_size"] = metadata_size
    if listen_port is not None:
        body[b"p"] = listen_port
    return bencode.encode(body)


def parse_extension_handshake(body: bytes) -> ExtensionHandshake:
    d = bencode.decode_dict(body, ProtocolError, "extension handshake")
    m = d.get(b"m")
    ut_id = m.get(UT_METADATA) if isinstance(m, dict) else None
    if not isinstance(ut_id, int) or not 0 < ut_id < 256:
        ut_id = None
    pex_id = m.get(UT_PEX) if isinstance(m, dict) else None
    port = d.get(b"p")
    size = d.get(b"metadata_size")
    if not isinstance(size, int) or size <= 0:
        size = None
    client = d.get(b"v")
    return ExtensionHandshake(ut_id, size, client.decode("utf-8", "replace") if isinstance(client, bytes) else None,
                              pex_id if isinstance(pex_id, int) and 0 < pex_id < 256 else None,
                              port if isinstance(port, int) and 0 < port < 65536 else None)


def metadata_request_body(piece: int) -> bytes:
    return bencode.encode({b"msg_type": REQUEST, b"piece": piece})


def metadata_data_body(piece: int, total_size: int, data: bytes) -> bytes:
    return bencode.encode({b"msg_type": DATA, b"piece": piece, b"total_size": total_size}) + data


def metadata_reject_body(piece: int) -> bytes:
    return bencode.encode({b"msg_type": REJECT, b"piece": piece})


def metadata_reply_body(raw_info: bytes, piece: int) -> bytes:
    """Our answer to a ut_metadata request: the piece of our info dict, or a reject."""
    if not 0 <= piece < metadata_piece_count(len(raw_info)):
        return metadata_reject_body(piece)
    start = piece * METADATA_PIECE_SIZE
    return metadata_data_body(piece, len(raw_info), raw_info[start:start + METADATA_PIECE_SIZE])


@dataclass(frozen=True)
class MetadataMessage:
    msg_type: int
    piece: int
    total_size: int | None
    data: bytes


def parse_metadata_message(body: bytes) -> MetadataMessage:
    """A ut_metadata message: a bencoded dict, then (for data) the raw piece."""
    try:
        head, end = bencode.decode_prefix(body)
    except BencodeError as exc:
        raise ProtocolError(f"bad ut_metadata message: {exc}") from exc
    if not isinstance(head, dict):
        raise ProtocolError("ut_metadata message is not a dictionary")
    msg_type, piece = head.get(b"msg_type"), head.get(b"piece")
    if not isinstance(msg_type, int) or not isinstance(piece, int) or piece < 0:
        raise ProtocolError("ut_metadata message lacks msg_type or piece")
    total = head.get(b"total_size")
    return MetadataMessage(msg_type, piece, total if isinstance(total, int) else None, body[end:])


def metadata_piece_count(size: int) -> int:
    return -(-size // METADATA_PIECE_SIZE)


class MetadataAssembler:
    """Collects ut_metadata pieces until the whole info dict is here and verified.

    `info_hash` is the 20-byte hash the torrent is known by on the wire; `info_hash_v2`
    the full SHA-256 when the magnet has btmh. When `info_hash` is only the v2 hash
    truncated (a btmh-only link), there is no SHA-1 to check and only SHA-256 is."""

    def __init__(self, info_hash: bytes, size: int, info_hash_v2: bytes | None = None) -> None:
        if not 0 < size <= MAX_METADATA_SIZE:
            raise ProtocolError(f"metadata size {size} out of range")
        self.info_hash = info_hash
        self.info_hash_v2 = info_hash_v2
        self.size = size
        self.pieces: dict[int, bytes] = {}

    @property
    def piece_count(self) -> int:
        return metadata_piece_count(self.size)

    def missing(self) -> list[int]:
        return [i for i in range(self.piece_count) if i not in self.pieces]

    def add(self, piece: int, data: bytes) -> None:
        if not 0 <= piece < self.piece_count:
            raise ProtocolError(f"metadata piece {piece} out of range")
        expected = min(METADATA_PIECE_SIZE, self.size - piece * METADATA_PIECE_SIZE)
        if len(data) != expected:
            raise ProtocolError(f"metadata piece {piece} is {len(data)} bytes, expected {expected}")
        self.pieces[piece] = data

    def result(self) -> bytes:
        """The verified info dict bytes; a hash mismatch discards everything."""
        if self.missing():
            raise ProtocolError(f"metadata pieces {self.missing()} have not arrived")
        raw = b"".join(self.pieces[i] for i in range(self.piece_count))
        v2 = self.info_hash_v2
        if v2 is not None and hashlib.sha256(raw).digest() != v2:
            self.pieces.clear()
            raise ProtocolError("metadata does not match the v2 info hash (SHA-256)")
        if (v2 is None or self.info_hash != v2[:20]) and hashlib.sha1(raw).digest() != self.info_hash:
            self.pieces.clear()
            raise ProtocolError("metadata does not match the info hash")
        return raw
