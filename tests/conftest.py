"""Shared fixtures: opentracker, libtorrent swarms, grader-like fakes, the CLI runner.

A missing libtorrent or opentracker makes the tests that need them FAIL (never skip).
"""
from __future__ import annotations

import atexit
import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from support.opentracker import OpenTracker
from support.peers import LtPeer, start_seeder
from support.torrents import TorrentSpec, make_multi_file, make_single_file

KIB = 1024
MIB = 1024 * KIB

# Every CLI run inherits these: no DHT traffic beyond loopback (the public routers are
# never asked; DHT tests pass --dht-bootstrap), and DHT state files in a scratch cache.
os.environ["BITTORRENT_DHT_BOOTSTRAP"] = "none"
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="bt-test-cache-")
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], True)


@dataclasses.dataclass
class Swarm:
    spec: TorrentSpec
    seeders: list[LtPeer]
    tracker: OpenTracker | None

    @property
    def addresses(self) -> list[str]:
        return [s.address for s in self.seeders]

    def stop(self) -> None:
        for seeder in self.seeders:
            seeder.stop()


@pytest.fixture(scope="session")
def opentracker(tmp_path_factory) -> OpenTracker:
    """Debian's opentracker on 127.0.0.1 (HTTP and UDP on one port), whitelist-only."""
    tracker = OpenTracker(tmp_path_factory.mktemp("opentracker")).start()
    yield tracker
    tracker.stop()


class SwarmFactory:
    """Builds torrents with libtorrent and starts libtorrent seeders announced to opentracker.
    Everything it started is stopped at the end of the owning fixture's scope."""

    def __init__(self, tracker: OpenTracker, base: Path):
        self.tracker = tracker
        self.base = base
        self.swarms: list[Swarm] = []
        self.count = 0

    def _dir(self, label: str) -> Path:
        self.count += 1
        path = self.base / f"{self.count:02d}-{label}"
        path.mkdir(parents=True)
        return path

    def single(self, name: str, size: int, *, piece_length: int = 256 * KIB, seed: int = 1,
               seeders: int = 3, announce: str | None = None, **seeder_args) -> Swarm:
        root = self._dir(name)
        spec = make_single_file(root, name, size, piece_length=piece_length, seed=seed,
                                announce=announce or self.tracker.announce_url)
        return self.start(spec, root, seeders, **seeder_args)

    def multi(self, name: str, sizes: dict[str, int], *, piece_length: int = 64 * KIB,
              seed: int = 2, seeders: int = 2, **seeder_args) -> Swarm:
        root = self._dir(name)
        spec = make_multi_file(root, name, sizes, piece_length=piece_length, seed=seed,
                               announce=self.tracker.announce_url)
        return self.start(spec, root, seeders, **seeder_args)

    def start(self, spec: TorrentSpec, root: Path, count: int, per_seeder=None,
              **seeder_args) -> Swarm:
        """Start `count` seeders; per_seeder[i] (a dict) overrides arguments for seeder i."""
        self.tracker.whitelist(spec.info_hash)
        swarm = Swarm(spec, [], self.tracker)
        self.swarms.append(swarm)
        for i in range(count):
            args = dict(seeder_args, **((per_seeder or {}).get(i, {})))
            swarm.seeders.append(start_seeder(spec, root / f"seeder{i}", **args))
        return swarm

    def stop(self) -> None:
        for swarm in self.swarms:
            swarm.stop()


@pytest.fixture(scope="session")
def session_swarms(opentracker, tmp_path_factory) -> SwarmFactory:
    factory = SwarmFactory(opentracker, tmp_path_factory.mktemp("swarms"))
    yield factory
    factory.stop()


@pytest.fixture
def swarms(opentracker, tmp_path) -> SwarmFactory:
    """Per-test swarms (for tests that kill or corrupt seeders)."""
    factory = SwarmFactory(opentracker, tmp_path / "swarms")
    yield factory
    factory.stop()


@pytest.fixture(scope="session")
def single_swarm(session_swarms) -> Swarm:
    """One file of 2.3 MiB: 10 pieces of 256 KiB, the last one short (76,923 B);
    3 libtorrent seeders announced to opentracker."""
    return session_swarms.single("payload.bin", 9 * 256 * KIB + 76_923, seed=11)


@pytest.fixture(scope="session")
def multi_swarm(session_swarms) -> Swarm:
    """A directory torrent: 3 files (one in a subdirectory), 64 KiB pieces spanning files;
    2 seeders."""
    return session_swarms.multi("album", {"a.bin": 150_001, "sub/b.bin": 70_000,
                                          "c.txt": 1_234}, seed=12)
