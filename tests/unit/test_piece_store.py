"""app/io/piece_store.py: pieces are hashed where they are submitted and written by
one thread; bad pieces are never written, results come back on the event loop
(never from inside submit), disk errors come back as results, and close()
finishes every queued piece."""
from __future__ import annotations

import asyncio
import errno
import os
import threading
import time

import pytest

from app.core.write_batch import WriteBatcher
from app.io import direct_io
from app.io import storage as storage_module
from app.io.direct_io import aligned_buffer
from app.io.piece_store import PieceStore
from app.io.storage import TorrentStorage
from tests.unit.test_direct_io import make_info

PIECE = 32 * 1024


class MemoryStorage:
    def __init__(self, fail_on: int | None = None, delay: float = 0.0) -> None:
        self.written: dict[int, bytes] = {}
        self.fail_on, self.delay = fail_on, delay
        self.writer_threads: set[str] = set()
        self.calls: list[tuple[int, int]] = []   # (first piece, pieces) per write

    def open(self, create: bool = True) -> None: ...
    def verified_pieces(self) -> set[int]: return set()
    def read_block(self, index, begin, length): return self.written[index][begin:begin + length]
    def close(self) -> None: ...

    def write_pieces(self, first, buffers) -> None:
        self.writer_threads.add(threading.current_thread().name)
        self.calls.append((first, len(buffers)))
        time.sleep(self.delay)
        if self.fail_on in range(first, first + len(buffers)):
            raise OSError(errno.ENOSPC, "No space left on device")
        for k, data in enumerate(buffers):
            self.written[first + k] = bytes(data)


def run_store(storage, pieces: dict[int, bytes], good: set[int], close_early: bool = False):
    """Submit every piece; return the results in the order they came back."""
    results = []

    async def main():
        store = PieceStore(storage, lambda index, data: index in good)
        done = asyncio.Event()
        store.start(lambda index, data, result: (results.append((index, result)),
                                                 len(results) == len(pieces) and done.set()))
        for index, data in pieces.items():
            store.submit([(index, bytearray(data))])
        if close_early:
            store.close()   # must finish everything queued first
            return
        await asyncio.wait_for(done.wait(), 10)
        store.close()

    asyncio.run(main())
    return results


def test_good_pieces_are_written_by_the_writer_thread_and_bad_ones_never():
    pieces = {i: bytes([i]) * 100 for i in range(20)}
    storage = MemoryStorage()
    results = run_store(storage, pieces, good=set(range(0, 20, 2)))
    assert dict(results) == {i: i % 2 == 0 for i in range(20)}
    assert storage.written == {i: pieces[i] for i in range(0, 20, 2)}
    assert storage.writer_threads == {"disk"}
    assert [i for i, ok in results if ok] == list(range(0, 20, 2))   # each stage keeps the order


def test_a_disk_error_is_a_result_and_the_next_pieces_still_go():
    storage = MemoryStorage(fail_on=3)
    results = dict(run_store(storage, {i: b"x" for i in range(6)}, good=set(range(6))))
    assert isinstance(results.pop(3), OSError)
    assert results == {i: True for i in (0, 1, 2, 4, 5)}


def test_close_writes_every_piece_still_queued():
    storage = MemoryStorage(delay=0.01)
    run_store(storage, {i: b"y" for i in range(15)}, good=set(range(15)), close_early=True)
    assert sorted(storage.written) == list(range(15))


def test_the_check_runs_in_submit_and_results_come_later_from_the_loop():
    checked_in, delivered = [], []

    async def main():
        def check(index, data):
            checked_in.append(threading.current_thread().name)
            return index == 0
        store = PieceStore(MemoryStorage(), check)
        store.start(lambda index, data, result: delivered.append((index, result)))
        store.submit([(0, bytearray(1))])
        store.submit([(1, bytearray(1))])
        assert delivered == []   # not from inside submit: the caller is mid-bookkeeping
        for _ in range(200):
            if len(delivered) == 2:
                break
            await asyncio.sleep(0.01)
        store.close()

    asyncio.run(main())
    assert checked_in == [threading.current_thread().name] * 2
    assert sorted(delivered) == [(0, True), (1, False)]


def test_a_crashing_check_raises_to_the_caller_and_close_still_returns():
    async def main():
        def broken(index, data):
            raise RuntimeError("a bug")
        store = PieceStore(MemoryStorage(), broken)
        store.start(lambda *_: None)
        with pytest.raises(RuntimeError):
            store.submit([(0, bytearray(1))])
        started = time.monotonic()
        store.close()
        return time.monotonic() - started

    assert asyncio.run(main()) < 2


def run_batched(downloading: set[int], steps: list, written_before_close: int):
    """Feed a store whose batcher groups extents of 4 pieces (of 4 bytes) with `steps`:
    a list of pieces is a burst that verified (and leaves `downloading`, what the picker
    has in flight); a number moves the clock on by that many seconds and lets the store
    settle, as the engine's tick does. Waits for `written_before_close` pieces to come
    back written, then closes the store. Returns the storage."""
    storage = MemoryStorage()
    now = [0.0]

    async def main():
        store = PieceStore(storage, lambda index, data: True, batcher=WriteBatcher(4, 4, max_wait=0.2),
                           downloading=downloading.__contains__, clock=lambda: now[0])
        results = []
        store.start(lambda index, data, result: results.append(index))
        for step in steps:
            if isinstance(step, list):
                downloading.difference_update(step)
                store.submit([(i, bytearray(4)) for i in step])
            else:
                now[0] += step
                store.settle()
        for _ in range(200):
            if len(results) >= written_before_close:
                break
            await asyncio.sleep(0.01)
        assert len(results) == written_before_close, results
        store.close()

    asyncio.run(main())
    return storage


def test_pieces_of_one_extent_go_to_disk_in_one_write_once_none_is_in_flight():
    storage = run_batched(set(range(8)), [[1], [0], [3, 2], [4, 6]], written_before_close=4)
    # 0-3: held until 3 and 2 came (in one burst); 4 and 6 then wait for 5 and 7
    # (in flight) until close, which writes them rather than drop them
    assert storage.calls == [(0, 4), (4, 1), (6, 1)]
    assert sorted(storage.written) == [0, 1, 2, 3, 4, 6]


def test_a_piece_with_nothing_in_flight_beside_it_is_written_at_once():
    storage = run_batched({9}, [[5], [9]], written_before_close=2)
    assert storage.calls == [(5, 1), (9, 1)]


def test_pieces_wait_for_the_rest_of_their_extent_only_so_long():
    """A slow peer must not hold back the pieces that others sent: after max_wait
    they go out (and get announced) without the piece still coming in."""
    storage = run_batched(set(range(8)), [[0, 1], 0.1, [2], 0.15, [4]], written_before_close=3)
    assert storage.calls[0] == (0, 3)            # 3 never came: 0-2 went out after 0.25 s
    assert storage.calls[1:] == [(4, 1)]         # 4 was held from 0.25 s on, until close


def test_reads_on_the_loop_never_close_a_file_the_writer_is_using(tmp_path, monkeypatch):
    """More files than may stay open: an upload's read opens files (closing the least
    recently used) while the writer is inside a write. Without the lock the writer's
    descriptor is closed under it, and reused for another file."""
    count = 8
    sizes = [(f"f{i}", PIECE) for i in range(count)]
    payload = os.urandom(PIECE * count)
    info = make_info(sizes, payload)
    storage = TorrentStorage(info, tmp_path)
    storage.MAX_OPEN_FILES = 2
    storage._io_lock = storage._lock   # as __init__ decides for a torrent of many files
    storage.open(create=True)
    real_write_vectors = direct_io.write_vectors

    def slow_write_vectors(fd, views, offset):
        time.sleep(0.02)   # inside the write, with its descriptor in hand
        return real_write_vectors(fd, views, offset)

    monkeypatch.setattr(storage_module, "write_vectors", slow_write_vectors)
    errors = []
    stop = threading.Event()

    def writer():
        try:
            for index in range(count):
                buffer = aligned_buffer(PIECE)
                buffer[:] = payload[index * PIECE:(index + 1) * PIECE]
                storage.write_piece(index, buffer)
        except OSError as exc:
            errors.append(exc)
        finally:
            stop.set()

    thread = threading.Thread(target=writer)
    thread.start()
    while not stop.is_set():
        for index in range(count):
            storage.read_block(index, 0, 16)
    thread.join()
    storage.close()
    assert errors == []
    for i, (name, _) in enumerate(sizes):
        assert (tmp_path / "multi" / name).read_bytes() == payload[i * PIECE:(i + 1) * PIECE], name


def test_the_io_lock_is_real_only_when_files_may_be_closed(tmp_path):
    few = make_info([(f"f{i}", 10) for i in range(3)], os.urandom(30))
    many = make_info([(f"f{i}", 10) for i in range(40)], os.urandom(400))
    assert TorrentStorage(few, tmp_path)._io_lock is not TorrentStorage(few, tmp_path)._lock
    storage = TorrentStorage(many, tmp_path)
    assert storage._io_lock is storage._lock
