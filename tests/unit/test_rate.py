"""app/core/rate.py: RATE parsing and the token bucket, with the clock passed in."""

import pytest

from app.core.rate import TokenBucket, parse_rate

KIB = 1024
BLOCK = 16 * KIB


@pytest.mark.parametrize("text, rate", [
    ("0", 0), ("65536", 65536), ("500K", 500 * KIB), ("500k", 500 * KIB), ("2M", 2 * KIB * KIB),
    ("1.5M", int(1.5 * KIB * KIB)), ("4MiB", 4 * KIB * KIB), ("1G", KIB ** 3), ("100KB/s", 100 * KIB),
])
def test_rates(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["", "fast", "-1", "2T", "1,5M", "M"])
def test_bad_rates(text):
    with pytest.raises(ValueError, match="not a rate"):
        parse_rate(text)


def simulate(rate, seconds, step, unit, want_per_step):
    """Spend in `unit` chunks as fast as the bucket allows, every `step` seconds."""
    bucket = TokenBucket(rate, now=0.0)
    spent, now = 0, 0.0
    while now < seconds:
        allowed = bucket.units_allowed(now, unit, want_per_step)
        bucket.spend(allowed * unit, now)
        spent += allowed * unit
        now += step
    return spent


@pytest.mark.parametrize("rate, step, want", [
    (4 * KIB * KIB, 0.001, 64), (4 * KIB * KIB, 0.25, 1000), (500 * KIB, 0.003, 4), (100 * KIB, 0.5, 1000),
    (20 * KIB, 0.01, 1),   # a rate near one block per second: the overdraft must not add up
])
def test_average_holds_within_ten_percent_over_ten_seconds(rate, step, want):
    spent = simulate(rate, 10.0, step, BLOCK, want)
    assert 0.9 * rate * 10 <= spent <= 1.1 * rate * 10, spent / 10 / rate


def test_burst_is_bounded_after_idle():
    bucket = TokenBucket(100_000, now=0.0)
    assert bucket.available(100.0) == 50_000          # half a second of traffic, not 100 s
    assert bucket.units_allowed(100.0, 10_000, 10) == 5
    bucket.spend(50_000, 100.0)
    assert bucket.units_allowed(100.0, 10_000, 10) == 0
    assert bucket.wait_time(100.0, 10_000) == pytest.approx(0.1)
    assert bucket.units_allowed(100.11, 10_000, 10) == 1


def test_the_burst_is_never_below_one_block():
    bucket = TokenBucket(1000, now=0.0)
    assert bucket.burst == BLOCK
    assert bucket.units_allowed(0.0, BLOCK, 5) == 1
    bucket.spend(BLOCK, 0.0)
    assert bucket.units_allowed(10.0, BLOCK, 5) == 0
    assert bucket.wait_time(10.0, BLOCK) == pytest.approx((BLOCK - 10_000) / 1000)


def test_debt_is_paid_first_and_refunds_are_capped():
    bucket = TokenBucket(100_000, now=0.0)
    bucket.spend(70_000, 0.0)
    assert bucket.available(0.0) == -20_000
    assert bucket.units_allowed(0.1, 1, 1) == 0          # -10000 after 0.1 s
    bucket.refund(1_000_000)
    assert bucket.available(0.1) == bucket.burst
    with pytest.raises(ValueError):
        TokenBucket(0, now=0.0)
