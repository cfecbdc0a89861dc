"""Piece and block planning: how a torrent's byte stream splits into pieces, blocks and files."""

from __future__ import annotations

import mmap
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import NamedTuple

from app.core.metainfo import FileEntry

BLOCK_SIZE = 16 * 1024  # the largest request peers honour
# A piece being downloaded: a bytearray, or page-aligned memory (app.io.direct_io) that
# the disk can read straight from. Both take slice assignment and the buffer protocol.
PieceBuffer = bytearray | mmap.mmap


class Block(NamedTuple):
    """A request unit: `length` bytes at `begin` within piece `index`.
    A named tuple, not a dataclass: tens of thousands are made and hashed per GiB."""
    index: int  # type: ignore[assignment]  # shadows tuple.index(), which nothing here calls
    begin: int
    length: int


@dataclass(frozen=True)
class FileSpan:
    """Part of a piece that lands in one file."""
    file: FileEntry
    file_offset: int   # where in the file
    piece_offset: int  # where in the piece
    length: int


def blocks_of_piece(index: int, size: int, block_size: int = BLOCK_SIZE) -> list[Block]:
    """The blocks that make up piece `index` of `size` bytes, the last one short.
    (Built by map over tuple.__new__, without the named tuple's Python-level __new__ or
    a bytecode loop per block: a piece's 32 blocks cost a fifth of a named-tuple call each.)"""
    full, rest = divmod(size, block_size)
    blocks = list(map(tuple.__new__, repeat(Block, full),
                      zip(repeat(index, full), range(0, full * block_size, block_size), repeat(block_size, full))))
    if rest:
        blocks.append(Block(index, full * block_size, rest))
    return blocks


def buffer_slices(lengths: Sequence[int], start: int, length: int) -> list[tuple[int, int, int]]:
    """Where bytes [start, start+length) lie in buffers of `lengths` laid end to end:
    (buffer, begin, end) for each buffer the range touches."""
    slices, base, end = [], 0, start + length
    for k, size in enumerate(lengths):
        lo, hi = max(start, base), min(end, base + size)
        if lo < hi:
            slices.append((k, lo - base, hi - base))
        base += size
        if base >= end:
            break
    return slices


def file_spans(files: Sequence[FileEntry], start: int, length: int,
               offsets: Sequence[int] | None = None) -> Iterator[FileSpan]:
    """Split the stream range [start, start+length) at file boundaries.

    Zero-length files never receive bytes, so they yield no span. `offsets`
    (each file's offset, ascending) lets a torrent of many files skip to the
    first file concerned instead of scanning them all.
    """
    end = start + length
    first = max(0, bisect_right(offsets, start) - 1) if offsets is not None else 0
    for i in range(first, len(files)):
        f = files[i]
        if f.offset >= end:
            break
        lo, hi = max(start, f.offset), min(end, f.offset + f.length)
        if lo < hi:
            yield FileSpan(f, lo - f.offset, lo - start, hi - lo)


def stream_parts(files: Sequence[FileEntry], start: int, length: int,
                 offsets: Sequence[int] | None) -> Iterator[FileSpan | int]:
    """Stream range [start, start+length) as the file spans that hold it, with the padding
    between aligned files (v2 and hybrid torrents), which no file holds, as a count of zeros."""
    position, end = start, start + length
    for span in file_spans(files, start, length, offsets):
        at = start + span.piece_offset
        if at > position:
            yield at - position
        yield span
        position = at + span.length
    if position < end:
        yield end - position


def read_stream(files: Sequence[FileEntry], start: int, length: int, offsets: Sequence[int] | None,
                read: Callable[[FileSpan], bytes]) -> bytes:
    """The bytes of a stream range: each file's part from `read`, padding as zeros.
    A short `read` (a truncated file) stays short, so the caller's length check catches it."""
    return b"".join(bytes(part) if isinstance(part, int) else read(part)
                    for part in stream_parts(files, start, length, offsets))


def fetch_sizes(files: Sequence[FileEntry], piece_length: int, piece_sizes: Sequence[int]) -> list[int]:
    """How much of each piece is worth requesting: up to the last block holding file data.
    Blocks of padding alone (after an aligned file's end) are never fetched; they are zeros."""
    limits = [0] * len(piece_sizes)
    for f in files:
        if f.length:
            end = f.offset + f.length
            piece = (end - 1) // piece_length
            limits[piece] = max(limits[piece], end - piece * piece_length)
            for i in range(f.offset // piece_length, piece):
                limits[i] = piece_length
    # a piece of padding alone (possible with BEP 47 pad files) still fetches one block
    return [min(size, -(-max(limit, 1) // BLOCK_SIZE) * BLOCK_SIZE)
            for size, limit in zip(piece_sizes, limits, strict=True)]


class LocalPieces:
    """Our side of the torrent, one byte (0 or 1) per piece, shared by the picker
    (which updates it) and every peer session (which reads it to answer requests
    and to decide whether a peer is worth our interest)."""

    def __init__(self, piece_count: int, have: Iterable[int] = (), wanted: Iterable[int] | None = None) -> None:
        self.have = bytearray(piece_count)
        self.need = bytearray(piece_count)   # wanted and not yet verified
        for i in have:
            self.have[i] = 1
        for i in range(piece_count) if wanted is None else wanted:
            if not self.have[i]:
                self.need[i] = 1
        self.needed = sum(self.need)

    @property
    def piece_count(self) -> int:
        return len(self.have)

    def add(self, index: int) -> None:
        self.have[index] = 1
        if self.need[index]:
            self.need[index] = 0
            self.needed -= 1
