"""app/core/choker.py: tit-for-tat regular slots, seeding round robin, the optimistic unchoke."""

import random

from app.core.choker import OPTIMISTIC_ROUNDS, PeerStats, choose_unchoked


def stats(key, rate=0.0, interested=True):
    return PeerStats(key, interested, download_rate=rate, upload_rate=0.0)


def test_best_uploaders_get_the_regular_slots():
    peers = [stats("a", 10), stats("b", 50), stats("c", 30), stats("d", 40), stats("e", 20),
             stats("f", 5)]
    decision = choose_unchoked(peers, seeding=False, round_number=1, optimistic=None,
                               rng=random.Random(0), slots=4)
    regular = {"b", "d", "c", "e"}                      # rates 50, 40, 30, 20
    assert regular < decision.unchoked
    assert decision.optimistic in {"a", "f"}            # the extra slot goes to someone else
    assert decision.unchoked == regular | {decision.optimistic}


def test_uninterested_peers_are_never_unchoked():
    peers = [stats("a", 100, interested=False), stats("b", 1), stats("c", 0, interested=False)]
    decision = choose_unchoked(peers, seeding=False, round_number=0, optimistic="c",
                               rng=random.Random(0), slots=4)
    assert decision.unchoked == {"b"}
    assert decision.optimistic is None


def test_no_peers():
    decision = choose_unchoked([], seeding=True, round_number=5, optimistic="x",
                               rng=random.Random(0))
    assert decision.unchoked == frozenset() and decision.optimistic is None


def test_optimistic_unchoke_is_kept_between_rotations():
    peers = [stats(k) for k in "abcdefg"]              # all rates 0: ranking keeps list order
    assert OPTIMISTIC_ROUNDS == 3
    for round_number in (1, 2, 4, 5):
        decision = choose_unchoked(peers, seeding=False, round_number=round_number,
                                   optimistic="g", rng=random.Random(round_number), slots=4)
        assert decision.optimistic == "g"
        assert decision.unchoked == {"a", "b", "c", "d", "g"}


def test_optimistic_unchoke_moves_every_third_round():
    peers = [stats(k) for k in "abcdefghij"]
    moved = set()
    for seed in range(20):
        decision = choose_unchoked(peers, seeding=False, round_number=3, optimistic="g",
                                   rng=random.Random(seed), slots=4)
        assert decision.optimistic in set("efghij")
        moved.add(decision.optimistic)
    assert len(moved) > 1                               # drawn at random


def test_optimistic_that_became_regular_is_replaced():
    peers = [stats("a", 1), stats("b", 99)]
    decision = choose_unchoked(peers, seeding=False, round_number=1, optimistic="b",
                               rng=random.Random(0), slots=1)
    assert decision.unchoked == {"b", "a"}
    assert decision.optimistic == "a"


def test_seeding_rotates_regular_slots_round_robin():
    peers = [stats(k) for k in "abcdef"]
    slots = []
    for round_number in range(3):
        decision = choose_unchoked(peers, seeding=True, round_number=round_number,
                                   optimistic=None, rng=random.Random(0), slots=2)
        slots.append(decision.unchoked - {decision.optimistic})
    # start = round * slots % 6: 0 -> ab, 2 -> cd, 4 -> ef
    assert slots == [{"a", "b"}, {"c", "d"}, {"e", "f"}]


def test_seeding_with_fewer_peers_than_slots_unchokes_them_all():
    peers = [stats("a"), stats("b", interested=False), stats("c")]
    decision = choose_unchoked(peers, seeding=True, round_number=7, optimistic=None,
                               rng=random.Random(0), slots=4)
    assert decision.unchoked == {"a", "c"}
    assert decision.optimistic is None
