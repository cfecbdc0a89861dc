"""UDP tracker codec (BEP 15): packets in and out, plus retry and cache policy.

Every reply parser takes the transaction id it is waiting for and returns
None for a datagram that is not the awaited reply (another transaction, the
wrong action, too short). UDP may deliver late, duplicated or foreign
datagrams, so the I/O loop drops those and keeps waiting instead of failing.
A matching error reply (action 3) raises TrackerError.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from app.core.errors import TrackerError
from app.core.tracker import DEFAULT_INTERVAL, AnnounceRequest, AnnounceResponse, PeerAddress

PROTOCOL_ID = 0x41727101980  # magic connection id of a connect request
ACTION_CONNECT, ACTION_ANNOUNCE, ACTION_SCRAPE, ACTION_ERROR = 0, 1, 2, 3
EVENT_CODES = {"": 0, "completed": 1, "started": 2, "stopped": 3}
CONNECTION_ID_LIFETIME = 60.0  # a client may reuse a connection id for one minute
FIRST_WAIT = 15.0              # seconds; the n-th retransmission waits 15 * 2**n
MAX_RETRANSMISSIONS = 8
MAX_SCRAPE_HASHES = 74         # what fits in one reply packet by the BEP

HEADER = struct.Struct(">II")            # action, transaction id
CONNECT_REQUEST = struct.Struct(">QII")  # protocol id, action, transaction id
CONNECT_REPLY = struct.Struct(">IIQ")    # action, transaction id, connection id
ANNOUNCE_REQUEST = struct.Struct(">QII20s20sqqqIIIiH")
ANNOUNCE_REPLY_HEAD = struct.Struct(">IIiii")  # action, tid, interval, leechers, seeders
SCRAPE_ENTRY = struct.Struct(">iii")           # seeders, completed, leechers
IPV4_PEER, IPV6_PEER = 6, 18


@dataclass(frozen=True)
class ScrapeStats:
    seeders: int
    completed: int
    leechers: int


def parse_udp_url(url: str) -> tuple[str, int]:
    """Host and port of a `udp://host:port[/path]` tracker URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TrackerError(f"bad UDP tracker URL {url!r}: {exc}") from exc
    if parts.scheme.lower() != "udp" or not parts.hostname:
        raise TrackerError(f"not a UDP tracker URL: {url!r}")
    if not port:
        raise TrackerError(f"UDP tracker URL has no port: {url!r}")
    return parts.hostname, port


# --- requests ---------------------------------------------------------------

def build_connect_request(transaction_id: int) -> bytes:
    return CONNECT_REQUEST.pack(PROTOCOL_ID, ACTION_CONNECT, transaction_id)


def build_announce_request(connection_id: int, transaction_id: int,
                           request: AnnounceRequest) -> bytes:
    """The 98-byte announce packet. The IP field is 0: the tracker uses the sender's."""
    if request.event not in EVENT_CODES:
        raise ValueError(f"unknown announce event {request.event!r}")
    num_want = request.numwant if request.numwant >= 0 else -1  # -1 = tracker's default
    return ANNOUNCE_REQUEST.pack(
        connection_id, ACTION_ANNOUNCE, transaction_id,
        request.info_hash, request.peer_id,
        request.downloaded, request.left, request.uploaded,
        EVENT_CODES[request.event], 0, request.key & 0xFFFFFFFF, num_want, request.port)


def build_scrape_request(connection_id: int, transaction_id: int,
                         info_hashes: list[bytes] | tuple[bytes, ...]) -> bytes:
    if not 1 <= len(info_hashes) <= MAX_SCRAPE_HASHES:
        raise ValueError(f"a UDP scrape takes 1..{MAX_SCRAPE_HASHES} info hashes")
    if any(len(h) != 20 for h in info_hashes):
        raise ValueError("info hashes must be 20 bytes")
    return struct.pack(">QII", connection_id, ACTION_SCRAPE, transaction_id) + b"".join(info_hashes)


# --- replies ----------------------------------------------------------------

def reply_body(data: bytes, transaction_id: int, action: int) -> bytes | None:
    """The bytes after the 8-byte header if `data` answers this transaction with
    `action`; None if it is not our reply. Raises TrackerError for an error reply."""
    if len(data) < HEADER.size:
        return None
    got_action, got_transaction = HEADER.unpack_from(data)
    if got_transaction != transaction_id:
        return None
    if got_action == ACTION_ERROR:
        message = data[HEADER.size:].rstrip(b"\0").decode("utf-8", "replace")
        raise TrackerError("tracker refused: " + (message or "(no message)"))
    return data[HEADER.size:] if got_action == action else None


def parse_connect_response(data: bytes, transaction_id: int) -> int | None:
    """The connection id, or None if `data` is not the reply we wait for."""
    body = reply_body(data, transaction_id, ACTION_CONNECT)
    if body is None or len(body) < 8:
        return None
    connection_id: int = struct.unpack_from(">Q", body)[0]
    return connection_id


def parse_announce_response(data: bytes, transaction_id: int, *,
                            ipv6: bool = False) -> AnnounceResponse | None:
    """The announce reply, or None if `data` is not the reply we wait for.

    Peers are 6-byte IPv4 entries, or 18-byte IPv6 ones when the request went
    over IPv6 (`ipv6`): the BEP ties the format to the socket, not the packet.
    """
    body = reply_body(data, transaction_id, ACTION_ANNOUNCE)
    if body is None:
        return None
    if not body:
        # opentracker answers a hash missing from its whitelist with the bare header
        raise TrackerError("tracker sent an empty announce reply (torrent not allowed?)")
    if len(data) < ANNOUNCE_REPLY_HEAD.size:
        return None
    _, _, interval, leechers, seeders = ANNOUNCE_REPLY_HEAD.unpack_from(data)
    peer_bytes = data[ANNOUNCE_REPLY_HEAD.size:]
    return AnnounceResponse(
        peers=parse_peer_list(peer_bytes, ipv6=ipv6),
        interval=interval if interval > 0 else DEFAULT_INTERVAL,
        complete=seeders if seeders >= 0 else None,
        incomplete=leechers if leechers >= 0 else None)


def parse_peer_list(data: bytes, *, ipv6: bool = False) -> tuple[PeerAddress, ...]:
    size = IPV6_PEER if ipv6 else IPV4_PEER
    if len(data) % size:
        raise TrackerError(f"UDP peer list of {len(data)} bytes is not a multiple of {size}")
    address = ipaddress.IPv6Address if ipv6 else ipaddress.IPv4Address
    return tuple(PeerAddress(str(address(data[i:i + size - 2])),
                             struct.unpack_from(">H", data, i + size - 2)[0])
                 for i in range(0, len(data), size))


def parse_scrape_response(data: bytes, transaction_id: int,
                          hash_count: int) -> tuple[ScrapeStats, ...] | None:
    """Stats per requested hash, in request order; None if not our reply."""
    body = reply_body(data, transaction_id, ACTION_SCRAPE)
    if body is None or len(body) < hash_count * SCRAPE_ENTRY.size:
        return None
    return tuple(ScrapeStats(*SCRAPE_ENTRY.unpack_from(body, i * SCRAPE_ENTRY.size))
                 for i in range(hash_count))


# --- timing policy ----------------------------------------------------------

def retry_timeouts(cap_seconds: float, first_wait: float = FIRST_WAIT) -> tuple[float, ...]:
    """How long to wait for each transmission: first_wait * 2**n for n = 0..8,
    cut so the waits add up to at most `cap_seconds` (the last one gets the rest)."""
    waits: list[float] = []
    left = cap_seconds
    for n in range(MAX_RETRANSMISSIONS + 1):
        if left <= 0:
            break
        waits.append(min(first_wait * 2 ** n, left))
        left -= waits[-1]
    return tuple(waits)


@dataclass
class ConnectionIdCache:
    """Connection ids per tracker address, each valid for `lifetime` seconds.

    The caller supplies `now` (a monotonic clock reading) so this stays pure.
    """
    lifetime: float = CONNECTION_ID_LIFETIME
    _entries: dict[object, tuple[int, float]] = field(default_factory=dict)

    def get(self, address: object, now: float) -> int | None:
        entry = self._entries.get(address)
        if entry is None or not is_connection_id_fresh(entry[1], now, self.lifetime):
            return None
        return entry[0]

    def put(self, address: object, connection_id: int, now: float) -> None:
        self._drop_expired(now)  # keeps the cache from growing without bound
        self._entries[address] = (connection_id, now)

    def forget(self, address: object) -> None:
        self._entries.pop(address, None)

    def clear(self) -> None:
        self._entries.clear()

    def _drop_expired(self, now: float) -> None:
        for address in [a for a, (_, at) in self._entries.items()
                        if not is_connection_id_fresh(at, now, self.lifetime)]:
            del self._entries[address]


def is_connection_id_fresh(obtained_at: float, now: float,
                           lifetime: float = CONNECTION_ID_LIFETIME) -> bool:
    # a clock reading before obtained_at means a confused caller; don't trust the id
    return 0 <= now - obtained_at < lifetime
