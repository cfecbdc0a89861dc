"""app/core/pieces.py: blocks of a piece and how stream ranges map onto files."""

import pytest

from app.core.metainfo import FileEntry
from app.core.pieces import BLOCK_SIZE, Block, FileSpan, blocks_of_piece, file_spans


def test_block_size_is_16_kib():
    assert BLOCK_SIZE == 16384


def test_full_piece_of_whole_blocks():
    assert blocks_of_piece(3, 65536) == [Block(3, 0, 16384), Block(3, 16384, 16384),
                                         Block(3, 32768, 16384), Block(3, 49152, 16384)]


def test_short_last_block():
    assert blocks_of_piece(9, 76923) == [Block(9, 0, 16384), Block(9, 16384, 16384),
                                         Block(9, 32768, 16384), Block(9, 49152, 16384),
                                         Block(9, 65536, 11387)]
    assert {type(b) for b in blocks_of_piece(9, 76923)} == {Block}   # named: the picker reads b.index


def test_piece_smaller_than_a_block():
    assert blocks_of_piece(0, 1) == [Block(0, 0, 1)]
    assert blocks_of_piece(0, 16383) == [Block(0, 0, 16383)]
    assert blocks_of_piece(0, 16385) == [Block(0, 0, 16384), Block(0, 16384, 1)]


def test_custom_block_size_and_empty_piece():
    assert blocks_of_piece(1, 10, block_size=4) == [Block(1, 0, 4), Block(1, 4, 4), Block(1, 8, 2)]
    assert blocks_of_piece(1, 0) == []


# --- file spans -----------------------------------------------------------------------------

A = FileEntry(("a",), 10, 0)
EMPTY = FileEntry(("empty",), 0, 10)
B = FileEntry(("b",), 25, 10)
EMPTY2 = FileEntry(("empty2",), 0, 35)
C = FileEntry(("c",), 5, 35)
FILES = (A, EMPTY, B, EMPTY2, C)     # 40 bytes in all


def test_range_inside_one_file():
    assert list(file_spans(FILES, 12, 5)) == [FileSpan(B, 2, 0, 5)]


def test_range_across_files_skips_zero_length_ones():
    # piece of 16 bytes starting at stream offset 0: a[0:10] + b[0:6]
    assert list(file_spans(FILES, 0, 16)) == [FileSpan(A, 0, 0, 10), FileSpan(B, 0, 10, 6)]
    # last piece, offset 32..40: b[22:25] + c[0:5]
    assert list(file_spans(FILES, 32, 8)) == [FileSpan(B, 22, 0, 3), FileSpan(C, 0, 3, 5)]


def test_range_covering_everything():
    assert list(file_spans(FILES, 0, 40)) == [FileSpan(A, 0, 0, 10), FileSpan(B, 0, 10, 25),
                                              FileSpan(C, 0, 35, 5)]


def test_range_ending_exactly_on_a_boundary():
    assert list(file_spans(FILES, 5, 5)) == [FileSpan(A, 5, 0, 5)]
    assert list(file_spans(FILES, 10, 25)) == [FileSpan(B, 0, 0, 25)]


def test_empty_range_and_range_past_the_end():
    assert list(file_spans(FILES, 10, 0)) == []
    assert list(file_spans(FILES, 40, 16)) == []


def test_only_zero_length_files():
    assert list(file_spans((FileEntry(("z",), 0, 0),), 0, 16)) == []


@pytest.mark.parametrize("start, length", [(0, 40), (3, 30), (9, 2), (34, 2), (0, 1), (39, 1)])
def test_spans_tile_the_range(start, length):
    spans = list(file_spans(FILES, start, length))
    assert sum(s.length for s in spans) == length
    pos = 0
    for s in spans:
        assert s.piece_offset == pos
        assert s.file.offset + s.file_offset == start + pos
        assert s.length > 0 and s.file_offset + s.length <= s.file.length
        pos += s.length
