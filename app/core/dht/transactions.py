"""Outstanding queries by transaction id (BEP 5 `t`).

A reply counts only when its id is ours and it comes from the address we
asked; anything else is dropped. The table is bounded, and entries expire.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from app.core.tracker import PeerAddress

T = TypeVar("T")
MAX_PENDING = 1024


@dataclass
class Pending(Generic[T]):
    address: PeerAddress
    sent_at: float
    context: T


class Transactions(Generic[T]):
    def __init__(self, new_tid: Callable[[], bytes], limit: int = MAX_PENDING) -> None:
        self._new_tid = new_tid
        self._limit = limit
        self._pending: dict[bytes, Pending[T]] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def open(self, address: PeerAddress, now: float, context: T) -> bytes | None:
        """A fresh transaction id for a query to `address`, or None when too many are out."""
        if len(self._pending) >= self._limit:
            return None
        for _ in range(8):
            tid = self._new_tid()
            if tid not in self._pending:
                self._pending[tid] = Pending(address, now, context)
                return tid
        return None

    def match(self, tid: bytes, address: PeerAddress) -> T | None:
        """The context of the query this reply answers; None for an unknown id or a stranger's reply."""
        pending = self._pending.get(tid)
        if pending is None or pending.address != address:
            return None
        del self._pending[tid]
        return pending.context

    def cancel(self, tid: bytes) -> None:
        self._pending.pop(tid, None)

    def expire(self, now: float, timeout: float) -> list[Pending[T]]:
        late = [tid for tid, p in self._pending.items() if now - p.sent_at >= timeout]
        return [self._pending.pop(tid) for tid in late]
