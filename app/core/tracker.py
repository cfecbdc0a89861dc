"""HTTP tracker codec (BEP 3, BEP 23 compact peers, BEP 7 IPv6 peers).

`announce_url` builds the GET URL; `parse_announce_response` reads the reply.
The info hash and peer id are raw bytes and must be percent-encoded byte by
byte: handing them to an HTTP library as text would mangle them.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import NamedTuple, TypeVar
from urllib.parse import quote_from_bytes, urlencode

from app.core import bencode
from app.core.errors import TrackerError

DEFAULT_INTERVAL = 1800
T = TypeVar("T")


class PeerAddress(NamedTuple):
    """A peer's IP and port. A named tuple: it keys the engine's per-peer tables,
    and a tuple hashes several times faster than a frozen dataclass."""
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_peer_address(text: str) -> PeerAddress:
    """`ip:port` or `[ipv6]:port`."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ValueError(f"bad peer address {text!r}; expected ip:port")
    return PeerAddress(host, int(port))


@dataclass(frozen=True)
class AnnounceRequest:
    info_hash: bytes
    peer_id: bytes
    port: int
    uploaded: int = 0
    downloaded: int = 0
    left: int = 1     # trackers refuse left=0 peers a peer list; 1 is the magnet placeholder
    event: str = ""   # "", "started", "completed" or "stopped"
    numwant: int = 50
    tracker_id: bytes | None = None
    key: int = 0


@dataclass(frozen=True)
class AnnounceResponse:
    peers: tuple[PeerAddress, ...]
    interval: int = DEFAULT_INTERVAL
    min_interval: int | None = None
    tracker_id: bytes | None = None
    warning: str | None = None
    complete: int | None = None
    incomplete: int | None = None


def announce_url(base: str, request: AnnounceRequest) -> str:
    """The full announce URL for an HTTP(S) tracker."""
    query = ("info_hash=" + quote_from_bytes(request.info_hash, safe="")
             + "&peer_id=" + quote_from_bytes(request.peer_id, safe=""))
    params: dict[str, int | str] = {"port": request.port, "uploaded": request.uploaded,
                                    "downloaded": request.downloaded, "left": request.left,
                                    "compact": 1, "numwant": request.numwant}
    if request.key:
        params["key"] = f"{request.key:08x}"
    if request.event:
        params["event"] = request.event
    query += "&" + urlencode(params)
    if request.tracker_id is not None:
        query += "&trackerid=" + quote_from_bytes(request.tracker_id, safe="")
    return base + ("&" if "?" in base else "?") + query


def parse_announce_response(body: bytes) -> AnnounceResponse:
    """Parse a tracker reply; `failure reason` raises TrackerError."""
    reply = bencode.decode_dict(body, TrackerError, "tracker reply")
    if b"failure reason" in reply:
        raise TrackerError("tracker refused: " + _text(reply[b"failure reason"]))
    peers = parse_peers(reply.get(b"peers", b"")) + parse_compact_peers6(reply.get(b"peers6", b""))
    return AnnounceResponse(
        peers=peers,
        interval=_positive_int(reply.get(b"interval"), 0) or DEFAULT_INTERVAL,
        min_interval=_positive_int(reply.get(b"min interval"), None),
        tracker_id=reply.get(b"tracker id") if isinstance(reply.get(b"tracker id"), bytes) else None,
        warning=_text(reply[b"warning message"]) if b"warning message" in reply else None,
        complete=_positive_int(reply.get(b"complete"), None),
        incomplete=_positive_int(reply.get(b"incomplete"), None),
    )


def parse_peers(value: object) -> tuple[PeerAddress, ...]:
    """`peers` is compact (6 bytes each) or a list of {ip, port} dicts."""
    if isinstance(value, bytes):
        return parse_compact_peers(value)
    if isinstance(value, list):
        return tuple(p for p in (_dict_peer(item) for item in value) if p)
    raise TrackerError("tracker 'peers' is neither a string nor a list")


def parse_compact_peers(data: bytes) -> tuple[PeerAddress, ...]:
    if len(data) % 6:
        raise TrackerError(f"compact peers length {len(data)} is not a multiple of 6")
    return tuple(PeerAddress(str(ipaddress.IPv4Address(data[i:i + 4])),
                             struct.unpack_from(">H", data, i + 4)[0])
                 for i in range(0, len(data), 6))


def parse_compact_peers6(data: object) -> tuple[PeerAddress, ...]:
    if not isinstance(data, bytes) or len(data) % 18:
        raise TrackerError("compact peers6 length is not a multiple of 18")
    return tuple(PeerAddress(str(ipaddress.IPv6Address(data[i:i + 16])),
                             struct.unpack_from(">H", data, i + 16)[0])
                 for i in range(0, len(data), 18))


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost", "0.0.0.0", "::"})


def is_own_address(peer: PeerAddress, our_port: int | None,
                   our_hosts: frozenset[str] | set[str] = LOOPBACK_HOSTS) -> bool:
    """Trackers list the announcing client too (opentracker does): never dial ourselves."""
    return peer.port == our_port and peer.host in our_hosts


def encode_compact_peers(peers: list[PeerAddress]) -> bytes:
    """The inverse of parse_compact_peers (IPv4 only), for trackers we run."""
    return b"".join(ipaddress.IPv4Address(p.host).packed + struct.pack(">H", p.port) for p in peers)


def _dict_peer(item: object) -> PeerAddress | None:
    if not isinstance(item, dict):
        return None
    ip, port = item.get(b"ip"), item.get(b"port")
    if not isinstance(ip, bytes) or not isinstance(port, int) or not 0 < port < 65536:
        return None
    try:
        return PeerAddress(str(ipaddress.ip_address(ip.decode("ascii"))), port)
    except (UnicodeDecodeError, ValueError):
        return None  # hostnames are rare and would need a resolver; skip them


def _positive_int(value: object, default: T) -> int | T:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
