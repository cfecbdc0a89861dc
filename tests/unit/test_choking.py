"""app/io/choking.py: the choker's rounds carried out on connections (fakes for the
connections; the decision itself is tested in test_core_choker.py)."""

import random
from types import SimpleNamespace

from app.core.choker import REGULAR_SLOTS, ROUND_SECONDS
from app.io.choking import ChokeRounds, free_upload_slot


class FakeSession:
    def __init__(self, interested: bool) -> None:
        self.peer_interested = interested
        self.am_choking = True

    def choke(self) -> None:
        self.am_choking = True

    def unchoke(self) -> None:
        self.am_choking = False


def peer(rate: float, interested: bool = True, admitted: bool = True):
    flushed = []
    return SimpleNamespace(session=FakeSession(interested), rate=rate, up_rate=0.0, admitted=admitted,
                           conn=SimpleNamespace(flush_soon=lambda: flushed.append(1)), flushed=flushed)


def test_a_round_unchokes_the_best_uploaders_and_one_optimistic_peer():
    peers = {("10.0.0.1", 6881 + i): peer(rate=float(i)) for i in range(8)}
    waiting = peer(rate=1e9, admitted=False)   # no slot yet: does not compete
    peers[("10.0.0.9", 1)] = waiting
    rounds = ChokeRounds(random.Random(1))
    assert rounds.due(0.0)
    rounds.rechoke(peers, seeding=False, now=100.0)
    unchoked = {a for a, p in peers.items() if not p.session.am_choking}
    best = {("10.0.0.1", 6881 + i) for i in range(8 - REGULAR_SLOTS, 8)}
    assert best < unchoked and len(unchoked) == REGULAR_SLOTS + 1
    assert waiting.session.am_choking
    assert all(p.flushed for p in peers.values())   # each session's choke/unchoke goes out now
    assert not rounds.due(100.0 + ROUND_SECONDS - 1) and rounds.due(100.0 + ROUND_SECONDS)
    assert not free_upload_slot(peers)


def test_a_peer_that_lost_interest_is_choked_at_the_next_round():
    peers = {("10.0.0.1", 1): peer(5.0), ("10.0.0.2", 2): peer(1.0)}
    rounds = ChokeRounds(random.Random(1))
    rounds.rechoke(peers, seeding=False, now=0.0)
    assert not peers[("10.0.0.1", 1)].session.am_choking
    assert free_upload_slot(peers)
    peers[("10.0.0.1", 1)].session.peer_interested = False
    rounds.rechoke(peers, seeding=False, now=ROUND_SECONDS)
    assert peers[("10.0.0.1", 1)].session.am_choking
    assert not peers[("10.0.0.2", 2)].session.am_choking
