"""app/core/write_batch.py and its storage side: equally rare pieces are picked an
extent at a time, verified pieces of an extent are held while another is in flight (for
a bounded time), and a run of adjacent pieces reaches each file in one vectored write."""
from __future__ import annotations

import os
import random

import pytest

from app.core.picker import PiecePicker
from app.core.pieces import buffer_slices
from app.core.write_batch import WriteBatcher, adjacent_runs, extent_order, pieces_per_extent
from app.io import direct_io
from app.io import storage as storage_module
from app.io.direct_io import aligned_buffer, write_vectors
from app.io.storage import TorrentStorage
from tests.unit.test_direct_io import PIECE, make_info


def test_an_extent_is_about_two_mib_of_pieces():
    assert pieces_per_extent(512 * 1024) == 4
    assert pieces_per_extent(16 * 1024) == 128
    assert pieces_per_extent(4 << 20) == 1


def test_extent_order_ranks_extents_at_random_and_pieces_in_order_inside_one():
    ranks = extent_order(10, 4, random.Random(7))
    assert len(set(ranks)) == 10
    for extent in ((0, 1, 2, 3), (4, 5, 6, 7), (8, 9)):
        got = [ranks[i] for i in extent]
        assert got == list(range(got[0], got[0] + len(extent)))   # consecutive, in order
        assert got[0] % 4 == 0
    orders = {tuple(extent_order(40, 4, random.Random(seed))) for seed in range(5)}
    assert len(orders) > 1   # the extents' order is random


def test_equally_rare_pieces_are_started_one_extent_after_another():
    picker = PiecePicker([16] * 16, block_size=16, extent_pieces=4, rng=random.Random(3))
    started = [block.index for block in picker.pick("peer", [1] * 16, 16)]
    assert sorted(started) == list(range(16))
    extents = [started[k:k + 4] for k in range(0, 16, 4)]
    for run in extents:
        assert run == list(range(run[0], run[0] + 4)) and run[0] % 4 == 0


def test_rarity_still_comes_before_the_extent():
    picker = PiecePicker([16] * 8, block_size=16, extent_pieces=4, rng=random.Random(1))
    picker.peer_has(range(8))
    picker.peer_has([6, 7])   # 0-5 are now rarer than 6 and 7
    first = [block.index for block in picker.pick("peer", [1] * 8, 6)]
    assert sorted(first) == [0, 1, 2, 3, 4, 5]


def always(_index: int) -> bool:
    return True


def test_runs_break_at_gaps_and_after_a_short_piece():
    a, b, c, d = bytearray(8), bytearray(8), bytearray(5), bytearray(8)
    runs = adjacent_runs([(0, a), (1, b), (2, c), (3, d), (5, a)], 8)
    assert [(r.first, len(r.buffers)) for r in runs] == [(0, 3), (3, 1), (5, 1)]
    assert runs[0].buffers == [a, b, c]


def test_pieces_are_held_while_one_of_their_extent_is_in_flight():
    batcher = WriteBatcher(8, 4)
    in_flight = {2, 3, 5}
    assert batcher.add([(0, bytearray(8)), (1, bytearray(8))], in_flight.__contains__, 0.0) == []
    assert batcher.held == 2
    assert batcher.add([(4, bytearray(8))], in_flight.__contains__, 0.0) == []
    in_flight -= {2, 3}
    runs = batcher.add([(3, bytearray(8)), (2, bytearray(8))], in_flight.__contains__, 0.0)
    assert [(r.first, len(r.buffers)) for r in runs] == [(0, 4)]
    assert batcher.held == 1
    assert [(r.first, len(r.buffers)) for r in batcher.release_all()] == [(4, 1)]
    assert batcher.held == 0


def test_the_oldest_extent_goes_out_when_too_many_pieces_are_held():
    batcher = WriteBatcher(8, 4, max_held=3)
    assert batcher.add([(0, bytearray(8)), (1, bytearray(8))], always, 0.0) == []
    assert batcher.add([(8, bytearray(8))], always, 0.0) == []
    runs = batcher.add([(12, bytearray(8))], always, 0.0)
    assert [(r.first, len(r.buffers)) for r in runs] == [(0, 2)]
    assert batcher.held == 2


def test_an_extent_waits_at_most_max_wait_from_its_first_held_piece():
    batcher = WriteBatcher(8, 4, max_wait=0.2)
    assert batcher.add([(0, bytearray(8))], always, 10.0) == []
    assert batcher.add([(1, bytearray(8))], always, 10.1) == []
    assert batcher.settle(always, 10.19) == []
    assert [(r.first, len(r.buffers)) for r in batcher.settle(always, 10.25)] == [(0, 2)]
    assert batcher.held == 0
    assert batcher.add([(2, bytearray(8))], always, 10.3) == []   # a new wait starts


def test_with_extents_of_one_piece_nothing_is_held():
    batcher = WriteBatcher(8)
    assert [(r.first, len(r.buffers)) for r in batcher.add([(3, bytearray(8))], always, 0.0)] == [(3, 1)]


@pytest.mark.parametrize(("lengths", "start", "length", "expected"), [
    ([8, 8, 5], 0, 21, [(0, 0, 8), (1, 0, 8), (2, 0, 5)]),
    ([8, 8, 5], 6, 4, [(0, 6, 8), (1, 0, 2)]),
    ([8, 8, 5], 16, 3, [(2, 0, 3)]),
    ([8], 3, 0, []),
])
def test_buffer_slices(lengths, start, length, expected):
    assert buffer_slices(lengths, start, length) == expected


def test_a_run_reaches_each_file_in_one_vectored_write(tmp_path, monkeypatch):
    sizes = [("x", 2 * PIECE + 100), ("y", PIECE), ("z", PIECE - 100)]   # y and z start mid-piece
    payload = os.urandom(sum(s for _, s in sizes))
    info = make_info(sizes, payload)
    calls = []
    real = direct_io.write_vectors

    def counting(fd, views, offset):
        calls.append(len(views))
        return real(fd, views, offset)

    monkeypatch.setattr(storage_module, "write_vectors", counting)
    storage = TorrentStorage(info, tmp_path)
    storage.open(create=True)
    buffers = []
    for index in range(info.piece_count):
        buffer = aligned_buffer(info.piece_size(index))
        buffer[:] = payload[index * PIECE:(index + 1) * PIECE]
        buffers.append(buffer)
    storage.write_pieces(0, buffers)
    storage.close()
    assert len(calls) == 3   # one per file: x from pieces 0-2, y from 2-3, z from 3
    assert calls[0] == 3
    assert b"".join((tmp_path / "multi" / n).read_bytes() for n, _ in sizes) == payload


def test_a_short_vectored_write_continues_where_it_stopped(tmp_path, monkeypatch):
    real = os.pwritev
    sizes = []

    def short(fd, buffers, offset):
        sizes.append(sum(len(b) for b in buffers))
        first = memoryview(buffers[0])
        return real(fd, [first[:len(first) // 2 + 1]], offset)   # a little over half the first view

    monkeypatch.setattr(os, "pwritev", short)
    data = [os.urandom(10), os.urandom(7), os.urandom(3)]
    path = tmp_path / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        write_vectors(fd, [memoryview(d) for d in data], 5)
    finally:
        os.close(fd)
    assert path.read_bytes() == bytes(5) + b"".join(data)
    assert sizes[0] == 20 and len(sizes) > 2
