"""Fixtures of the hostile-input tests: torrents served by honest libtorrent seeders.

The torrents here have no tracker, so a download talks only to the peers a test names with
--peer: one honest libtorrent seeder (from tests/support) next to one hostile peer.
libtorrent missing -> the import below fails and so does every test (never a skip).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from support.net import free_port
from support.peers import LtPeer, start_seeder
from support.torrents import TorrentSpec, make_multi_file, make_single_file

from hostile.helpers import TmpfsMount

KIB = 1024
MIB = 1024 * KIB
SLOW_RATE = 1 * MIB   # bytes/s: slow enough that a hostile peer gets its turn


@dataclasses.dataclass
class Served:
    spec: TorrentSpec
    slow: LtPeer          # upload-rate limited
    fast: LtPeer          # unlimited

    @property
    def payload(self) -> bytes:
        return self._payload

    def __post_init__(self):
        self._payload = self.spec.payload()


def serve(spec: TorrentSpec, root: Path):
    """Yield `spec` Served by a slow and a fast seeder under root; stop both afterwards."""
    slow = start_seeder(spec, root / "slow", announce=False, upload_rate=SLOW_RATE)
    try:
        fast = start_seeder(spec, root / "fast", announce=False)
    except BaseException:
        slow.stop()
        raise
    yield Served(spec, slow, fast)
    slow.stop()
    fast.stop()


@pytest.fixture(scope="session")
def served(tmp_path_factory) -> Served:
    """A 1 MiB single-file torrent, 128 KiB pieces (9, the last short), no tracker; one
    rate-limited and one unlimited libtorrent seeder."""
    root = tmp_path_factory.mktemp("hostile-served")
    spec = make_single_file(root, "hostile.bin", MIB + 12_345, piece_length=128 * KIB,
                            seed=4242, announce=None)
    yield from serve(spec, root)


@pytest.fixture(scope="session")
def served_multi(tmp_path_factory) -> Served:
    """A multi-file torrent (a subdirectory, pieces spanning files), no tracker."""
    root = tmp_path_factory.mktemp("hostile-multi")
    spec = make_multi_file(root, "album", {"a.bin": 150_001, "sub/b.bin": 70_000,
                                           "c.txt": 1_234}, piece_length=64 * KIB, seed=77,
                           announce=None)
    yield from serve(spec, root)


@pytest.fixture
def client_port() -> int:
    """A free port for the client's --port (its listener), so runs never collide."""
    return free_port()


@pytest.fixture
def tmpfs(tmp_path):
    """mount_tmpfs(name, size, read_only=False) -> Path; everything unmounted at teardown."""
    mounts: list[TmpfsMount] = []

    def mount(name: str, size: str, read_only: bool = False) -> Path:
        m = TmpfsMount(tmp_path / name, size, read_only)
        mounts.append(m)
        try:
            m.mount()
        except RuntimeError as exc:
            pytest.fail(str(exc))
        return m.path

    yield mount
    for m in reversed(mounts):
        m.umount()
