"""The engine's settings, results, and what it keeps per connected peer."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.request_policy import START_QUEUE, queue_depth, smoothed_rate
from app.core.session import PeerSession
from app.core.tracker import PeerAddress
from app.io.peer import PeerConnection

TICK = 0.5                   # seconds between housekeeping turns


@dataclass
class SeedPolicy:
    """When to stop seeding after the download: a ratio, a time, or never (None, None)."""
    ratio: float | None = None
    seconds: float | None = None

    def done(self, uploaded: int, total: int, seeded_for: float) -> bool:
        if self.ratio is not None and uploaded >= self.ratio * total:
            return True
        return self.seconds is not None and seeded_for >= self.seconds


@dataclass
class SwarmConfig:
    max_peers: int = 50             # connections with a completed handshake
    port: int = 6881                # announced to trackers, and listened on when `listen`
    listen: bool = False
    listen_host: str | None = None  # None: every interface
    connect_timeout: float = 5.0
    request_timeout: float = 6.0    # a peer with requests out that sends nothing this long is dropped
    stall_timeout: float = 60.0     # give up when nothing arrives for this long
    announce_timeout: float = 10.0
    memory_budget: int = 32 << 20   # bytes of piece buffers in flight or awaiting their check
    seed: SeedPolicy | None = None  # keep seeding after completion (needs `listen`)
    fast_extension: bool = True     # offer BEP 6 (have_all/none, reject_request, allowed_fast)
    sequential: bool = False        # pieces in index order (--sequential, stream)
    max_download_rate: int = 0      # bytes/s, 0: unlimited
    max_upload_rate: int = 0        # bytes/s, 0: unlimited


@dataclass(frozen=True)
class Progress:
    done_bytes: int
    total_bytes: int
    rate: float            # download bytes/s over the last few seconds
    peers: int
    pieces_done: int
    pieces_total: int
    uploaded: int = 0
    state: str = "downloading"   # or "waiting for peers", "seeding"


@dataclass
class SwarmResult:
    downloaded: int          # payload bytes received this run
    uploaded: int            # payload bytes sent this run
    resumed_pieces: int      # pieces found verified on disk at start
    peers_used: int          # peers that sent at least one good block
    seconds: float


class ConnectedPeer:
    """A peer whose handshake is done: its connection and session, plus what the
    engine measures of it. `admitted`: it holds one of the --max-peers slots;
    otherwise it waits (briefly) for a useless peer to make room."""

    def __init__(self, conn: PeerConnection, now: float) -> None:
        self.conn = conn
        self.session: PeerSession = conn.session
        self.address: PeerAddress = conn.address
        self.admitted = False
        self.depth = START_QUEUE          # requests to keep outstanding
        self.received = 0                 # payload bytes from them this tick
        self.sent = 0                     # payload bytes to them this tick
        self.rate = 0.0
        self.up_rate = 0.0
        self.last_block_at = now          # the last block, or when requests went out after a lull
        self.useful_at = now              # when it last unchoked us or sent a block
        self.drop_reason: str | None = None
        self.drop_retry = True

    def update_rates(self, tick: float) -> None:
        self.rate = smoothed_rate(self.rate, self.received, tick)
        self.up_rate = smoothed_rate(self.up_rate, self.sent, tick)
        self.received = self.sent = 0
        self.depth = queue_depth(self.rate)

    def drop(self, reason: str, retry: bool = True) -> None:
        """Close the connection; its task ends and reports `reason`."""
        if self.drop_reason is None:
            self.drop_reason, self.drop_retry = reason, retry
        self.conn.close()
