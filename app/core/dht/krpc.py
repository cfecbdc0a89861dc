"""KRPC messages (BEP 5): bencoded dicts over UDP, queries and their replies.

Real nodes add keys of their own (a top-level `ip` and `v`, libtorrent's `r.p`,
an `r` dict beside an error), so decoding takes what it knows and ignores the
rest. Compact lists are cut to a bound: a reply is never trusted to be small.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from app.core import bencode
from app.core.errors import BencodeError, ProtocolError
from app.core.tracker import PeerAddress

ID_LENGTH = 20
NODE4_LENGTH = 26          # id, IPv4, port
NODE6_LENGTH = 38          # id, IPv6, port (BEP 32)
MAX_NODES = 16             # nodes taken from one reply (real ones carry 8)
MAX_VALUES = 200           # peers taken from one get_peers reply
MAX_TOKEN = 64

PING, FIND_NODE, GET_PEERS, ANNOUNCE_PEER = b"ping", b"find_node", b"get_peers", b"announce_peer"
GENERIC_ERROR, SERVER_ERROR, PROTOCOL_ERROR, METHOD_UNKNOWN = 201, 202, 203, 204


class KrpcError(ProtocolError):
    """A datagram that is not a KRPC message we can use."""


class NodeInfo(NamedTuple):
    """A DHT node: its 20-byte id and UDP address."""
    id: bytes
    host: str
    port: int

    @property
    def address(self) -> PeerAddress:
        return PeerAddress(self.host, self.port)


@dataclass(frozen=True)
class Query:
    tid: bytes
    method: bytes
    sender: bytes                       # the querying node's id
    target: bytes | None = None         # find_node's target or get_peers/announce_peer's info hash
    token: bytes | None = None
    port: int | None = None
    implied_port: bool = False
    read_only: bool = False             # BEP 43: do not add the sender to a routing table
    want: tuple[bytes, ...] = ()        # BEP 32: b"n4", b"n6"


@dataclass(frozen=True)
class Response:
    tid: bytes
    sender: bytes
    nodes: tuple[NodeInfo, ...] = ()
    nodes6: tuple[NodeInfo, ...] = ()
    values: tuple[PeerAddress, ...] = ()
    token: bytes | None = None
    seen_as: PeerAddress | None = None  # our address as the node sees it (top-level `ip`)


@dataclass(frozen=True)
class ErrorReply:
    tid: bytes
    code: int
    message: str


Message = Query | Response | ErrorReply


# --- compact formats --------------------------------------------------------------------

def encode_address(address: PeerAddress) -> bytes:
    """6 bytes for IPv4, 18 for IPv6: the IP then the port, big-endian."""
    return ipaddress.ip_address(address.host).packed + struct.pack(">H", address.port)


def decode_address(data: bytes) -> PeerAddress | None:
    if len(data) == 6:
        return PeerAddress(str(ipaddress.IPv4Address(data[:4])), struct.unpack(">H", data[4:])[0])
    if len(data) == 18:
        return PeerAddress(str(ipaddress.IPv6Address(data[:16])), struct.unpack(">H", data[16:])[0])
    return None


def encode_nodes(nodes: list[NodeInfo]) -> bytes:
    """Compact node info; the address family decides the size (26 or 38 bytes)."""
    return b"".join(n.id + encode_address(n.address) for n in nodes)


def decode_nodes(data: bytes, size: int = NODE4_LENGTH, limit: int = MAX_NODES) -> tuple[NodeInfo, ...]:
    """At most `limit` nodes; port-0 entries and a ragged tail are skipped."""
    nodes: list[NodeInfo] = []
    for start in range(0, len(data) - size + 1, size):
        if len(nodes) >= limit:
            break
        address = decode_address(data[start + ID_LENGTH:start + size])
        if address is not None and address.port:
            nodes.append(NodeInfo(data[start:start + ID_LENGTH], address.host, address.port))
    return tuple(nodes)


def _decode_values(value: object) -> tuple[PeerAddress, ...]:
    if not isinstance(value, list):
        return ()
    peers: dict[PeerAddress, None] = {}
    for item in value[:MAX_VALUES]:
        if isinstance(item, bytes):
            address = decode_address(item)
            if address is not None and address.port:
                peers[address] = None
    return tuple(peers)


# --- encoding ---------------------------------------------------------------------------

def encode_query(tid: bytes, method: bytes, args: dict[bytes, Any], read_only: bool = False) -> bytes:
    message: dict[bytes, Any] = {b"t": tid, b"y": b"q", b"q": method, b"a": args}
    if read_only:
        message[b"ro"] = 1
    return bencode.encode(message)


def ping(tid: bytes, own_id: bytes, read_only: bool = False) -> bytes:
    return encode_query(tid, PING, {b"id": own_id}, read_only)


def find_node(tid: bytes, own_id: bytes, target: bytes, read_only: bool = False,
              want: tuple[bytes, ...] = ()) -> bytes:
    return encode_query(tid, FIND_NODE, _wanting({b"id": own_id, b"target": target}, want), read_only)


def get_peers(tid: bytes, own_id: bytes, info_hash: bytes, read_only: bool = False,
              want: tuple[bytes, ...] = ()) -> bytes:
    return encode_query(tid, GET_PEERS, _wanting({b"id": own_id, b"info_hash": info_hash}, want), read_only)


def _wanting(args: dict[bytes, Any], want: tuple[bytes, ...]) -> dict[bytes, Any]:
    """BEP 32: `want` asks for nodes of other address families (n4, n6)."""
    if want:
        args[b"want"] = list(want)
    return args


def announce_peer(tid: bytes, own_id: bytes, info_hash: bytes, port: int, token: bytes, *,
                  implied_port: bool = False, read_only: bool = False) -> bytes:
    args: dict[bytes, Any] = {b"id": own_id, b"info_hash": info_hash, b"port": port, b"token": token}
    if implied_port:
        args[b"implied_port"] = 1
    return encode_query(tid, ANNOUNCE_PEER, args, read_only)


@dataclass(frozen=True)
class ReplyBody:
    """What our answer to a query carries beside our id."""
    nodes: list[NodeInfo] = field(default_factory=list)
    nodes6: list[NodeInfo] = field(default_factory=list)
    values: list[PeerAddress] = field(default_factory=list)
    token: bytes | None = None


def encode_response(tid: bytes, own_id: bytes, body: ReplyBody | None = None,
                    seen_as: PeerAddress | None = None) -> bytes:
    r: dict[bytes, Any] = {b"id": own_id}
    if body is not None:
        if body.nodes:
            r[b"nodes"] = encode_nodes(body.nodes)
        if body.nodes6:
            r[b"nodes6"] = encode_nodes(body.nodes6)
        if body.values:
            r[b"values"] = [encode_address(p) for p in body.values]
        if body.token is not None:
            r[b"token"] = body.token
    message: dict[bytes, Any] = {b"t": tid, b"y": b"r", b"r": r}
    if seen_as is not None:
        message[b"ip"] = encode_address(seen_as)
    return bencode.encode(message)


def encode_error(tid: bytes, code: int, text: str) -> bytes:
    return bencode.encode({b"t": tid, b"y": b"e", b"e": [code, text.encode()]})


# --- decoding ---------------------------------------------------------------------------

def decode_message(data: bytes) -> Message:
    """Any datagram: a typed message, or KrpcError."""
    try:
        message = bencode.decode(data)
    except BencodeError as exc:
        raise KrpcError(f"not bencode: {exc}") from None
    if not isinstance(message, dict):
        raise KrpcError("not a dictionary")
    tid, kind = message.get(b"t"), message.get(b"y")
    if not isinstance(tid, bytes) or not 0 < len(tid) <= 16:
        raise KrpcError("no transaction id")
    if kind == b"q":
        return _query(tid, message)
    if kind == b"r":
        return _response(tid, message)
    if kind == b"e":
        return _error(tid, message)
    raise KrpcError(f"unknown message type {kind!r}")


def _node_id(value: object) -> bytes:
    if not isinstance(value, bytes) or len(value) != ID_LENGTH:
        raise KrpcError("missing or malformed node id")
    return value


def _query(tid: bytes, message: dict[bytes, Any]) -> Query:
    method, args = message.get(b"q"), message.get(b"a")
    if not isinstance(method, bytes) or not isinstance(args, dict):
        raise KrpcError("query without method or arguments")
    sender = _node_id(args.get(b"id"))
    target = args.get(b"target") if method == FIND_NODE else args.get(b"info_hash")
    if method in (FIND_NODE, GET_PEERS, ANNOUNCE_PEER) and not (
            isinstance(target, bytes) and len(target) == ID_LENGTH):
        raise KrpcError(f"{method.decode('ascii', 'replace')} without a 20-byte target")
    token, port = args.get(b"token"), args.get(b"port")
    if method == ANNOUNCE_PEER and (not isinstance(token, bytes) or len(token) > MAX_TOKEN):
        raise KrpcError("announce_peer without a token")
    implied = args.get(b"implied_port") == 1
    if method == ANNOUNCE_PEER and not implied and not (isinstance(port, int) and 0 < port < 65536):
        raise KrpcError("announce_peer with a bad port")
    want = args.get(b"want")
    wants = tuple(w for w in want[:4] if isinstance(w, bytes)) if isinstance(want, list) else ()
    return Query(tid, method, sender, target if isinstance(target, bytes) else None,
                 token if isinstance(token, bytes) else None, port if isinstance(port, int) else None,
                 implied, message.get(b"ro") == 1, wants)


def _response(tid: bytes, message: dict[bytes, Any]) -> Response:
    r = message.get(b"r")
    if not isinstance(r, dict):
        raise KrpcError("reply without an r dictionary")
    sender = _node_id(r.get(b"id"))
    nodes, nodes6, token = r.get(b"nodes"), r.get(b"nodes6"), r.get(b"token")
    ip = message.get(b"ip")
    return Response(
        tid, sender,
        decode_nodes(nodes) if isinstance(nodes, bytes) else (),
        decode_nodes(nodes6, NODE6_LENGTH) if isinstance(nodes6, bytes) else (),
        _decode_values(r.get(b"values")),
        token if isinstance(token, bytes) and 0 < len(token) <= MAX_TOKEN else None,
        decode_address(ip) if isinstance(ip, bytes) else None)


def _error(tid: bytes, message: dict[bytes, Any]) -> ErrorReply:
    e = message.get(b"e")
    if isinstance(e, list) and len(e) >= 2 and isinstance(e[0], int):
        text = e[1].decode("utf-8", "replace") if isinstance(e[1], bytes) else ""
        return ErrorReply(tid, e[0], text[:200])
    return ErrorReply(tid, GENERIC_ERROR, "malformed error")
