"""Multitracker tiers (BEP 12).

Each tier is shuffled once, when the list is built, so load spreads across
the trackers of a tier. Trackers are then tried tier by tier, in order; one
that answers moves to the front of its tier so it is tried first next time.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator


class TrackerTiers:
    """A mutable list of tracker tiers; iterate to get URLs in the order to try."""

    def __init__(self, tiers: Iterable[Iterable[str]], rng: random.Random | None = None) -> None:
        rng = rng if rng is not None else random.Random()
        self._tiers = [tier for tier in _deduplicated(tiers) if tier]  # drop emptied tiers
        for tier in self._tiers:
            rng.shuffle(tier)

    def __iter__(self) -> Iterator[str]:
        # A snapshot, so `promote` during the iteration cannot skip or repeat URLs.
        return iter([url for tier in self._tiers for url in tier])

    def __len__(self) -> int:
        return sum(len(tier) for tier in self._tiers)

    @property
    def tiers(self) -> tuple[tuple[str, ...], ...]:
        return tuple(tuple(tier) for tier in self._tiers)

    def promote(self, url: str) -> None:
        """Move `url` (a tracker that answered) to the front of its tier; KeyError if unknown."""
        for tier in self._tiers:
            if url in tier:
                tier.remove(url)
                tier.insert(0, url)
                return
        raise KeyError(url)


def _deduplicated(tiers: Iterable[Iterable[str]]) -> list[list[str]]:
    """Copies of the tiers with blank URLs and repeats (of any earlier tier too) removed."""
    seen: set[str] = set()
    result = []
    for tier in tiers:
        urls = []
        for url in (u.strip() for u in tier):
            if url and url not in seen:
                seen.add(url)
                urls.append(url)
        result.append(urls)
    return result
