"""Verified pieces skip the page cache (O_DIRECT) where the span is aligned, and are
written buffered everywhere else; the bytes on disk are the same either way."""
from __future__ import annotations

import ctypes
import errno
import hashlib
import os
from pathlib import Path

import pytest

from app.core.bencode import encode
from app.core.metainfo import parse_info
from app.core.picker import PiecePicker
from app.io import direct_io
from app.io.direct_io import aligned_buffer, direct_write_fits, is_aligned_buffer
from app.io.selective_storage import SelectiveStorage
from app.io.storage import TorrentStorage

PIECE = 32 * 1024


def make_info(files: list[tuple[str, int]], payload: bytes, piece_length: int = PIECE):
    hashes = b"".join(hashlib.sha1(payload[i:i + piece_length]).digest()
                      for i in range(0, len(payload), piece_length))
    if len(files) == 1:
        d = {b"name": files[0][0].encode(), b"length": files[0][1]}
    else:
        d = {b"name": b"multi", b"files": [{b"path": [n.encode()], b"length": size} for n, size in files]}
    d.update({b"piece length": piece_length, b"pieces": hashes})
    return parse_info(encode(d))


def direct_paths() -> set[str]:
    """The files this process has open with O_DIRECT (from /proc/self/fdinfo)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            flags = int(Path(f"/proc/self/fdinfo/{fd}").read_text().split("flags:")[1].split()[0], 8)
            target = os.readlink(f"/proc/self/fd/{fd}")
        except (OSError, IndexError, ValueError):
            continue
        if flags & os.O_DIRECT:
            found.add(target)
    return found


def write_all_pieces(storage, info, payload: bytes) -> None:
    storage.open(create=True)
    for index in range(info.piece_count):
        piece = payload[index * info.piece_length:(index + 1) * info.piece_length]
        buffer = aligned_buffer(len(piece))
        buffer[:] = piece
        storage.write_piece(index, buffer)


def test_aligned_buffers_start_on_a_page_and_are_zeroed():
    buffer = aligned_buffer(PIECE)
    assert is_aligned_buffer(buffer) and not is_aligned_buffer(bytearray(PIECE))
    assert bytes(buffer) == bytes(PIECE)
    address = ctypes.addressof(ctypes.c_char.from_buffer(buffer))
    assert address % direct_io.ALIGNMENT == 0


@pytest.mark.parametrize(("buffer_offset", "file_offset", "length", "fits"), [
    (0, 0, 4096, True), (4096, 1 << 20, 32768, True), (0, 0, 0, False),
    (512, 0, 4096, False), (0, 100, 4096, False), (0, 0, 4000, False),
])
def test_which_spans_may_be_written_directly(buffer_offset, file_offset, length, fits):
    assert direct_write_fits(buffer_offset, file_offset, length) is fits


def test_single_file_aligned_pieces_go_direct_and_the_ragged_last_piece_buffered(tmp_path):
    payload = os.urandom(5 * PIECE + 1234)
    info = make_info([("a.bin", len(payload))], payload)
    out = tmp_path / "a.bin"
    storage = TorrentStorage(info, out)
    write_all_pieces(storage, info, payload)
    assert str(out) in direct_paths()   # the aligned pieces took the direct path
    storage.close()
    assert out.read_bytes() == payload


def test_plain_bytearrays_are_written_buffered(tmp_path):
    payload = os.urandom(2 * PIECE)
    info = make_info([("a.bin", len(payload))], payload)
    out = tmp_path / "a.bin"
    storage = TorrentStorage(info, out)
    storage.open(create=True)
    storage.write_piece(0, bytearray(payload[:PIECE]))
    storage.write_piece(1, memoryview(payload)[PIECE:])
    assert str(out) not in direct_paths()
    storage.close()
    assert out.read_bytes() == payload


def test_multi_file_with_files_starting_mid_block(tmp_path):
    sizes = [("x", 3 * PIECE), ("y", 5000), ("z", 2 * PIECE + 777), ("w", 1)]
    payload = os.urandom(sum(s for _, s in sizes))
    info = make_info(sizes, payload)
    storage = TorrentStorage(info, tmp_path)
    write_all_pieces(storage, info, payload)
    direct = direct_paths()
    assert str(tmp_path / "multi" / "x") in direct        # starts at 0: aligned
    assert str(tmp_path / "multi" / "z") not in direct    # starts at 3 * PIECE + 5000
    storage.close()
    assert b"".join((tmp_path / "multi" / n).read_bytes() for n, _ in sizes) == payload


def test_selected_files_go_direct_and_the_rest_to_the_part_file(tmp_path):
    sizes = [("x", 2 * PIECE), ("y", PIECE + 100), ("z", 2 * PIECE)]
    payload = os.urandom(sum(s for _, s in sizes))
    info = make_info(sizes, payload)
    storage = SelectiveStorage(info, tmp_path, frozenset({0}))
    write_all_pieces(storage, info, payload)
    assert str(tmp_path / "multi" / "x") in direct_paths()
    storage.close()
    assert (tmp_path / "multi" / "x").read_bytes() == payload[:2 * PIECE]
    reopened = SelectiveStorage(info, tmp_path, frozenset({0}))
    reopened.open(create=False)
    assert {0, 1} <= reopened.verified_pieces()   # x's pieces (and the one it shares with y) resume
    reopened.close()


def assert_three_pieces_land(tmp_path) -> None:
    """Three aligned pieces written through a TorrentStorage end up on disk, byte for byte."""
    payload = os.urandom(3 * PIECE)
    info = make_info([("a.bin", len(payload))], payload)
    storage = TorrentStorage(info, tmp_path / "a.bin")
    write_all_pieces(storage, info, payload)
    storage.close()
    assert (tmp_path / "a.bin").read_bytes() == payload


def test_a_file_system_without_o_direct_gets_buffered_writes(tmp_path, monkeypatch):
    real_open = os.open

    def refuse_direct(path, flags, mode=0o777):
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", refuse_direct)
    assert_three_pieces_land(tmp_path)


def test_a_direct_write_refused_by_the_device_is_done_buffered(tmp_path, monkeypatch):
    real_pwritev = os.pwritev
    refused = []

    def refuse_on_direct_fds(fd, buffers, offset):
        if int(Path(f"/proc/self/fdinfo/{fd}").read_text().split("flags:")[1].split()[0], 8) & os.O_DIRECT:
            refused.append(offset)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwritev(fd, buffers, offset)

    monkeypatch.setattr(os, "pwritev", refuse_on_direct_fds)
    assert_three_pieces_land(tmp_path)
    assert refused == [0]   # tried once, then buffered for the rest of the run


def test_a_full_disk_is_still_an_error_on_the_direct_path(tmp_path, monkeypatch):
    def full(fd, buffers, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwritev", full)
    payload = os.urandom(PIECE)
    info = make_info([("a.bin", len(payload))], payload)
    storage = TorrentStorage(info, tmp_path / "a.bin")
    with pytest.raises(OSError, match="cannot write .*No space left"):
        write_all_pieces(storage, info, payload)
    storage.close()


def test_the_picker_allocates_piece_buffers_with_the_factory_it_is_given():
    picker = PiecePicker([PIECE] * 4, new_buffer=aligned_buffer)
    blocks = picker.pick("peer", [1] * 4, 2)
    outcome = None
    for block in blocks:
        outcome = picker.on_block("peer", block.index, block.begin, bytes(block.length))
    assert outcome is not None and outcome.piece is not None and is_aligned_buffer(outcome.piece)
