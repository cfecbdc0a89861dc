"""An HTTP tracker's brain (BEP 3, BEP 7, BEP 23): an in-memory swarm registry.

Pure: the caller hands in the raw query string, the client's IP and the time;
it gets back the bencoded reply. Serving it is app/io/tracker_server.py's job.
Bad requests are answered with a bencoded `failure reason`, as clients expect,
rather than an HTTP error they would not show to the user.
"""

from __future__ import annotations

import ipaddress
import random
import struct
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

from app.core import bencode
from app.core.tracker import PeerAddress, encode_compact_peers

HASH_LENGTH = 20
DEFAULT_INTERVAL = 60
DEFAULT_NUMWANT = 50
MAX_NUMWANT = 200                  # a reply stays small whatever the client asks for
EVENTS = ("", "started", "completed", "stopped", "paused")  # "paused": BEP 21 partial seeds


class BadAnnounce(ValueError):
    """A request the tracker refuses; the message becomes the `failure reason`."""


@dataclass(frozen=True)
class Announce:
    """One validated announce."""
    info_hash: bytes
    peer_id: bytes
    port: int
    left: int
    event: str = ""
    compact: bool = True
    numwant: int = DEFAULT_NUMWANT
    no_peer_id: bool = False
    uploaded: int = 0
    downloaded: int = 0


@dataclass
class PeerEntry:
    peer_id: bytes
    address: PeerAddress
    left: int
    last_seen: float

    @property
    def is_seed(self) -> bool:
        return self.left == 0


def parse_query(raw_query: bytes) -> dict[str, list[bytes]]:
    """Split a query string into names and raw byte values. info_hash and peer_id are
    binary, so values are percent-decoded to bytes and never through a text codec."""
    params: dict[str, list[bytes]] = {}
    for pair in raw_query.split(b"&"):
        if not pair:
            continue
        name, _, value = pair.partition(b"=")
        key = unquote_to_bytes(name.replace(b"+", b" ")).decode("latin-1")
        params.setdefault(key, []).append(unquote_to_bytes(value.replace(b"+", b" ")))
    return params


def parse_announce(params: dict[str, list[bytes]]) -> Announce:
    """Validate the fields BEP 3 requires; raise BadAnnounce naming the first bad one."""
    info_hash = _binary_id(params, "info_hash")
    peer_id = _binary_id(params, "peer_id")
    port = _number(params, "port", None)
    if not 1 <= port <= 65535:
        raise BadAnnounce(f"port {port} is out of range")
    event = _text(params, "event", "")
    if event not in EVENTS:
        raise BadAnnounce(f"unknown event {event!r}")
    return Announce(
        info_hash=info_hash,
        peer_id=peer_id,
        port=port,
        left=_number(params, "left", 0),
        event=event,
        compact=_number(params, "compact", 1) != 0,   # compact unless asked otherwise (BEP 23)
        numwant=min(_number(params, "numwant", DEFAULT_NUMWANT), MAX_NUMWANT),
        no_peer_id=_number(params, "no_peer_id", 0) != 0,
        uploaded=_number(params, "uploaded", 0),
        downloaded=_number(params, "downloaded", 0),
    )


def _first(params: dict[str, list[bytes]], name: str) -> bytes | None:
    values = params.get(name)
    return values[0] if values else None


def _binary_id(params: dict[str, list[bytes]], name: str) -> bytes:
    value = _first(params, name)
    if value is None:
        raise BadAnnounce(f"missing {name}")
    if len(value) != HASH_LENGTH:
        raise BadAnnounce(f"{name} must be {HASH_LENGTH} bytes, got {len(value)}")
    return value


def _number(params: dict[str, list[bytes]], name: str, default: int | None) -> int:
    """A non-negative decimal integer; `default` None makes the field required."""
    value = _first(params, name)
    if value is None:
        if default is None:
            raise BadAnnounce(f"missing {name}")
        return default
    if not value.isdigit() or len(value) > 20:  # isdigit: no sign, spaces or underscores
        raise BadAnnounce(f"{name} must be a non-negative integer")
    return int(value)


def _text(params: dict[str, list[bytes]], name: str, default: str) -> str:
    value = _first(params, name)
    return default if value is None else value.decode("latin-1")


def normalize_ip(ip: str) -> str:
    """A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d; store them as IPv4
    so they go into the compact IPv4 list."""
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return str(address)


def _client_ip(ip: str) -> str:
    try:
        return normalize_ip(ip)
    except ValueError as exc:
        raise BadAnnounce(f"cannot use client address {ip!r}") from exc


def failure(reason: str) -> bytes:
    return bencode.encode({b"failure reason": reason.encode()})


@dataclass
class Registry:
    """Every swarm the tracker knows, keyed by info hash; each swarm maps a peer's
    address to its entry, so a client restarting with a new peer id replaces itself."""
    interval: int = DEFAULT_INTERVAL
    peer_ttl: float | None = None       # default: two missed announces and a bit
    max_swarms: int = 10_000            # bounds memory when someone floods us with hashes
    rng: random.Random = field(default_factory=random.Random)
    swarms: dict[bytes, dict[PeerAddress, PeerEntry]] = field(default_factory=dict)

    @property
    def min_interval(self) -> int:
        return max(1, self.interval // 2)

    @property
    def ttl(self) -> float:
        return self.peer_ttl if self.peer_ttl is not None else 2 * self.interval + 10

    def handle(self, raw_query: bytes, client_ip: str, now: float) -> bytes:
        """Answer one HTTP announce: the bencoded reply, or a `failure reason`."""
        try:
            request = parse_announce(parse_query(raw_query))
            address = PeerAddress(_client_ip(client_ip), request.port)
            return bencode.encode(self.announce(request, address, now))
        except BadAnnounce as exc:
            return failure(str(exc))

    def announce(self, request: Announce, address: PeerAddress, now: float) -> dict[bytes, Any]:
        """Record (or, for `stopped`, forget) the peer and return the reply dict."""
        if request.info_hash not in self.swarms and len(self.swarms) >= self.max_swarms:
            raise BadAnnounce("tracker is full: too many torrents")
        swarm = self.swarms.setdefault(request.info_hash, {})
        self._expire_swarm(swarm, now)
        if request.event == "stopped":
            swarm.pop(address, None)
        else:
            swarm[address] = PeerEntry(request.peer_id, address, request.left, now)
        others = [p for p in swarm.values() if p.address != address]
        chosen = self._pick(others, 0 if request.event == "stopped" else request.numwant)
        reply = {b"interval": self.interval, b"min interval": self.min_interval,
                 b"complete": sum(p.is_seed for p in swarm.values()),
                 b"incomplete": sum(not p.is_seed for p in swarm.values())}
        reply.update(_peer_fields(chosen, request))
        if not swarm:
            del self.swarms[request.info_hash]
        return reply

    def expire(self, now: float) -> int:
        """Forget peers not heard from within the TTL, and empty swarms; return how many peers went."""
        gone = 0
        for info_hash in list(self.swarms):
            gone += self._expire_swarm(self.swarms[info_hash], now)
            if not self.swarms[info_hash]:
                del self.swarms[info_hash]
        return gone

    def peers(self, info_hash: bytes) -> list[PeerAddress]:
        return sorted(self.swarms.get(info_hash, {}))

    def _expire_swarm(self, swarm: dict[PeerAddress, PeerEntry], now: float) -> int:
        stale = [a for a, p in swarm.items() if now - p.last_seen > self.ttl]
        for address in stale:
            del swarm[address]
        return len(stale)

    def _pick(self, peers: list[PeerEntry], count: int) -> list[PeerEntry]:
        """All of them, or a random sample so that every peer gets introduced in time."""
        return peers if len(peers) <= count else self.rng.sample(peers, count)


def _peer_fields(peers: list[PeerEntry], request: Announce) -> dict[bytes, Any]:
    if not request.compact:
        return {b"peers": [_peer_dict(p, request.no_peer_id) for p in peers]}
    v4 = [p.address for p in peers if ":" not in p.address.host]
    v6 = [p.address for p in peers if ":" in p.address.host]
    fields: dict[bytes, Any] = {b"peers": encode_compact_peers(v4)}
    if v6:
        fields[b"peers6"] = encode_compact_peers6(v6)
    return fields


def _peer_dict(peer: PeerEntry, no_peer_id: bool) -> dict[bytes, Any]:
    entry = {b"ip": peer.address.host.encode(), b"port": peer.address.port}
    if not no_peer_id:
        entry[b"peer id"] = peer.peer_id
    return entry


def encode_compact_peers6(peers: list[PeerAddress]) -> bytes:
    """BEP 7: 16 address bytes and 2 port bytes per IPv6 peer."""
    return b"".join(ipaddress.IPv6Address(p.host).packed + struct.pack(">H", p.port) for p in peers)
