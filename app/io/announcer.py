"""Announcing to trackers while the engine runs (BEP 3, BEP 12 tiers, BEP 15).

Each tier is announced to on its own schedule and the peers of every tier
are handed to the engine. A hybrid torrent (BEP 52) has two names, its v1
hash and its truncated v2 hash: it is announced under both, as libtorrent
does, so that v2-only clients find us too. The engine can ask for an early announce when it
has run out of peers; the tier's `min interval` is still respected.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence

from app.core.errors import TrackerError
from app.core.tiers import TrackerTiers
from app.core.tracker import AnnounceRequest, AnnounceResponse, PeerAddress
from app.io.tracker_client import announce_first

log = logging.getLogger(__name__)

RETRY_SECONDS = 15.0        # after a tier failed
MIN_SECONDS = 5.0           # never announce to a tier more often than this
EARLY_WAIT_LIMIT = 10.0     # an early announce further off than this is not waited for


class Announcer:
    def __init__(self, tiers: Sequence[Sequence[str]], make_request: Callable[[str, bytes | None], AnnounceRequest],
                 on_peers: Callable[[Sequence[PeerAddress]], None], timeout: float,
                 clock: Callable[[], float] = time.monotonic, also_as: Sequence[bytes] = ()) -> None:
        self.tiers = [TrackerTiers([tuple(tier)]) for tier in tiers]
        self._make_request = make_request     # (event, tracker id) -> request with current counts
        self._also_as = tuple(also_as)         # other info hashes of the same torrent (a hybrid's v2)
        self._on_peers = on_peers
        self._timeout = timeout
        self._clock = clock
        self.errors: dict[int, TrackerError] = {}   # tiers whose last announce failed
        self.first_pending = len(self.tiers)        # tiers whose first announce is still running
        self.rounds = 0                              # announces completed, any tier
        self._answered: set[int] = set()
        self._tracker_ids: dict[int, bytes] = {}
        self._earliest: dict[int, float] = {}       # tier -> when `min interval` allows the next
        self._early = [asyncio.Event() for _ in self.tiers]
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._tier_loop(i)) for i in range(len(self.tiers))]

    async def stop(self, event: str | None) -> None:
        """Stop the schedules; then a last word (`stopped`/`completed`) to every tier
        that answered before (best effort, short timeout)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if event is not None:
            await self.announce_all(event)

    async def announce_all(self, event: str) -> None:
        tiers = sorted(self._answered)
        await asyncio.gather(*(self._announce(t, event, 2.0) for t in tiers), return_exceptions=True)

    def announce_early(self) -> bool:
        """Ask every tier for peers now, if its `min interval` allows it soon.
        Returns False when no tier can be asked within EARLY_WAIT_LIMIT."""
        now, asked = self._clock(), False
        for tier, wake in enumerate(self._early):
            if self._earliest.get(tier, 0.0) - now <= EARLY_WAIT_LIMIT:
                wake.set()
                asked = True
        return asked

    async def _announce(self, tier: int, event: str, timeout: float) -> AnnounceResponse | None:
        """Announce to the first tracker of the tier that answers; None if none does.
        A `tracker id` the tier's tracker gave is sent back to it (BEP 3)."""
        request = self._make_request(event, self._tracker_ids.get(tier))
        others = [asyncio.create_task(self._announce_as(tier, dataclasses.replace(request, info_hash=name), timeout))
                  for name in self._also_as]
        try:
            _, reply = await announce_first(self.tiers[tier], request, timeout)
        except TrackerError as exc:
            await asyncio.gather(*others)
            self._hand_over(others)
            if event in ("", "started"):
                self.errors[tier] = exc
                log.info("tier %d: %s", tier, exc)  # an Error line names it if nothing else works
            return None
        self.errors.pop(tier, None)
        if reply.tracker_id is not None:
            self._tracker_ids[tier] = reply.tracker_id
        self._answered.add(tier)
        await asyncio.gather(*others)
        self._hand_over(others)
        return reply

    async def _announce_as(self, tier: int, request: AnnounceRequest, timeout: float) -> AnnounceResponse | None:
        """The same announce under another of the torrent's names; best effort."""
        try:
            return (await announce_first(self.tiers[tier], request, timeout))[1]
        except TrackerError as exc:
            log.info("tier %d, as %s: %s", tier, request.info_hash.hex()[:12], exc)
            return None

    def _hand_over(self, others: Sequence[asyncio.Task[AnnounceResponse | None]]) -> None:
        for task in others:
            if (reply := task.result()) is not None:
                self._on_peers(reply.peers)

    async def _tier_loop(self, tier: int) -> None:
        event, first = "started", True
        while True:
            reply = await self._announce(tier, event, self._timeout)
            if first:
                first = False
                self.first_pending -= 1
            now = self._clock()
            if reply is not None:
                event = ""
                log.info("tracker tier %d gave %d peers; next announce in %d s", tier, len(reply.peers),
                         reply.interval)
                delay: float = max(reply.interval, reply.min_interval or 0)
                self._earliest[tier] = now + max(MIN_SECONDS, reply.min_interval or 0)
            else:
                delay = RETRY_SECONDS
                self._earliest[tier] = now + MIN_SECONDS
            self.rounds += 1
            self._on_peers(reply.peers if reply is not None else ())
            await self._sleep(tier, max(MIN_SECONDS, delay))

    async def _sleep(self, tier: int, delay: float) -> None:
        """Until the next regular announce, or an early one once `min interval` allows."""
        wake = self._early[tier]
        wake.clear()
        try:
            async with asyncio.timeout(delay):
                await wake.wait()
        except TimeoutError:
            return
        await asyncio.sleep(max(0.0, self._earliest.get(tier, 0.0) - self._clock()))
