"""DHT security extension (BEP 42): node ids tied to the node's external IP address.

A node cannot pick any id it likes, or it could place itself next to any info
hash and answer for it. The first 21 bits of a compliant id are those of
CRC-32C(the masked IP, with 3 random bits r mixed in); its last byte holds r,
so anyone can check an id against the address it comes from. libtorrent prefers
such nodes in its routing table. Local and private addresses are exempt.

We learn our external address from the `ip` that nodes put in their replies:
once enough of them agree (`AddressVote`), the next run starts with an id made
for it (the state file keeps the address, app.io.dht_state).
"""

from __future__ import annotations

import ipaddress
from collections import Counter

ID_LENGTH = 20
_V4_MASK = bytes([0x03, 0x0F, 0x3F, 0xFF])
_V6_MASK = bytes([0x01, 0x03, 0x07, 0x0F, 0x1F, 0x3F, 0x7F, 0xFF])
VOTES_NEEDED = 3   # distinct nodes naming the same address before we believe it


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1   # Castagnoli, reflected
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), which BEP 42 uses; zlib's crc32 is a different polynomial."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ byte) & 0xFF]
    return crc ^ 0xFFFFFFFF


def _prefix_crc(ip: str, r: int) -> int:
    raw = ipaddress.ip_address(ip).packed
    mask = _V4_MASK if len(raw) == 4 else _V6_MASK
    masked = bytearray(a & b for a, b in zip(raw, mask, strict=False))   # IPv6: the first 8 bytes
    masked[0] |= (r & 0x07) << 5
    return crc32c(bytes(masked))


def node_id_for(ip: str, rand: int, filler: bytes) -> bytes:
    """A compliant id for `ip`: `rand` (0-255) is the random byte BEP 42 keeps last, and
    `filler` (17 random bytes) the rest."""
    if len(filler) != 17:
        raise ValueError("filler must be 17 bytes")
    crc = _prefix_crc(ip, rand)
    third = ((crc >> 8) & 0xF8) | (filler[0] & 0x07)
    return bytes([(crc >> 24) & 0xFF, (crc >> 16) & 0xFF, third]) + filler[1:] + bytes([rand & 0xFF])


def is_exempt(ip: str) -> bool:
    """Addresses BEP 42 does not apply to: loopback, private and link-local ones."""
    address = ipaddress.ip_address(ip)
    return address.is_private or address.is_loopback or address.is_link_local


def is_valid_node_id(node_id: bytes, ip: str) -> bool:
    """Whether `node_id` may be used from `ip` (always true for exempt addresses)."""
    if is_exempt(ip):
        return True
    if len(node_id) != ID_LENGTH:
        return False
    crc = _prefix_crc(ip, node_id[-1])
    expected = bytes([(crc >> 24) & 0xFF, (crc >> 16) & 0xFF, (crc >> 8) & 0xF8])
    return node_id[:2] == expected[:2] and node_id[2] & 0xF8 == expected[2]


class AddressVote:
    """Our external address as other nodes report it: one vote per node id."""

    def __init__(self) -> None:
        self._votes: Counter[str] = Counter()
        self._voters: set[bytes] = set()

    def add(self, voter: bytes, ip: str) -> None:
        if voter not in self._voters and not is_exempt(ip):
            self._voters.add(voter)
            self._votes[ip] += 1

    def winner(self) -> str | None:
        """The address named by at least VOTES_NEEDED nodes, and by more than any other."""
        ranked = self._votes.most_common(2)
        if not ranked or ranked[0][1] < VOTES_NEEDED:
            return None
        if len(ranked) > 1 and ranked[1][1] == ranked[0][1]:
            return None
        return ranked[0][0]
