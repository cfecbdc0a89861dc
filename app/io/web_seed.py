"""Web seeds (BEP 19, `url-list`): HTTP(S) mirrors of the data, used like peers.

Each mirror asks the picker for blocks like a peer does (a whole piece's
worth at a time), fetches them with Range requests (one per file the range
touches), and hands every block to the picker; the complete piece is hashed
and stored by the same piece store as a peer's. So a mirror's bytes are
verified like anyone's, and the endgame and rate limit apply to it too.

URLs (BEP 19): for a single-file torrent the URL is the file, unless it ends
in `/`, when the torrent's name is appended; for a multi-file torrent the
URL is a directory, to which `<name>/<path>` is appended.

A mirror that fails (connection error, 5xx) backs off, doubling, and is
dropped after MAX_FAILURES in a row; one that answers 4xx, sends the wrong
length, or sends a piece that fails its hash check is dropped at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import quote

from app.core.errors import ProtocolError
from app.core.metainfo import FileEntry, Info
from app.core.pieces import Block, stream_parts

if TYPE_CHECKING:
    import requests

    from app.io.swarm import Swarm

log = logging.getLogger(__name__)

WORKERS = 2                  # pieces fetched at once from one mirror
IDLE_WAIT = 0.2              # nothing to pick: look again after this long
FIRST_BACKOFF, MAX_BACKOFF = 1.0, 60.0
MAX_FAILURES = 5             # failures in a row (1+2+4+8 s of back-off) that drop a mirror
HTTP_TIMEOUT = 15.0
T = TypeVar("T")


@dataclass(frozen=True)
class WebSeedKey:
    """How a mirror is known to the picker and the peer list."""
    url: str

    def __str__(self) -> str:
        return f"web seed {self.url}"


class MirrorRefused(Exception):
    """An answer that will not get better by asking again (4xx, wrong length)."""


def file_url(info: Info, base: str, entry: FileEntry) -> str:
    if not info.multi_file:
        return base + quote(info.name) if base.endswith("/") else base
    root = base if base.endswith("/") else base + "/"
    return root + "/".join(quote(part) for part in (info.name, *entry.path))


def contiguous_runs(blocks: list[Block]) -> list[tuple[int, int, list[Block]]]:
    """Blocks grouped into (piece, begin, blocks) runs of adjacent blocks of one piece."""
    runs: list[tuple[int, int, list[Block]]] = []
    for block in sorted(blocks):
        if runs:
            index, begin, group = runs[-1]
            last = group[-1]
            if index == block.index and last.begin + last.length == block.begin:
                group.append(block)
                continue
        runs.append((block.index, block.begin, [block]))
    return runs


class WebSeed:
    def __init__(self, swarm: Swarm, url: str, http: requests.Session) -> None:
        self.swarm = swarm
        self.url = url
        self.key = WebSeedKey(url)
        self.http = http
        self.dropped: str | None = None
        self.backoff = 0.0
        self.failures = 0
        self.retry_at = 0.0
        self._mine: dict[int, int] = {}        # piece -> blocks we delivered
        self._checking: set[int] = set()        # pieces wholly ours, awaiting their check
        self.hook: Callable[[], None] | None = None

    async def run(self) -> None:
        swarm, picker = self.swarm, self.swarm.picker
        blocks_per_piece = max(1, swarm.info.piece_length // picker.block_size)
        everything = b"\x01" * swarm.info.piece_count
        while self.dropped is None and not picker.complete:
            self._check_verdicts()
            now = swarm.clock()
            if self.hook is not None:
                self.hook()
            if not swarm.running or now < self.retry_at:
                await asyncio.sleep(min(IDLE_WAIT, max(0.01, self.retry_at - now)))
                continue
            count = swarm.throttle.blocks_allowed(blocks_per_piece)
            blocks = picker.pick(self.key, everything, count, one_piece=True) if count else []
            if not blocks:
                await asyncio.sleep(IDLE_WAIT)
                continue
            swarm.throttle.requested(blocks)
            try:
                runs = [(run, await self._fetch(run)) for run in contiguous_runs(blocks)]
            except MirrorRefused as exc:
                picker.release(self.key)
                self.drop(str(exc))
                return
            except OSError as exc:   # requests' errors are OSErrors too
                picker.release(self.key, blocks)
                self.failures += 1
                if self.failures >= MAX_FAILURES:
                    self.drop(f"{self.failures} failures in a row, the last: {exc}")
                    return
                self.backoff = min(MAX_BACKOFF, self.backoff * 2 or FIRST_BACKOFF)
                self.retry_at = swarm.clock() + self.backoff
                log.info("%s failed (%s); next try in %.0f s", self.key, exc, self.backoff)
                continue
            self.backoff, self.failures = 0.0, 0
            for (_, _, group), data in runs:
                self._deliver(group, data)

    def drop(self, reason: str) -> None:
        if self.dropped is None:
            self.dropped = reason
            log.warning("%s dropped: %s", self.key, reason)

    async def _fetch(self, run: tuple[int, int, list[Block]]) -> bytes:
        index, begin, group = run
        info = self.swarm.info
        start = index * info.piece_length + begin
        length = sum(b.length for b in group)
        parts = []
        for span in stream_parts(info.files, start, length, info.file_offsets):
            if isinstance(span, int):   # padding between aligned files: zeros, on no mirror
                parts.append(bytes(span))
                continue
            url = file_url(info, self.url, span.file)
            parts.append(await asyncio.to_thread(self._get, url, span.file_offset, span.length, span.file.length))
        return b"".join(parts)

    def _get(self, url: str, offset: int, length: int, file_length: int) -> bytes:
        headers = {"Range": f"bytes={offset}-{offset + length - 1}"}
        with self.http.get(url, headers=headers, timeout=HTTP_TIMEOUT) as reply:
            if 400 <= reply.status_code < 500:
                raise MirrorRefused(f"HTTP {reply.status_code} for {url}")
            reply.raise_for_status()   # 5xx: worth another try later
            body = reply.content
        if reply.status_code == 200 and len(body) == file_length:   # Range ignored: the whole file
            body = body[offset:offset + length]
        if len(body) != length:
            raise MirrorRefused(f"{url} sent {len(body)} bytes for a range of {length}")
        return body

    def _deliver(self, group: list[Block], data: bytes) -> None:
        swarm, picker = self.swarm, self.swarm.picker
        position = 0
        for block in group:
            chunk = data[position:position + block.length]
            position += block.length
            try:
                outcome = picker.on_block(self.key, block.index, block.begin, chunk)
            except ProtocolError:
                continue   # withdrawn meanwhile (the endgame gave it to someone else)
            if outcome.duplicate:
                continue
            swarm.downloaded += block.length
            swarm.tick_bytes += block.length
            swarm.last_progress = swarm.clock()
            swarm.contributors.add(self.key)   # type: ignore[arg-type]  # counted like a peer
            self._mine[block.index] = self._mine.get(block.index, 0) + 1
            for other, spare in outcome.cancels:
                holder = swarm.peers.get(other)   # type: ignore[call-overload]
                if holder is not None:
                    holder.session.cancel(spare)
                    holder.conn.flush_soon()
            if outcome.piece is not None and outcome.index is not None:
                size = picker.piece_sizes[outcome.index]   # what is fetched of it (no padding blocks)
                if self._mine.pop(outcome.index, 0) * picker.block_size >= size:
                    self._checking.add(outcome.index)
                swarm.store.submit([(outcome.index, outcome.piece)])

    def _check_verdicts(self) -> None:
        """A piece wholly from this mirror that failed its hash check drops the mirror."""
        picker = self.swarm.picker
        for index in list(self._checking):
            if index in picker.done:
                self._checking.discard(index)
            elif index not in picker.verifying:
                self._checking.discard(index)
                self.drop(f"piece {index} failed its hash check")


class WebSeeds:
    """Every mirror of the torrent, as tasks beside the engine."""

    def __init__(self, swarm: Swarm, urls: tuple[str, ...]) -> None:
        self.swarm = swarm
        self.seeds: list[WebSeed] = []
        self._tasks: list[asyncio.Task[None]] = []
        if urls:
            import requests  # only for torrents with mirrors: ~65 ms of imports

            self.http = requests.Session()
            self.seeds = [WebSeed(swarm, url, self.http) for url in urls]

    def active(self) -> bool:
        return any(seed.dropped is None for seed in self.seeds)

    async def around(self, engine: Awaitable[T]) -> T:
        """Run the engine with the mirrors working beside it."""
        if not self.seeds:
            return await engine
        self._hook_starvation()
        for seed in self.seeds:
            seed.hook = self._hook_starvation
        self._tasks = [asyncio.create_task(seed.run()) for seed in self.seeds for _ in range(WORKERS)]
        try:
            return await engine
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self.http.close()

    def _hook_starvation(self) -> None:
        """With no peers at all, the engine waits while a mirror is still usable. Others
        (the DHT) may set the hook after us, so it is checked again while running."""
        if not isinstance(self.swarm.sources_pending, _Pending):
            self.swarm.sources_pending = _Pending(self, self.swarm.sources_pending)


class _Pending:
    def __init__(self, seeds: WebSeeds, earlier: Callable[[], bool]) -> None:
        self.seeds = seeds
        self.earlier = earlier

    def __call__(self) -> bool:
        return self.seeds.active() or self.earlier()
