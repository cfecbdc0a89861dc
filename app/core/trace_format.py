"""One protocol event as one line of text, for `--trace` (pure: values in, text out).

Every peer message (app.core.messages), the handshake, tracker announces and
replies, and KRPC messages (BEP 5) have a formatter here. Payload bytes are
never printed: a piece shows its index, offset and length, a bitfield how many
pieces it claims. The I/O side (app.io.trace) adds the time, the direction and
the peer, and decides which lines to show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl, unquote_to_bytes, urlsplit

from app.core import bencode
from app.core import extension as ext
from app.core import messages as m
from app.core.errors import TorrentError
from app.core.peer_wire import Handshake
from app.core.pex import parse_pex
from app.core.tracker import AnnounceRequest, AnnounceResponse, PeerAddress

# (byte, mask) of the reserved bits we can name, and the BEP that defines each.
RESERVED_BITS: tuple[tuple[int, int, str], ...] = (
    (5, 0x10, "extension_protocol (BEP 10)"),
    (7, 0x04, "fast (BEP 6)"),
    (7, 0x01, "dht (BEP 5)"),
    (7, 0x10, "v2 (BEP 52)"),
)
PEERS_SHOWN = 8          # a tracker reply lists this many peers, then "+N more"

# Wire names, as the BEPs spell them.
_NAMES: dict[type, str] = {
    m.KeepAlive: "keep-alive", m.Choke: "choke", m.Unchoke: "unchoke", m.Interested: "interested",
    m.NotInterested: "not_interested", m.HaveAll: "have_all", m.HaveNone: "have_none",
    m.Have: "have", m.Suggest: "suggest", m.AllowedFast: "allowed_fast",
    m.Request: "request", m.Cancel: "cancel", m.RejectRequest: "reject_request",
    m.Bitfield: "bitfield", m.Piece: "piece", m.Port: "port", m.Extended: "extended",
    m.HashRequest: "hash_request", m.Hashes: "hashes", m.HashReject: "hash_reject",
}
BLOCK_MESSAGES = (m.Request, m.Piece, m.Cancel, m.RejectRequest, m.Have)
_METADATA_TYPES = {ext.REQUEST: "request", ext.DATA: "data", ext.REJECT: "reject"}


def message_name(message: m.Message) -> str:
    if isinstance(message, m.Unknown):
        return f"unknown({message.id})"
    return _NAMES[type(message)]


def is_block_message(message: m.Message) -> bool:
    """Messages a download sends thousands of: shown only at first unless --trace=all."""
    return isinstance(message, BLOCK_MESSAGES)


def reserved_names(reserved: bytes) -> list[str]:
    """The reserved bits that are set, by name; unknown ones as byte.mask in hex."""
    names = []
    for byte, mask, name in RESERVED_BITS:
        if reserved[byte] & mask:
            names.append(name)
    for byte, value in enumerate(reserved):
        known = sum(mask for b, mask, _ in RESERVED_BITS if b == byte)
        if value & ~known & 0xFF:
            names.append(f"unknown bits {value & ~known & 0xFF:#04x} of byte {byte}")
    return names


def peer_id_text(peer_id: bytes) -> str:
    """Azureus-style ids (`-LT2010-...`) keep their readable client prefix; the rest is hex."""
    prefix = 0
    if len(peer_id) >= 8 and peer_id[0:1] == b"-" and peer_id[7:8] == b"-" and peer_id[1:7].isascii() \
            and peer_id[1:7].isalnum():
        prefix = 8
    return peer_id[:prefix].decode("ascii") + peer_id[prefix:].hex()


def format_handshake(handshake: Handshake) -> str:
    bits = reserved_names(handshake.reserved)
    return (f"handshake info_hash={handshake.info_hash.hex()} peer_id={peer_id_text(handshake.peer_id)} "
            f"reserved={handshake.reserved.hex()} [{', '.join(bits) or 'no extensions'}]")


def format_message(message: m.Message, extensions: Mapping[int, str] | None = None,
                   piece_count: int | None = None) -> str:
    """One message. `extensions` names extended-message ids (the `m` dict of the side
    that will receive the message); `piece_count` lets a bitfield show its share."""
    name = message_name(message)
    if isinstance(message, (m.Request, m.Cancel, m.RejectRequest)):
        return f"{name} index={message.index} begin={message.begin} length={message.length}"
    if isinstance(message, m.Piece):
        return f"{name} index={message.index} begin={message.begin} length={len(message.block)}"
    if isinstance(message, (m.Have, m.Suggest, m.AllowedFast)):
        return f"{name} index={message.index}"
    if isinstance(message, m.Bitfield):
        return f"{name} {_bitfield_summary(message.bits, piece_count)}"
    if isinstance(message, m.Port):
        return f"{name} dht_port={message.port}"
    if isinstance(message, m.Extended):
        return format_extended(message, extensions or {})
    if isinstance(message, (m.HashRequest, m.Hashes, m.HashReject)):
        line = (f"{name} pieces_root={message.pieces_root.hex()} base_layer={message.base_layer} "
                f"index={message.index} length={message.length} proof_layers={message.proof_layers}")
        return line + (f" ({len(message.hashes)} hashes)" if isinstance(message, m.Hashes) else "")
    if isinstance(message, m.Unknown):
        return f"{name} {len(message.payload)} bytes (ignored, BEP 3)"
    return name


def _bitfield_summary(bits: bytes, piece_count: int | None) -> str:
    """Before a magnet link's metadata the piece count is unknown: then only the bits set."""
    have = sum(bin(b).count("1") for b in bits)
    size = f"{len(bits)} byte{'s' if len(bits) != 1 else ''}"
    if piece_count is None:
        return f"has {have} pieces ({size}; the piece count is not known yet)"
    return f"has {have} of {piece_count} pieces ({size})"


def format_extended(message: m.Extended, extensions: Mapping[int, str]) -> str:
    """BEP 10: the handshake shows its `m` dict; ut_metadata (BEP 9) messages are decoded."""
    if message.ext_id == ext.HANDSHAKE_ID:
        return "extended handshake " + _extension_handshake_fields(message.body)
    name = extensions.get(message.ext_id)
    if name == "ut_metadata":
        try:
            meta = ext.parse_metadata_message(message.body)
        except TorrentError:
            return f"ut_metadata (id {message.ext_id}) undecodable, {len(message.body)} bytes"
        kind = _METADATA_TYPES.get(meta.msg_type, f"msg_type={meta.msg_type}")
        text = f"ut_metadata {kind} piece={meta.piece}"
        if meta.total_size is not None:
            text += f" total_size={meta.total_size}"
        if meta.data:
            text += f" ({len(meta.data)} bytes)"
        return text
    if name == "ut_pex":
        return _pex_fields(message)
    label = name or "unnegotiated"
    return f"extended id={message.ext_id} ({label}) {len(message.body)} bytes"


def _pex_fields(message: m.Extended) -> str:
    """BEP 11: the peers the sender connected to (added) and left (dropped) since its last one."""
    try:
        pex = parse_pex(message.body)
    except TorrentError:
        return f"ut_pex (id {message.ext_id}) undecodable, {len(message.body)} bytes"
    return f"ut_pex added={format_peers(pex.added)} dropped={format_peers(pex.dropped)}"


def _extension_handshake_fields(body: bytes) -> str:
    try:
        value = bencode.decode(body)
    except TorrentError:
        return f"undecodable, {len(body)} bytes"
    if not isinstance(value, dict):
        return "not a dictionary"
    fields = []
    supported = value.get(b"m")
    if isinstance(supported, dict):
        pairs = ", ".join(f"{_text(k)}: {v}" for k, v in sorted(supported.items(), key=lambda kv: str(kv[1])))
        fields.append(f"m={{{pairs}}}")
    for key in (b"metadata_size", b"v", b"p", b"reqq"):
        if key in value:
            fields.append(f"{_text(key)}={_short(value[key])}")
    return " ".join(fields) or "{}"


def extension_ids(body: bytes) -> dict[int, str]:
    """id -> name from an extension handshake's `m` dict (empty if it does not parse)."""
    try:
        value = bencode.decode(body)
    except TorrentError:
        return {}
    supported = value.get(b"m") if isinstance(value, dict) else None
    if not isinstance(supported, dict):
        return {}
    return {v: _text(k) for k, v in supported.items() if isinstance(v, int) and v > 0}


# --- trackers ---------------------------------------------------------------------------

def format_announce_url(url: str) -> str:
    """An HTTP announce URL's path and query, decoded: raw bytes as hex, the rest as is."""
    parts = urlsplit(url)
    fields = []
    for raw in parts.query.split("&"):
        if not raw:
            continue
        key, _, value = raw.partition("=")
        if key in ("info_hash", "peer_id", "trackerid"):
            data = unquote_to_bytes(value)
            fields.append(f"{key}={peer_id_text(data) if key == 'peer_id' else data.hex()}")
        else:
            fields.extend(f"{k}={v}" for k, v in parse_qsl(raw, keep_blank_values=True))
    return f"GET {parts.path or '/'} " + " ".join(fields)


def format_announce_request(request: AnnounceRequest) -> str:
    """A UDP announce (BEP 15): the same fields as the HTTP query, in a binary packet."""
    text = (f"announce info_hash={request.info_hash.hex()} peer_id={peer_id_text(request.peer_id)} "
            f"port={request.port} uploaded={request.uploaded} downloaded={request.downloaded} "
            f"left={request.left} numwant={request.numwant}")
    return text + (f" event={request.event}" if request.event else "")


def format_announce_response(response: AnnounceResponse) -> str:
    text = f"announce reply interval={response.interval}"
    if response.min_interval is not None:
        text += f" min_interval={response.min_interval}"
    if response.complete is not None or response.incomplete is not None:
        text += f" seeders={response.complete} leechers={response.incomplete}"
    return text + " " + format_peers(response.peers)


def format_peers(peers: Sequence[PeerAddress]) -> str:
    shown = ", ".join(str(p) for p in peers[:PEERS_SHOWN])
    more = f", +{len(peers) - PEERS_SHOWN} more" if len(peers) > PEERS_SHOWN else ""
    return f"peers={len(peers)} [{shown}{more}]"


# --- KRPC (BEP 5), for the DHT --------------------------------------------------------------

def format_krpc(message: Mapping[bytes, object]) -> str:
    """A decoded KRPC dict: query (`y=q`), response (`r`) or error (`e`). Node ids and
    tokens as short hex; compact node and peer lists as counts."""
    kind = message.get(b"y")
    tid = message.get(b"t")
    tid_text = tid.hex() if isinstance(tid, bytes) else "?"
    if kind == b"q":
        args = message.get(b"a")
        return (f"krpc query {_text(message.get(b'q', b'?'))} t={tid_text} "
                f"{_krpc_fields(args if isinstance(args, dict) else {})}").rstrip()
    if kind == b"r":
        values = message.get(b"r")
        return f"krpc response t={tid_text} {_krpc_fields(values if isinstance(values, dict) else {})}".rstrip()
    if kind == b"e":
        return f"krpc error t={tid_text} {_short(message.get(b'e'))}"
    return f"krpc ? t={tid_text}"


def _krpc_fields(values: Mapping[bytes, object]) -> str:
    fields = []
    for key, value in sorted(values.items()):
        name = _text(key)
        if name == "nodes" and isinstance(value, bytes):
            fields.append(f"nodes={len(value) // 26}")
        elif name == "values" and isinstance(value, list):
            fields.append(f"values={len(value)} peers")
        else:
            fields.append(f"{name}={_short(value)}")
    return " ".join(fields)


# --- helpers ------------------------------------------------------------------------------

def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _short(value: object, limit: int = 40) -> str:
    """A bencoded value in a few characters: bytes as text if printable, else hex."""
    if isinstance(value, bytes):
        text = value.decode("ascii", "replace") if value.isascii() and value.decode("ascii").isprintable() \
            else value.hex()
        return text if len(text) <= limit else text[:limit] + "…"
    if isinstance(value, list):
        return f"[{len(value)} items]"
    if isinstance(value, dict):
        return "{" + ", ".join(_text(k) for k in value) + "}"
    return str(value)
