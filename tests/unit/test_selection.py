"""app/core/selection.py: --select-file SPECs, the pieces and file spans a selection
needs, the sequential window; and the picker in --sequential mode."""

import hashlib
import random

import pytest

from app.core import bencode
from app.core.metainfo import parse_info
from app.core.picker import PiecePicker
from app.core.selection import (
    SelectionError,
    boundary_pieces,
    parse_spec,
    pieces_for_files,
    selected_entries,
    sequential_pick,
    split_spans,
)


def multi_info(lengths, piece_length=10):
    """A multi-file info dict whose files have these lengths (named f1, f2, ...)."""
    total = sum(lengths)
    count = -(-total // piece_length)
    raw = bencode.encode({b"name": b"t", b"piece length": piece_length,
                          b"pieces": b"".join(hashlib.sha1(bytes([i])).digest() for i in range(count)),
                          b"files": [{b"length": n, b"path": [f"f{i + 1}".encode()]}
                                     for i, n in enumerate(lengths)]})
    return parse_info(raw)


# --- SPEC ---------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, expected", [
    ("1", {0}), ("1,3-5", {0, 2, 3, 4}), (" 2 , 4 ", {1, 3}), ("3-3", {2}), ("1-6", set(range(6))),
    ("2,2,1-2", {0, 1}),
])
def test_spec_parsing(spec, expected):
    assert parse_spec(spec, 6) == expected


@pytest.mark.parametrize("spec, words", [
    ("", "empty"), ("0", "start at 1"), ("7", "out of range"), ("1-7", "out of range"),
    ("5-3", "not a valid range"), ("a", "not an index"), ("1,,2", "not an index"), ("-2", "not an index"),
    ("1-2-3", "not an index"),
])
def test_bad_specs_say_what_is_wrong(spec, words):
    with pytest.raises(SelectionError, match=words):
        parse_spec(spec, 6)


# --- pieces and spans -----------------------------------------------------------------------

def test_pieces_a_selection_needs():
    # files: [0,15) [15,15) [15,40) [40,41): pieces of 10 bytes: 0..4
    info = multi_info([15, 0, 25, 1])
    assert pieces_for_files(info, {0}) == {0, 1}
    assert pieces_for_files(info, {1}) == set()           # an empty file needs no piece
    assert pieces_for_files(info, {2}) == {1, 2, 3}
    assert pieces_for_files(info, {3}) == {4}
    assert pieces_for_files(info, {0, 3}) == {0, 1, 4}


def test_spans_split_selected_from_the_part_file():
    info = multi_info([15, 0, 25, 1])
    entries = selected_entries(info, {0})
    inside, outside = split_spans(info, 1, entries)         # piece 1 = bytes [10, 20)
    assert [(s.file.path, s.file_offset, s.piece_offset, s.length) for s in inside] == [(("f1",), 10, 0, 5)]
    assert [(s.file.path, s.file_offset, s.piece_offset, s.length) for s in outside] == [(("f3",), 0, 5, 5)]
    assert boundary_pieces(info, {0}) == [1]
    assert boundary_pieces(info, {0, 2}) == []
    assert boundary_pieces(info, {2}) == [1]                 # piece 3 is [30, 40): f3 alone
    assert boundary_pieces(info, {3}) == []                  # piece 4 is f4 alone


# --- the sequential window --------------------------------------------------------------------

def test_sequential_takes_the_rarest_within_the_window_only():
    availability = [5, 5, 1, 5, 0, 9, 9]
    everyone = [1] * 7
    assert sequential_pick(0, set(range(7)), everyone, availability, 1) == 0
    assert sequential_pick(0, set(range(7)), everyone, availability, 3) == 2     # rarest of 0, 1, 2
    assert sequential_pick(0, {3, 4, 5}, everyone, availability, 2) == 4
    assert sequential_pick(0, {0, 1}, [0, 1, 1, 1, 1, 1, 1], availability, 4) == 1  # what the peer has
    assert sequential_pick(0, {0}, [0] * 7, availability, 4) is None


def test_picker_in_sequential_mode_goes_in_order_and_keeps_the_endgame():
    sizes = [4] * 10
    p = PiecePicker(sizes, block_size=4, rng=random.Random(1), sequential_window=2, max_active_pieces=3)
    p.peer_has(range(10))
    everyone = [1] * 10
    order = []
    while not p.complete:
        blocks = p.pick("A", everyone, 1)
        assert blocks, "nothing to pick before completion"
        block = blocks[0]
        outcome = p.on_block("A", block.index, block.begin, bytes(block.length))
        if outcome.index is not None:
            p.verified(outcome.index)
            order.append(outcome.index)
    assert order == list(range(10))


def test_sequential_window_prefers_a_rare_piece_just_ahead():
    p = PiecePicker([4] * 6, block_size=4, rng=random.Random(1), sequential_window=3)
    p.peer_has([0, 1, 3, 4, 5])
    p.peer_has([0, 1, 3, 4, 5])
    p.peer_has([2])                      # piece 2 is the rarest of the next three
    assert p.pick("A", [1] * 6, 1)[0].index == 2
    assert p.pick("A", [1] * 6, 1)[0].index == 0


def test_sequential_endgame_still_duplicates_the_last_blocks():
    p = PiecePicker([4, 4], block_size=4, rng=random.Random(1), sequential_window=2)
    p.peer_has([0, 1])
    assert [b.index for b in p.pick("A", [1, 1], 5)] == [0, 1]
    assert p.in_endgame
    assert {b.index for b in p.pick("B", [1, 1], 5)} == {0, 1}
