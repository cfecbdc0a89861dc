"""How a peer session is set up: its settings, its phases and its limits (app.core.session)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

MAX_REQUESTS_IN = 2000           # requests from one peer queued at once (libtorrent's limit; it asks for up to 500)
MAX_CONTROL_PER_SECOND = 5000    # messages without data above this rate are a flood
HANDSHAKE_TIMEOUT = 10.0         # seconds from connecting to a complete handshake
INACTIVITY_TIMEOUT = 120.0       # nothing at all received for this long: the peer is gone
KEEPALIVE_SECONDS = 60.0         # send a keep-alive after this long without sending


class Phase(Enum):
    HANDSHAKE = "handshake"
    BITFIELD = "bitfield"
    RUNNING = "running"
    CLOSED = "closed"


@dataclass(frozen=True)
class SessionConfig:
    info_hash: bytes
    peer_id: bytes                      # ours
    fast: bool = True                   # offer the fast extension (BEP 6)
    extensions: bool = True             # offer the extension protocol (BEP 10)
    extension_handshake: bytes | None = None   # our BEP 10 handshake body, sent first if they speak it
    # BEP 52: set the v2 bit and speak hash request/hashes/hash reject on connections that
    # agree on the v2 hash: `info_hash` itself, or for a hybrid joined by its v1 hash,
    # `info_hash_v2` (the truncated v2 hash), which a peer may upgrade the connection to.
    v2: bool = False
    info_hash_v2: bytes | None = None
    # BEP 5: our DHT node's UDP port. Set, the DHT bit goes out and peers that set theirs
    # get a PORT message; theirs comes back as an event (their node is worth a ping).
    dht_port: int | None = None

    @property
    def info_hashes(self) -> tuple[bytes, ...]:
        """The names a peer may ask for the torrent by: its info hash, and a hybrid's v2 one."""
        return (self.info_hash, self.info_hash_v2) if self.v2 and self.info_hash_v2 else (self.info_hash,)
