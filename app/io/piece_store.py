"""The piece check and storage pipeline: a complete piece is hashed on the event
loop and, only if it matches, written to disk by one worker thread, together
with the adjacent pieces that verify with it (app.core.write_batch).

Hashing where the piece completes, not on a thread of its own, is the cheaper
choice on a small machine: SHA-1 takes about 0.3 ms per 512 KiB piece, while
handing each piece to a hashing thread cost more in wake-ups and GIL hand-offs
than it saved. Measured on two cores shared with three seeders, a 1 GiB download
used 0.3-0.4 CPU s less and finished sooner. The write stays on a thread: written
past the page cache (app.io.direct_io), it mostly waits for the disk, which the
loop must not. pwrite releases the GIL. The writer takes pieces in the order they
pass, and only it touches the files while downloading.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

from app.core.pieces import PieceBuffer
from app.core.write_batch import Run, WriteBatcher


class Storage(Protocol):
    def open(self, create: bool = True) -> None: ...
    def write_pieces(self, first: int, buffers: Sequence[bytes | PieceBuffer | memoryview]) -> None: ...
    def read_block(self, index: int, begin: int, length: int) -> bytes: ...
    def verified_pieces(self) -> set[int]: ...
    def close(self) -> None: ...


log = logging.getLogger(__name__)

READ_CACHE_BYTES = 8 << 20    # whole pieces kept for uploads
CheckResult = bool | OSError   # True: verified and written; False: wrong hash; OSError: the disk failed


class PieceStore:
    """Checks complete pieces as they are submitted and queues the good ones for the
    writing thread. Results come back to the event loop in batches: one wake-up for
    however many pieces finished meanwhile, not a future and a task each."""

    def __init__(self, storage: Storage, check: Callable[[int, PieceBuffer], bool],
                 piece_sizes: Sequence[int] = (), batcher: WriteBatcher | None = None,
                 downloading: Callable[[int], bool] = lambda _index: False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.storage = storage
        self._check = check   # PieceCheck.matches: SHA-1, merkle, or both
        self._sizes = piece_sizes
        self._batcher = batcher or WriteBatcher(0)   # by default each piece is written alone
        self._downloading = downloading   # whether a piece is coming in now (the picker knows)
        self._clock = clock
        self._read_cache: OrderedDict[int, bytes] = OrderedDict()   # whole verified pieces, for uploads
        self._read_cache_bytes = 0
        self._to_write: queue.SimpleQueue[Run | None] = queue.SimpleQueue()   # None: no more pieces
        self._results: list[tuple[int, PieceBuffer, CheckResult]] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_checked: Callable[[int, PieceBuffer, CheckResult], None] = lambda *_: None
        self.writes = self.pieces_written = 0   # how well batching works (logged at close)

    def open(self, create: bool) -> set[int]:
        """Open the files and return the pieces already verified on disk (resume)."""
        self.storage.open(create=create)
        return self.storage.verified_pieces()

    def start(self, on_checked: Callable[[int, PieceBuffer, CheckResult], None]) -> None:
        """Begin taking pieces; `on_checked` runs on the event loop for each result."""
        self._loop = asyncio.get_running_loop()
        self._on_checked = on_checked
        self._threads = [threading.Thread(target=self._write_pieces, name="disk", daemon=True)]
        for thread in self._threads:
            thread.start()

    def submit(self, pieces: Sequence[tuple[int, PieceBuffer]]) -> None:
        """Check complete pieces now (all those one burst of blocks completed); those that
        match are written once the batcher lets them go. Each buffer comes back through
        `on_checked` either way, later, from the event loop: never from inside this call,
        which the picker's own bookkeeping is still in."""
        good = []
        for index, data in pieces:
            if self._check(index, data):
                good.append((index, data))
            else:
                self._post(index, data, False)
        if good:
            self._queue(self._batcher.add(good, self._downloading, self._clock()))

    def settle(self) -> None:
        """Let out pieces that have waited long enough for the rest of their extent
        (the engine calls this every tick, for when no other piece completes)."""
        if self._batcher.held:
            self._queue(self._batcher.settle(self._downloading, self._clock()))

    def _queue(self, runs: list[Run]) -> None:
        for run in runs:
            self._to_write.put(run)

    def _write_pieces(self) -> None:
        while (run := self._to_write.get()) is not None:
            result: CheckResult
            try:
                self.storage.write_pieces(run.first, run.buffers)
                result = True
                self.writes += 1
                self.pieces_written += len(run.buffers)
            except OSError as exc:
                result = exc
            for k, data in enumerate(run.buffers):
                self._post(run.first + k, data, result)

    def _post(self, index: int, data: PieceBuffer, result: CheckResult) -> None:
        """Hand a result to the event loop (woken once per batch)."""
        with self._lock:
            self._results.append((index, data, result))
            first = len(self._results) == 1
        if first and self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:
                pass   # the loop has closed: the run is over, the piece is on disk or reported

    def _deliver(self) -> None:
        with self._lock:
            results, self._results = self._results, []
        for index, data, result in results:
            self._on_checked(index, data, result)

    def read_block(self, index: int, begin: int, length: int) -> bytes:
        """For uploads. Peers ask for a piece's blocks one after another, so the whole
        piece is read once and kept (a few MiB at most): one read per piece instead of
        one per 16 KiB block. Served pieces are verified, so a cached copy never goes stale."""
        if not self._sizes:
            return self.storage.read_block(index, begin, length)
        piece = self._read_cache.get(index)
        if piece is None:
            piece = self.storage.read_block(index, 0, self._sizes[index])
            self._read_cache[index] = piece
            self._read_cache_bytes += len(piece)
            while self._read_cache_bytes > READ_CACHE_BYTES and len(self._read_cache) > 1:
                self._read_cache_bytes -= len(self._read_cache.popitem(last=False)[1])
        else:
            self._read_cache.move_to_end(index)
        return piece[begin:begin + length]

    def close(self) -> None:
        """Finish the pieces already queued (verified data is never dropped), then close."""
        if self._threads:
            self._queue(self._batcher.release_all())   # verified pieces are never dropped
            self._to_write.put(None)   # the writer finishes what it has, then stops
            for thread in self._threads:
                thread.join()
            log.debug("wrote %d pieces in %d writes", self.pieces_written, self.writes)
        self.storage.close()
