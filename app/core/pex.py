"""Peer exchange (BEP 11, ut_pex): peers tell each other whom they are connected to.

A message is a bencoded dict: `added` (compact IPv4 peers) with `added.f` (one
flag byte per peer), `dropped`, and the same for IPv6 (`added6`, `added6.f`,
`dropped6`). We send one at most once a minute per peer, with at most 50
added, the difference from what that peer heard from us last; what others send
is cut to a bound and deduplicated before it reaches the peer list. Private
torrents (BEP 27) never use it.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core import bencode
from app.core.dht.krpc import decode_address, encode_address
from app.core.errors import ProtocolError
from app.core.extension import OUR_UT_PEX_ID, UT_PEX
from app.core.tracker import PeerAddress

__all__ = ["OUR_UT_PEX_ID", "UT_PEX", "PexMessage", "PexSender", "encode_pex", "parse_pex"]

INTERVAL = 60.0                 # seconds between two messages to one peer
MAX_ADDED = 50                  # added peers per message we send
MAX_DROPPED = 50
MAX_TAKEN = 100                 # added peers taken from one message we receive

# added.f flags (BEP 11)
PREFERS_ENCRYPTION, SEED, UTP, HOLEPUNCH, REACHABLE = 0x01, 0x02, 0x04, 0x08, 0x10


@dataclass(frozen=True)
class PexMessage:
    added: tuple[PeerAddress, ...]
    flags: tuple[int, ...]          # one per added peer (0 when the sender gave none)
    dropped: tuple[PeerAddress, ...]


def _compact(data: object, size: int, limit: int) -> list[PeerAddress]:
    if not isinstance(data, bytes):
        return []
    peers: list[PeerAddress] = []
    for start in range(0, len(data) - size + 1, size):
        if len(peers) >= limit:
            break
        address = decode_address(data[start:start + size])
        if address is not None and address.port:
            peers.append(address)
    return peers


def parse_pex(body: bytes) -> PexMessage:
    """A received ut_pex message: at most MAX_TAKEN added peers, without duplicates."""
    d = bencode.decode_dict(body, ProtocolError, "ut_pex message")
    added: dict[PeerAddress, int] = {}
    for key, size in ((b"added", 6), (b"added6", 18)):
        flags = d.get(key + b".f")
        flag_bytes = flags if isinstance(flags, bytes) else b""
        for i, peer in enumerate(_compact(d.get(key), size, MAX_TAKEN - len(added))):
            added.setdefault(peer, flag_bytes[i] if i < len(flag_bytes) else 0)
    dropped = _compact(d.get(b"dropped"), 6, MAX_TAKEN) + _compact(d.get(b"dropped6"), 18, MAX_TAKEN)
    return PexMessage(tuple(added), tuple(added.values()), tuple(dropped[:MAX_TAKEN]))


def encode_pex(added: list[tuple[PeerAddress, int]], dropped: list[PeerAddress]) -> bytes:
    body: dict[bytes, bytes] = {}
    for key, v6 in ((b"added", False), (b"added6", True)):
        chosen = [(p, f) for p, f in added if (":" in p.host) == v6]
        body[key] = b"".join(encode_address(p) for p, _ in chosen)
        body[key + b".f"] = bytes(f & 0xFF for _, f in chosen)
    body[b"dropped"] = b"".join(encode_address(p) for p in dropped if ":" not in p.host)
    body[b"dropped6"] = b"".join(encode_address(p) for p in dropped if ":" in p.host)
    return bencode.encode(body)


class PexSender:
    """What one peer has heard from us, and when it may hear again."""

    def __init__(self, now: float) -> None:
        self.sent: set[PeerAddress] = set()
        self.next_at = now

    def message(self, now: float, connected: dict[PeerAddress, int], exclude: PeerAddress | None) -> bytes | None:
        """The next message for this peer (None when too soon or nothing changed).
        `connected`: the addresses we would advertise, with their added.f flags."""
        if now < self.next_at:
            return None
        added = [(p, f) for p, f in connected.items() if p not in self.sent and p != exclude][:MAX_ADDED]
        dropped = [p for p in self.sent if p not in connected][:MAX_DROPPED]
        if not added and not dropped:
            return None
        self.sent.difference_update(dropped)
        self.sent.update(p for p, _ in added)
        self.next_at = now + INTERVAL
        return encode_pex(added, dropped)
