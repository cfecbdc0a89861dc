"""Rate limits (--max-download-limit, --max-upload-limit): a token bucket, time passed in.

Tokens are bytes. They accrue at `rate` per second up to `burst`, and an
item (a 16 KiB block) goes only when the bucket holds all of its bytes, so
over any span the bytes sent are at most rate x span + burst. The burst is
half a second of traffic, and never less than one block (or nothing could
ever go). Spending more than asked for (a short block charged as a whole
one, or nothing refunded) only leaves a debt, paid back before anything else.
"""

from __future__ import annotations

import re

from app.core.pieces import BLOCK_SIZE

_RATE = re.compile(r"(\d+(?:\.\d+)?)\s*([kKmMgG]?)(?:i?[bB])?(?:/s)?")
_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


def parse_rate(text: str) -> int:
    """`500K`, `2M`, `1.5M`, `65536` -> bytes per second (binary units, like aria2c); 0 = unlimited."""
    match = _RATE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a rate such as 500K, 2M or 0 (unlimited)")
    return int(float(match[1]) * _UNITS[match[2].lower()])


class TokenBucket:
    def __init__(self, rate: float, now: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        # Half a second of traffic: enough to keep a pipeline of requests full,
        # small enough that a pause does not become a visible burst.
        self.burst = burst if burst is not None else max(rate / 2, BLOCK_SIZE)
        self.tokens = self.burst
        self._updated = now

    def _refill(self, now: float) -> None:
        if now > self._updated:
            self.tokens = min(self.burst, self.tokens + (now - self._updated) * self.rate)
            self._updated = now

    def available(self, now: float) -> float:
        self._refill(now)
        return self.tokens

    def units_allowed(self, now: float, unit: int, wanted: int) -> int:
        """How many `unit`-sized items (e.g. 16 KiB blocks) the balance pays for now, at most `wanted`."""
        tokens = self.available(now)
        if unit <= 0:
            return wanted if tokens >= 0 else 0
        return max(0, min(wanted, int(tokens // unit)))

    def spend(self, amount: int, now: float) -> None:
        self._refill(now)
        self.tokens -= amount

    def refund(self, amount: int) -> None:
        self.tokens = min(self.burst, self.tokens + amount)

    def wait_time(self, now: float, unit: int) -> float:
        """Seconds until the balance pays for one `unit` (0 if it does now)."""
        tokens = self.available(now)
        return max(0.0, (min(unit, self.burst) - tokens) / self.rate)
