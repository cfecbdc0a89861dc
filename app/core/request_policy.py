"""How many requests to keep outstanding with each peer, and when a peer that
owes us blocks has gone quiet. Pure: rates and times are passed in.

Keeping about QUEUE_SECONDS of a peer's rate in flight hides the round trip:
the peer always has the next request before it finishes the current block.
"""

from __future__ import annotations

from app.core.pieces import BLOCK_SIZE

MIN_QUEUE, START_QUEUE, MAX_QUEUE = 4, 32, 250   # 250: the most rain and libtorrent queue
QUEUE_SECONDS = 2.0
RATE_WEIGHT = 0.3          # weight of the newest tick in a peer's smoothed rate


def queue_depth(rate: float) -> int:
    """Requests to keep outstanding with a peer sending `rate` bytes/s."""
    return max(MIN_QUEUE, min(MAX_QUEUE, int(rate * QUEUE_SECONDS / BLOCK_SIZE)))


def blocks_to_request(depth: int, outstanding: int) -> int:
    """How many to ask for now: nothing until a quarter of the queue has
    drained, so requests go out in fewer, larger writes."""
    room = depth - outstanding
    return room if room >= max(1, depth // 4) else 0


def smoothed_rate(previous: float, bytes_in_tick: int, tick_seconds: float) -> float:
    return (1 - RATE_WEIGHT) * previous + RATE_WEIGHT * (bytes_in_tick / tick_seconds)


def owes_blocks_too_long(now: float, outstanding: int, last_block_at: float, timeout: float) -> bool:
    """A peer with requests out that has sent no block for `timeout` seconds is
    dropped, so its blocks go to others."""
    return outstanding > 0 and now - last_block_at > timeout
