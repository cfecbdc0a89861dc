"""app/core/picker.py (PiecePicker): rarest first, random ties, partial pieces first,
endgame with cancels, release/timeout, hash failures, protocol errors.

Blocks are 4 bytes here (block_size=4) so the expected blocks are easy to write out.
"""

import random

import pytest

from app.core.errors import ProtocolError
from app.core.messages import Piece
from app.core.picker import ENDGAME_REQUESTS, PiecePicker
from app.core.pieces import Block

BS = 4


def all_have(n):
    return [True] * n


def picker(sizes, **kw):
    kw.setdefault("rng", random.Random(0))
    return PiecePicker(sizes, block_size=BS, **kw)


def data_for(block: Block) -> bytes:
    return bytes([65 + block.index]) * block.length


# --- choosing pieces ----------------------------------------------------------------------

def test_rarest_first():
    p = picker([4, 4, 4, 4])
    p.peer_has([0, 1, 2, 3])          # peer A: everything
    p.peer_has([0, 2, 3])
    p.peer_has([0, 3])
    p.peer_has([3, 3])                # (have messages may count twice)
    assert p.availability == [3, 1, 2, 5]
    order = [p.pick("A", all_have(4), 1)[0].index for _ in range(4)]
    assert order == [1, 2, 0, 3]


def test_rarest_among_what_the_peer_has():
    p = picker([4, 4, 4])
    p.peer_has([0, 1, 2])
    p.peer_has([1, 2])
    p.peer_has([2])
    assert p.pick("A", [False, True, True], 1) == [Block(1, 0, 4)]
    assert p.pick("B", [False, False, True], 1) == [Block(2, 0, 4)]
    assert p.pick("C", [False, True, True], 1) == []        # nothing left that C has
    assert p.pick("D", [True, False, False], 1) == [Block(0, 0, 4)]


def test_availability_goes_down_when_a_peer_leaves():
    p = picker([4, 4])
    p.peer_has([0, 1])
    p.peer_has([0])                    # piece 1 rarest
    p.peer_has([0], delta=-1)
    p.peer_has([0], delta=-1)          # now piece 0 has 0, piece 1 has 1
    assert p.availability == [0, 1]
    assert p.pick("A", all_have(2), 1) == [Block(0, 0, 4)]


def _order_of_equals(seed, n=12):
    p = picker([4] * n, rng=random.Random(seed))
    p.peer_has(range(n))
    return [p.pick("A", all_have(n), 1)[0].index for _ in range(n)]


def test_ties_are_broken_at_random_by_the_given_rng():
    orders = {tuple(_order_of_equals(seed)) for seed in range(10)}
    assert len(orders) > 1                               # different seeds, different orders
    assert all(sorted(o) == list(range(12)) for o in orders)
    assert _order_of_equals(5) == _order_of_equals(5)    # the same seed, the same order


def test_ties_do_not_override_rarity():
    for seed in range(10):
        p = picker([4] * 6, rng=random.Random(seed))
        p.peer_has(range(6))
        p.peer_has([0, 1, 2])          # 3, 4, 5 are rarer
        first = {p.pick("A", all_have(6), 1)[0].index for _ in range(3)}
        assert first == {3, 4, 5}


def test_blocks_of_a_piece_come_in_order_with_a_short_last_block():
    p = picker([10])
    assert p.pick("A", [True], 10) == [Block(0, 0, 4), Block(0, 4, 4), Block(0, 8, 2)]


def test_partial_pieces_are_finished_first():
    p = picker([12, 12, 12])
    p.peer_has([0, 1, 2])
    p.peer_has([1, 2])                 # piece 0 is rarest
    assert p.pick("A", all_have(3), 1) == [Block(0, 0, 4)]
    p.peer_has([1], delta=-1)          # piece 1 becomes as rare as piece 0 was ...
    p.peer_has([1], delta=-1)
    # ... but B must first get the rest of the started piece 0
    assert p.pick("B", all_have(3), 2) == [Block(0, 4, 4), Block(0, 8, 4)]
    assert p.pick("B", all_have(3), 1) == [Block(1, 0, 4)]


def test_partial_piece_the_peer_lacks_is_not_offered():
    p = picker([8, 8])
    p.pick("A", [True, False], 1)
    assert p.pick("B", [False, True], 1) == [Block(1, 0, 4)]


def test_max_active_pieces():
    p = picker([8, 8, 8], max_active_pieces=2)
    got = p.pick("A", all_have(3), 10)
    assert len({b.index for b in got}) == 2 and len(got) == 4
    assert p.pick("B", all_have(3), 10) == []     # a third piece may not start
    assert not p.in_endgame                       # one piece is still missing


def test_max_active_pieces_is_at_least_one():
    p = picker([4, 4], max_active_pieces=0)
    assert len(p.pick("A", all_have(2), 5)) == 1


def test_have_and_wanted():
    p = picker([4, 4, 4, 4], have=[0], wanted=[0, 1, 2])
    got = p.pick("A", all_have(4), 10)
    assert sorted(b.index for b in got) == [1, 2]          # not 0 (have), not 3 (unwanted)
    assert p.bytes_left() == 8
    assert not p.complete


# --- receiving ------------------------------------------------------------------------------

def test_piece_completes_with_assembled_bytes():
    p = picker([10])
    blocks = p.pick("A", [True], 10)
    for begin, data in ((4, b"4567"), (0, b"0123")):     # any order
        partial = p.on_block("A", 0, begin, data)
        assert (partial.piece, partial.index, partial.cancels, partial.duplicate) == (None, None, (), False)
    outcome = p.on_block("A", 0, 8, b"89")
    assert outcome.piece == b"0123456789"
    assert outcome.index == 0
    assert outcome.cancels == ()
    assert len(blocks) == 3
    assert p.verifying == {0}
    p.verified(0)
    assert p.complete and p.bytes_left() == 0 and p.done == {0}


def test_a_burst_of_blocks_completes_several_pieces_in_one_call():
    p = picker([8, 8, 8])
    picked = p.pick("A", [True, True, True], 10)
    assert len(picked) == 6
    *burst, last = picked                                   # two whole pieces and half of the third
    arrivals = p.on_blocks("A", [Piece(b.index, b.begin, data_for(b)) for b in burst])
    assert arrivals.new_bytes == 20 and arrivals.cancels == []
    whole = sorted({b.index for b in burst} - {last.index})
    assert sorted((i, bytes(buffer)) for i, buffer in arrivals.pieces) == [(i, bytes([65 + i]) * 8) for i in whole]
    assert p.verifying == set(whole) and list(p.active) == [last.index]
    arrivals = p.on_blocks("A", [Piece(last.index, last.begin, data_for(last))])
    assert arrivals.new_bytes == 4 and [i for i, _ in arrivals.pieces] == [last.index]
    assert p.outstanding["A"] == set()


def test_only_started_pieces_count_as_downloading():
    """The write batcher holds verified pieces only for these: a piece not started
    yet may never come (no peer has it)."""
    p = picker([8, 8, 8])
    first, second = p.pick("A", [True, False, True], 2)     # one piece, both blocks
    assert [p.is_downloading(i) for i in range(3)] == [first.index == i for i in range(3)]
    p.on_blocks("A", [Piece(b.index, b.begin, data_for(b)) for b in (first, second)])
    assert not any(p.is_downloading(i) for i in range(3))   # complete: being verified now


def test_a_burst_with_late_copies_counts_only_the_new_bytes_and_cancels_the_spares():
    p = picker([8])
    b0, b1 = Block(0, 0, 4), Block(0, 4, 4)
    p.pick("A", [True], 2)
    p.pick("B", [True], 2)                                  # endgame: spare copies of both
    first = p.on_blocks("A", [Piece(0, 0, b"aaaa")])
    assert first.cancels == [("B", b0)] and first.new_bytes == 4
    burst = p.on_blocks("B", [Piece(0, 0, b"bbbb"), Piece(0, 4, b"BBBB")])   # a cancelled one, then a new one
    assert burst.new_bytes == 4 and burst.cancels == [("A", b1)]
    assert [(i, bytes(buffer)) for i, buffer in burst.pieces] == [(0, b"aaaaBBBB")]


def test_an_unrequested_block_in_a_burst_is_a_protocol_error():
    p = picker([8, 8])
    p.pick("A", [True, False], 2)
    with pytest.raises(ProtocolError, match="unrequested block 1:0"):
        p.on_blocks("A", [Piece(0, 0, b"aaaa"), Piece(1, 0, b"xxxx")])


@pytest.mark.parametrize("peer, index, begin, data", [
    ("A", 0, 4, b"xxxx"),       # never requested
    ("A", 0, 0, b"xx"),         # wrong length
    ("A", 0, 0, b"xxxxx"),
    ("B", 0, 0, b"xxxx"),       # requested from A, not from B
    ("A", 1, 0, b"xxxx"),       # another piece
])
def test_unrequested_block_is_a_protocol_error(peer, index, begin, data):
    p = picker([8, 8])
    assert p.pick("A", [True, False], 1) == [Block(0, 0, 4)]
    with pytest.raises(ProtocolError):
        p.on_block(peer, index, begin, data)


def test_the_same_block_twice_from_one_request_is_a_protocol_error():
    p = picker([8])
    p.pick("A", [True], 1)
    p.on_block("A", 0, 0, b"aaaa")
    with pytest.raises(ProtocolError):
        p.on_block("A", 0, 0, b"aaaa")


# --- endgame --------------------------------------------------------------------------------

def test_endgame_duplicates_and_cancels():
    p = picker([8])
    b0, b1 = Block(0, 0, 4), Block(0, 4, 4)
    assert p.pick("A", [True], 5) == [b0, b1]
    assert p.in_endgame
    assert sorted(p.pick("B", [True], 5)) == [b0, b1]       # spare copies
    assert p.pick("C", [True], 1) == []                     # each block has ENDGAME_COPIES askers
    assert p.pick("B", [True], 5) == []                     # B already asked for both
    first = p.on_block("A", 0, 0, b"aaaa")
    assert first.piece is None and not first.duplicate
    assert first.cancels == (("B", b0),)
    late = p.on_block("B", 0, 0, b"bbbb")                   # cancelled but arrived anyway
    assert late.duplicate and late.piece is None
    done = p.on_block("B", 0, 4, b"BBBB")
    assert done.piece == b"aaaaBBBB"
    assert done.cancels == (("A", b1),)
    with pytest.raises(ProtocolError):
        p.on_block("C", 0, 4, b"cccc")                     # C was never asked for anything
    assert p.on_block("A", 0, 4, b"AAAA").duplicate


def test_endgame_requests_per_refill_are_bounded():
    p = picker([160])                                       # 40 blocks of 4 bytes
    assert len(p.pick("A", [True], 100)) == 40
    assert p.in_endgame
    assert len(p.pick("B", [True], 100)) == ENDGAME_REQUESTS < 40


def test_endgame_prefers_blocks_with_fewest_requesters():
    p = picker([8])
    b0, b1 = Block(0, 0, 4), Block(0, 4, 4)
    p.pick("A", [True], 2)
    assert p.pick("B", [True], 1) == [b0]      # both have one asker; ties by offset
    assert p.pick("C", [True], 1) == [b1]      # b1 has one asker, b0 two
    assert p.pick("D", [True], 2) == []        # both at ENDGAME_COPIES askers now


def test_no_endgame_while_pieces_are_missing():
    p = picker([4, 4])
    assert p.pick("A", [True, False], 1) == [Block(0, 0, 4)]
    assert not p.in_endgame                         # piece 1 was never started
    assert p.pick("B", [True, False], 1) == []      # so no spare copy of piece 0 for B


def test_endgame_only_offers_pieces_the_peer_has():
    p = picker([4, 4])
    p.pick("A", [True, True], 2)
    assert p.in_endgame
    assert p.pick("B", [False, True], 2) == [Block(1, 0, 4)]


# --- release, timeouts, failures ---------------------------------------------------------------

def test_release_after_timeout_reassigns_to_another_peer():
    p = picker([8])
    b0, b1 = Block(0, 0, 4), Block(0, 4, 4)
    assert p.pick("A", [True], 2) == [b0, b1]
    p.release("A", [b1])                           # A timed out on b1
    assert not p.in_endgame
    assert p.pick("B", [True], 2) == [b1]
    assert p.on_block("A", 0, 0, b"aaaa").piece is None
    done = p.on_block("B", 0, 4, b"bbbb")
    assert done.piece == b"aaaabbbb"
    late = p.on_block("A", 0, 4, b"AAAA")          # A's withdrawn copy, late
    assert late.duplicate


def test_late_copy_of_a_withdrawn_block_before_the_new_one_is_used_and_cancels():
    p = picker([8])
    b1 = Block(0, 4, 4)
    p.pick("A", [True], 2)
    p.release("A", [b1])
    p.pick("B", [True], 2)
    outcome = p.on_block("A", 0, 4, b"aaaa")       # A delivers after all
    assert outcome.cancels == (("B", b1),)
    assert p.on_block("B", 0, 4, b"bbbb").duplicate


def test_release_keeps_a_block_another_peer_still_has():
    p = picker([4])
    b0 = Block(0, 0, 4)
    p.pick("A", [True], 1)
    p.pick("B", [True], 1)                         # endgame copy
    p.release("A", [b0])
    assert p.pick("C", [True], 1) == [b0]          # still endgame: B has it, C may copy
    assert p.on_block("B", 0, 0, b"bbbb").piece == b"bbbb"


def test_disconnect_releases_everything():
    p = picker([12])
    p.pick("A", [True], 3)
    p.release("A")
    assert "A" not in p.outstanding
    assert sorted(p.pick("B", [True], 5)) == [Block(0, 0, 4), Block(0, 4, 4), Block(0, 8, 4)]
    with pytest.raises(ProtocolError):
        p.on_block("A", 0, 0, b"aaaa")             # a gone peer's data is not expected


def test_failed_with_one_sender_blames_it_and_requeues():
    p = picker([8, 4])
    p.peer_has([0, 1])
    p.peer_has([1])                                 # piece 0 is rarer: picked first
    assert p.pick("A", [True, True], 2) == [Block(0, 0, 4), Block(0, 4, 4)]
    p.on_block("A", 0, 0, b"aaaa")
    assert p.on_block("A", 0, 4, b"AAAA").piece == b"aaaaAAAA"
    assert p.failed(0, b"aaaaAAAA") == {"A"}
    assert 0 in p.missing and 0 not in p.verifying
    assert p.pick("C", [True, False], 1) == [Block(0, 0, 4)]   # not exclusive: anyone may help
    assert p.pick("D", [True, False], 1) == [Block(0, 4, 4)]
    p.on_block("C", 0, 0, b"good")
    assert p.on_block("D", 0, 4, b"GOOD").piece == b"goodGOOD"
    assert p.verified(0, b"goodGOOD") == set()
    assert p.done == {0}


def _mixed_failure():
    """Piece 0 (3 blocks) from A (block 0), B (block 1), C (block 2); B's block is bad."""
    p = picker([12])
    for peer, begin in (("A", 0), ("B", 4), ("C", 8)):
        assert p.pick(peer, [True], 1) == [Block(0, begin, 4)]
    p.on_block("A", 0, 0, b"good")
    p.on_block("B", 0, 4, b"BAD!")
    bad_copy = p.on_block("C", 0, 8, b"GOOD").piece
    assert bad_copy == b"goodBAD!GOOD"
    assert p.failed(0, bad_copy) == set()           # several senders: nobody blamed yet
    assert 0 in p.missing
    return p


def test_failed_with_several_senders_refetches_from_one_peer_then_names_the_liar():
    p = _mixed_failure()
    assert p.pick("D", [True], 1) == [Block(0, 0, 4)]            # D now owns the refetch
    assert p.pick("E", [True], 3) == []                          # nobody else may help ...
    assert p.pick("D", [True], 3) == [Block(0, 4, 4), Block(0, 8, 4)]
    assert p.in_endgame
    assert p.pick("E", [True], 3) == []                          # ... not even in endgame
    p.on_block("D", 0, 0, b"good")
    p.on_block("D", 0, 4, b"fine")
    assert p.on_block("D", 0, 8, b"GOOD").piece == b"goodfineGOOD"
    assert p.verified(0, b"goodfineGOOD") == {"B"}               # only B's block differs
    assert p.complete


def test_refetch_owner_leaving_frees_the_piece():
    p = _mixed_failure()
    assert p.pick("D", [True], 1) == [Block(0, 0, 4)]
    p.release("D")                                               # D disconnects
    assert sorted(p.pick("E", [True], 3)) == [Block(0, 0, 4), Block(0, 4, 4), Block(0, 8, 4)]
    assert p.pick("F", [True], 3) == []


def test_refetch_owner_choking_us_frees_the_piece_for_another_peer():
    """Its requests come back on a choke (or time out): the refetch must not wait for
    a peer that may never unchoke us."""
    p = _mixed_failure()
    taken = p.pick("D", [True], 2)
    assert taken == [Block(0, 0, 4), Block(0, 4, 4)]
    p.release("D", taken)                                        # D choked us
    assert sorted(p.pick("E", [True], 3)) == [Block(0, 0, 4), Block(0, 4, 4), Block(0, 8, 4)]
    assert p.pick("D", [True], 3) == []                          # E owns it now


def test_refetch_owner_stopping_midway_starts_the_piece_over():
    """Blocks D delivered are fetched again from E, so that one peer sends it all and
    the good copy still names the liar."""
    p = _mixed_failure()
    taken = p.pick("D", [True], 3)
    p.on_block("D", 0, 0, b"good")
    p.release("D", [b for b in taken if b.begin])                # the rest timed out
    assert sorted(p.pick("E", [True], 3)) == [Block(0, 0, 4), Block(0, 4, 4), Block(0, 8, 4)]
    p.on_block("E", 0, 0, b"good")
    p.on_block("E", 0, 4, b"fine")
    assert p.on_block("E", 0, 8, b"GOOD").piece == b"goodfineGOOD"
    assert p.verified(0, b"goodfineGOOD") == {"B"}


def test_a_peer_releasing_some_blocks_keeps_its_refetch():
    p = _mixed_failure()
    taken = p.pick("D", [True], 3)
    p.release("D", taken[:1])                                    # one timed out, two still coming
    assert p.pick("E", [True], 3) == []
    assert p.pick("D", [True], 3) == [taken[0]]


def test_refetch_by_a_liar_blames_it_alone():
    p = _mixed_failure()
    assert p.pick("B", [True], 3) == [Block(0, 0, 4), Block(0, 4, 4), Block(0, 8, 4)]
    p.on_block("B", 0, 0, b"good")
    p.on_block("B", 0, 4, b"BAD!")
    assert p.failed(0, p.on_block("B", 0, 8, b"GOOD").piece) == {"B"}   # one sender: blamed now
    p.release("B")                                                      # and banned
    assert p.pick("D", [True], 3) == [Block(0, 0, 4), Block(0, 4, 4), Block(0, 8, 4)]
    p.on_block("D", 0, 0, b"good")
    p.on_block("D", 0, 4, b"fine")
    p.on_block("D", 0, 8, b"GOOD")
    assert p.verified(0, b"goodfineGOOD") == {"B"}


def test_verified_without_data_blames_nobody():
    p = _mixed_failure()
    p.pick("D", [True], 3)
    for begin, data in ((0, b"good"), (4, b"fine"), (8, b"GOOD")):
        p.on_block("D", 0, begin, data)
    assert p.verified(0) == set()


def test_failed_piece_is_not_complete():
    p = picker([4])
    p.pick("A", [True], 1)
    p.on_block("A", 0, 0, b"xxxx")
    p.failed(0, b"xxxx")
    assert not p.complete
    assert p.bytes_left() == 4


# --- known bugs ---------------------------------------------------------------------------------

def test_late_copy_of_a_released_block_is_not_requested_again():
    p = picker([8])
    b1 = Block(0, 4, 4)
    p.pick("A", [True], 2)
    p.release("A", [b1])                       # timeout: b1 goes back to the pool
    assert not p.on_block("A", 0, 4, b"AAAA").duplicate   # ... then A delivers it after all
    assert b1 not in p.pick("B", [True], 2)    # we have b1's bytes: asking B again is waste


def test_block_withdrawn_twice_from_one_peer_may_arrive_twice():
    p = picker([4])
    b0 = Block(0, 0, 4)
    assert p.pick("A", [True], 1) == [b0]
    p.release("A", [b0])                       # first request times out
    assert p.pick("A", [True], 1) == [b0]      # asked again (A is the only peer)
    p.release("A", [b0])                       # times out again
    assert p.on_block("A", 0, 0, b"aaaa").piece == b"aaaa"   # answer to request 1
    assert p.on_block("A", 0, 0, b"aaaa").duplicate          # answer to request 2


def test_release_after_the_piece_completed_changes_nothing():
    p = picker([4, 4])
    b0 = Block(0, 0, 4)
    p.pick("A", [True, False], 1)
    p.pick("B", [True, False], 1)                  # endgame copy
    assert p.on_block("A", 0, 0, b"aaaa").piece == b"aaaa"
    p.release("B", [b0])                           # too late: the piece is being verified
    assert p.verifying == {0}
    assert p.pick("C", [True, True], 5) == [Block(1, 0, 4)]
    assert p.on_block("B", 0, 0, b"bbbb").duplicate


def test_pieces_awaiting_their_hash_check_count_against_the_memory_bound():
    p = picker([4, 4, 4], max_active_pieces=2)
    blocks = p.pick("A", [True] * 3, 10)
    assert len({b.index for b in blocks}) == 2            # two pieces in flight, no more
    for b in blocks:
        p.on_block("A", b.index, b.begin, b"x" * b.length)
    assert len(p.verifying) == 2                          # both complete, not yet checked
    assert p.pick("A", [True] * 3, 10) == []              # no third buffer until one is checked
    p.verified(blocks[0].index)
    assert len(p.pick("A", [True] * 3, 10)) == 1


def test_one_piece_picks_never_mix_pieces():
    """A web seed asks for one range per piece: a short piece picked first must not
    make every later pick straddle two pieces."""
    p = picker([4 * BS, 4 * BS, BS])
    p.peer_has([0, 1])                 # the 1-block last piece is the rarest: picked first
    picks = []
    while blocks := p.pick("mirror", all_have(3), 4, one_piece=True):
        picks.append(blocks)
        for block in blocks:
            p.on_block("mirror", block.index, block.begin, data_for(block))
    pieces = [{b.index for b in blocks} for blocks in picks]
    assert pieces[0] == {2} and sorted(pieces[1:], key=min) == [{0}, {1}]
    assert [len(blocks) for blocks in picks] == [1, 4, 4]
    mixed = picker([4 * BS, 4 * BS, BS])
    mixed.peer_has([0, 1])
    assert len({b.index for b in mixed.pick("peer", all_have(3), 4)}) == 2   # without it: two pieces


def test_a_pick_stopped_by_the_active_piece_limit_says_so():
    p = picker([2 * BS] * 3, max_active_pieces=1)
    first = p.pick("A", all_have(3), 2)           # the one allowed piece, whole
    assert len(first) == 2 and not p.held_back
    assert p.pick("B", all_have(3), 2) == [] and p.held_back   # B waits for a buffer
    p.held_back = False                            # the engine asks everyone again, then clears it
    for block in first:
        outcome = p.on_block("A", block.index, block.begin, data_for(block))
    p.verified(outcome.index)
    assert len(p.pick("B", all_have(3), 2)) == 2 and not p.held_back
