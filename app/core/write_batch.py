"""Grouping verified pieces into large writes, as a pure policy.

A write of 512 KiB past the page cache costs the kernel about as much per call
as per byte: a system call, pinning the pages, one notification of the
(virtual) disk and one wake-up of the writing thread. Four adjacent pieces in
one vectored write cost less than half as much as four writes.

Pieces become adjacent because the picker starts equally rare pieces an extent
at a time (`extent_order`, like libtorrent's piece extent affinity). A verified
piece is then held while another piece of its extent is being downloaded, and
the extent's pieces go out together as runs of adjacent pieces once none is.
Pieces not started yet do not hold anything back: nobody may ever send them, and
a held piece is neither announced to peers nor served until it is written. So
holding is bounded twice: in time (`max_wait`; from fast peers an extent's
pieces verify within a few milliseconds of each other, and a slow peer must not
delay the others' `have`s) and in count (`max_held`). Past either, the oldest
extents go out as they are (and `release_all` empties the batcher when the
download stops).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from app.core.pieces import PieceBuffer

EXTENT_BYTES = 2 << 20   # 4 pieces of 512 KiB; 4 MiB extents measured no better
MAX_WAIT = 0.2           # seconds a verified piece may wait for the rest of its extent


class Run(NamedTuple):
    """Adjacent pieces to write as one: `first`'s bytes, then the next piece's, and so on."""
    first: int
    buffers: list[PieceBuffer]


def pieces_per_extent(piece_length: int) -> int:
    return max(1, EXTENT_BYTES // max(1, piece_length))


def extent_order(piece_count: int, extent_pieces: int, rng: random.Random) -> list[int]:
    """A tie-break rank per piece: extents in random order, pieces in order inside one.
    Picking equally rare pieces by it starts one extent's pieces one after another."""
    extents = list(range(-(-piece_count // extent_pieces)))
    rng.shuffle(extents)
    return [extents[i // extent_pieces] * extent_pieces + i % extent_pieces for i in range(piece_count)]


class WriteBatcher:
    """Verified pieces in, runs to write out (see the module notes).

    `downloading(index)` says whether a piece is coming in now (the picker knows);
    the batcher asks it about the other pieces of an extent that holds pieces."""

    def __init__(self, piece_length: int, extent_pieces: int = 1, max_held: int = 0,
                 max_wait: float = MAX_WAIT) -> None:
        self.piece_length = piece_length
        self.extent_pieces = max(1, extent_pieces)
        self.max_held = max_held or 2 * self.extent_pieces
        self.max_wait = max_wait
        self._held: dict[int, dict[int, PieceBuffer]] = {}   # extent -> index -> buffer, oldest first
        self._since: dict[int, float] = {}                   # extent -> when its first piece was held
        self._count = 0

    @property
    def held(self) -> int:
        return self._count

    def add(self, pieces: Iterable[tuple[int, PieceBuffer]], downloading: Callable[[int], bool],
            now: float) -> list[Run]:
        """Hold verified pieces (all that were verified at once, so that none is taken
        for one still coming in); return whatever may be written now."""
        for index, buffer in pieces:
            extent = index // self.extent_pieces
            if extent not in self._held:
                self._held[extent], self._since[extent] = {}, now
            self._held[extent][index] = buffer
            self._count += 1
        return self.settle(downloading, now)

    def settle(self, downloading: Callable[[int], bool], now: float) -> list[Run]:
        """Release every extent with nothing left to come or held for `max_wait`, and
        the oldest ones while too many pieces are held. (Also called now and then
        without new pieces, so that waiting ends on time.)"""
        size = self.extent_pieces
        ready = [extent for extent, pieces in self._held.items()
                 if now - self._since[extent] >= self.max_wait
                 or not any(downloading(i) for i in range(extent * size, (extent + 1) * size) if i not in pieces)]
        runs = [run for extent in ready for run in self._release(extent)]
        while self._count > self.max_held:
            runs += self._release(next(iter(self._held)))
        return runs

    def release_all(self) -> list[Run]:
        """Everything held (the download is stopping)."""
        return [run for extent in list(self._held) for run in self._release(extent)]

    def _release(self, extent: int) -> list[Run]:
        pieces = self._held.pop(extent)
        del self._since[extent]
        self._count -= len(pieces)
        return adjacent_runs(sorted(pieces.items()), self.piece_length)


def adjacent_runs(pieces: Sequence[tuple[int, PieceBuffer]], piece_length: int) -> list[Run]:
    """Split sorted (index, buffer) pairs into runs whose bytes are contiguous in the
    torrent: consecutive indexes, each buffer but the last a whole piece long."""
    runs: list[Run] = []
    for index, buffer in pieces:
        if runs:
            last = runs[-1]
            if index == last.first + len(last.buffers) and len(last.buffers[-1]) == piece_length:
                last.buffers.append(buffer)
                continue
        runs.append(Run(index, [buffer]))
    return runs
