"""app/core/request_policy.py: how deep each peer's request queue is, and when a peer owing blocks is dropped."""

import pytest

from app.core.pieces import BLOCK_SIZE
from app.core.request_policy import (
    MAX_QUEUE,
    MIN_QUEUE,
    QUEUE_SECONDS,
    RATE_WEIGHT,
    START_QUEUE,
    blocks_to_request,
    owes_blocks_too_long,
    queue_depth,
    smoothed_rate,
)

KIB = 1024
MIB = 1024 * KIB


# --- queue depth ------------------------------------------------------------------------------

def test_the_constants():
    assert (MIN_QUEUE, START_QUEUE, MAX_QUEUE) == (4, 32, 250)
    assert MIN_QUEUE <= START_QUEUE <= MAX_QUEUE
    assert QUEUE_SECONDS == 2.0


@pytest.mark.parametrize(("rate", "depth"), [
    (0.0, MIN_QUEUE),                         # a new or stalled peer still gets a few requests
    (1.0, MIN_QUEUE),
    (32 * KIB, MIN_QUEUE),                    # 2 s of it is 4 blocks
    (40 * KIB, 5),
    (256 * KIB, 32),                          # 512 KiB in flight = 32 blocks
    (1 * MIB, 128),
    (1992 * KIB, 249),
    (2000 * KIB, MAX_QUEUE),                  # 250 blocks of 16 KiB in 2 s
    (2 * MIB, MAX_QUEUE),                     # 256 by the rate: capped
    (10 * MIB, MAX_QUEUE),                    # capped
    (1e12, MAX_QUEUE),
])
def test_queue_depth_is_two_seconds_of_the_rate_within_bounds(rate, depth):
    assert queue_depth(rate) == depth


def test_queue_depth_rounds_down_to_whole_blocks():
    ten_blocks = 10 * BLOCK_SIZE / QUEUE_SECONDS
    assert queue_depth(ten_blocks) == 10
    assert queue_depth(ten_blocks - 1) == 9
    assert queue_depth(ten_blocks + BLOCK_SIZE / QUEUE_SECONDS - 1) == 10


def test_queue_depth_grows_with_the_rate():
    rates = [i * 8 * KIB for i in range(0, 400)]
    depths = [queue_depth(r) for r in rates]
    assert depths == sorted(depths)
    assert min(depths) == MIN_QUEUE and max(depths) == MAX_QUEUE


# --- the quarter rule -----------------------------------------------------------------------------

@pytest.mark.parametrize(("depth", "outstanding", "count"), [
    (32, 0, 32),          # an empty queue is filled
    (32, 24, 8),          # a quarter has drained: top it up
    (32, 25, 0),          # less than a quarter: wait, to send fewer, larger writes
    (32, 31, 0),
    (32, 32, 0),
    (32, 40, 0),          # more out than the depth (it shrank): nothing
    (250, 189, 0),        # 250 // 4 = 62: 61 free is not enough
    (250, 188, 62),
    (4, 3, 1),            # a quarter of 4 is one request
    (4, 4, 0),
    (3, 2, 1),            # below 4 a quarter rounds to 0: one free slot is enough
    (1, 0, 1),
    (0, 0, 0),
])
def test_blocks_to_request(depth, outstanding, count):
    assert blocks_to_request(depth, outstanding) == count


def test_blocks_to_request_never_overfills():
    for depth in range(0, 260):
        for outstanding in range(0, depth + 5):
            count = blocks_to_request(depth, outstanding)
            assert 0 <= count <= max(0, depth - outstanding)
            if count:
                assert outstanding + count == depth


# --- the smoothed rate ---------------------------------------------------------------------------------

def test_smoothed_rate_weighs_the_newest_tick():
    assert RATE_WEIGHT == 0.3
    assert smoothed_rate(0.0, 1000, 1.0) == pytest.approx(300.0)
    assert smoothed_rate(1000.0, 0, 1.0) == pytest.approx(700.0)
    assert smoothed_rate(1000.0, 1000, 1.0) == pytest.approx(1000.0)


def test_smoothed_rate_divides_by_the_tick_length():
    assert smoothed_rate(0.0, 1000, 0.5) == pytest.approx(600.0)    # 2000 B/s in that tick
    assert smoothed_rate(0.0, 1000, 2.0) == pytest.approx(150.0)


def test_smoothed_rate_converges_and_decays():
    rate = 0.0
    for _ in range(30):
        rate = smoothed_rate(rate, 50_000, 1.0)
    assert rate == pytest.approx(50_000, rel=1e-3)
    for _ in range(30):
        rate = smoothed_rate(rate, 0, 1.0)
    assert rate < 50


# --- a peer that owes blocks ------------------------------------------------------------------------------

def test_owes_blocks_too_long():
    assert not owes_blocks_too_long(now=100.0, outstanding=5, last_block_at=80.0, timeout=20.0)   # exactly the limit
    assert owes_blocks_too_long(now=100.01, outstanding=5, last_block_at=80.0, timeout=20.0)
    assert not owes_blocks_too_long(now=10_000.0, outstanding=0, last_block_at=0.0, timeout=20.0)  # owes nothing
    assert not owes_blocks_too_long(now=90.0, outstanding=1, last_block_at=80.0, timeout=20.0)
