"""app/io/announcer.py: tier schedules and early announces, with a fake tracker and an injected clock."""

import asyncio

import pytest

from app.core.errors import TrackerError
from app.core.tracker import AnnounceRequest, AnnounceResponse, PeerAddress
from app.io import announcer as announcer_module
from app.io.announcer import EARLY_WAIT_LIMIT, Announcer

PEER = PeerAddress("10.0.0.1", 6881)


class FakeTracker:
    """Stands in for announce_first: records each request, answers from a script."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.requests: list[AnnounceRequest] = []

    async def __call__(self, tiers, request, timeout):
        self.requests.append(request)
        reply = self.replies.pop(0) if self.replies else self.replies_default
        if isinstance(reply, Exception):
            raise reply
        return "http://tracker/announce", reply

    replies_default = AnnounceResponse((), interval=1800, min_interval=60)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def make(monkeypatch, replies):
    tracker, clock, got = FakeTracker(replies), Clock(), []
    monkeypatch.setattr(announcer_module, "announce_first", tracker)

    def request(event, tracker_id):
        return AnnounceRequest(b"i" * 20, b"p" * 20, 6881, event=event, tracker_id=tracker_id)
    return Announcer([["http://tracker/announce"]], request, got.extend, 5.0, clock), tracker, clock, got


async def until(condition, limit=2.0):
    for _ in range(int(limit / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met")


def test_first_announce_is_started_and_hands_over_the_peers(monkeypatch):
    async def run():
        ann, tracker, _, got = make(monkeypatch, [AnnounceResponse((PEER,), interval=1800, min_interval=60)])
        ann.start()
        await until(lambda: ann.rounds == 1)
        assert ann.first_pending == 0
        assert got == [PEER]
        assert tracker.requests[0].event == "started"
        await ann.stop("stopped")
        assert [r.event for r in tracker.requests] == ["started", "stopped"]
    asyncio.run(run())


def test_an_early_announce_waits_for_min_interval(monkeypatch):
    async def run():
        ann, tracker, clock, _ = make(monkeypatch, [AnnounceResponse((PEER,), interval=1800, min_interval=60)])
        ann.start()
        await until(lambda: ann.rounds == 1)
        clock.now += 60 - EARLY_WAIT_LIMIT - 1     # min interval still too far off: not worth waiting for
        assert ann.announce_early() is False
        await asyncio.sleep(0.05)
        assert ann.rounds == 1
        clock.now = 1000.0 + 60                    # now allowed: the tier is asked again at once
        assert ann.announce_early() is True
        await until(lambda: ann.rounds == 2)
        assert tracker.requests[1].event == ""     # a regular announce, not a second `started`
        await ann.stop(None)
    asyncio.run(run())


def test_a_failing_tier_is_reported_and_its_error_kept(monkeypatch):
    async def run():
        ann, tracker, _, got = make(monkeypatch, [TrackerError("tracker said no")])
        ann.start()
        await until(lambda: ann.rounds == 1)
        assert ann.first_pending == 0 and got == []
        assert [str(e) for e in ann.errors.values()] == ["tracker said no"]
        await ann.stop("stopped")
        assert [r.event for r in tracker.requests] == ["started"]   # never answered: no last word
    asyncio.run(run())


@pytest.mark.parametrize("tracker_id", [b"abc"])
def test_a_tracker_id_is_sent_back(monkeypatch, tracker_id):
    async def run():
        first = AnnounceResponse((), interval=1800, min_interval=0, tracker_id=tracker_id)
        ann, tracker, clock, _ = make(monkeypatch, [first])
        ann.start()
        await until(lambda: ann.rounds == 1)
        clock.now += 10
        assert ann.announce_early()
        await until(lambda: ann.rounds == 2)
        assert tracker.requests[1].tracker_id == tracker_id
        await ann.stop(None)
    asyncio.run(run())


def test_a_hybrid_is_announced_under_both_names(monkeypatch):
    """BEP 52: a hybrid's truncated v2 hash is a second name; each announce (and the last
    word) goes out under both, and the peers of both replies are handed over."""
    other_peer = PeerAddress("10.0.0.2", 6882)

    class ByName(FakeTracker):
        async def __call__(self, tiers, request, timeout):
            self.requests.append(request)
            if request.info_hash == b"v" * 20:
                return "http://tracker/announce", AnnounceResponse((other_peer,), interval=1800)
            return "http://tracker/announce", AnnounceResponse((PEER,), interval=1800, min_interval=60)

    async def run():
        tracker, got = ByName([]), []
        monkeypatch.setattr(announcer_module, "announce_first", tracker)

        def request(event, tracker_id):
            return AnnounceRequest(b"i" * 20, b"p" * 20, 6881, event=event, tracker_id=tracker_id)
        ann = Announcer([["http://tracker/announce"]], request, got.extend, 5.0, Clock(), also_as=[b"v" * 20])
        ann.start()
        await until(lambda: ann.rounds == 1)
        assert sorted(got) == sorted([PEER, other_peer])
        await ann.stop("stopped")
        names = [(r.info_hash[:1], r.event) for r in tracker.requests]
        assert sorted(names) == sorted([(b"i", "started"), (b"v", "started"), (b"i", "stopped"), (b"v", "stopped")])
    asyncio.run(run())
