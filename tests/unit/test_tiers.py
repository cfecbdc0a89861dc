import random

import pytest

from app.core.tiers import TrackerTiers


def test_single_announce_is_one_tier_of_one():
    tiers = TrackerTiers((("http://a/announce",),), random.Random(1))
    assert list(tiers) == ["http://a/announce"]
    assert tiers.tiers == (("http://a/announce",),)


def test_no_trackers_gives_an_empty_list():
    tiers = TrackerTiers((), random.Random(1))
    assert list(tiers) == []
    assert len(tiers) == 0


def test_tiers_keep_their_order_and_members():
    first, second = ("a", "b", "c", "d"), ("e", "f")
    tiers = TrackerTiers((first, second), random.Random(7))
    urls = list(tiers)
    assert sorted(urls[:4]) == sorted(first)
    assert sorted(urls[4:]) == sorted(second)


def test_each_tier_is_shuffled_with_the_given_rng():
    tier = tuple(f"udp://t{i}:80" for i in range(8))
    orders = {tuple(TrackerTiers((tier,), random.Random(seed))) for seed in range(10)}
    assert len(orders) > 1, "shuffling should not always give the same order"
    same_seed = [list(TrackerTiers((tier,), random.Random(3))) for _ in range(2)]
    assert same_seed[0] == same_seed[1]


def test_input_is_not_mutated_and_is_copied():
    tier = ["a", "b", "c"]
    tiers = TrackerTiers([tier], random.Random(2))
    tiers.promote(list(tiers)[-1])
    assert tier == ["a", "b", "c"]


def test_duplicates_are_dropped_keeping_the_first_occurrence():
    tiers = TrackerTiers((("a", "b", "a"), ("b", "c"), ("a",)), random.Random(0))
    assert sorted(tiers.tiers[0]) == ["a", "b"]
    assert tiers.tiers[1] == ("c",)
    assert len(tiers.tiers) == 2  # the third tier held only a duplicate
    assert len(tiers) == 3


def test_blank_urls_are_dropped():
    tiers = TrackerTiers((("", "  ", "a"),), random.Random(0))
    assert list(tiers) == ["a"]


def test_promote_moves_a_tracker_to_the_front_of_its_own_tier():
    tiers = TrackerTiers((("a", "b", "c"), ("d", "e")), random.Random(5))
    first_tier, second_tier = tiers.tiers
    tiers.promote(second_tier[-1])
    assert tiers.tiers[0] == first_tier
    assert tiers.tiers[1] == (second_tier[-1],) + second_tier[:-1]
    tiers.promote(first_tier[2])
    assert tiers.tiers[0] == (first_tier[2], first_tier[0], first_tier[1])


def test_promote_during_iteration_does_not_disturb_it():
    tiers = TrackerTiers((("a", "b", "c"),), random.Random(4))
    before = list(tiers)
    seen = []
    for url in tiers:
        seen.append(url)
        tiers.promote(url)
    assert seen == before
    assert list(tiers) == before[::-1]


def test_promote_unknown_url_raises():
    tiers = TrackerTiers((("a",),), random.Random(0))
    with pytest.raises(KeyError):
        tiers.promote("zzz")
