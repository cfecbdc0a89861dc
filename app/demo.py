"""The whole protocol on one machine: payload, torrent, tracker, seeders, download.

Every part is this project's own: `create` makes the torrent, the embedded
tracker hands out peers, three `seed` processes serve the data, and the
swarm engine downloads it with a progress bar. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app import client
from app.core.create import CreateOptions
from app.core.errors import TorrentError
from app.io.create import make_torrent, write_torrent
from app.io.swarm import Progress, Swarm, SwarmConfig, SwarmResult
from app.io.tracker_server import start_tracker

ROOT = Path(__file__).resolve().parent.parent
SEEDER_START_TIMEOUT = 20.0


@dataclass
class DemoResult:
    size: int
    seeders: int
    download: SwarmResult
    verified: bool


def write_payload(path: Path, size: int, chunk: int = 4 << 20) -> str:
    """Random bytes (so nothing compresses or dedups); returns their SHA-1."""
    digest = hashlib.sha1()
    with open(path, "wb") as f:
        for start in range(0, size, chunk):
            block = os.urandom(min(chunk, size - start))
            digest.update(block)
            f.write(block)
    return digest.hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_seeder(torrent: Path, data: Path, port: int, log: Path) -> subprocess.Popen:
    """One `seed` process of this project, announcing to the demo tracker."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with open(log, "ab") as out:
        # --no-dht: the demo is a swarm on 127.0.0.1 and needs nothing from outside it
        return subprocess.Popen([sys.executable, "-m", "app", "seed", "-v", "--no-dht", "--port", str(port),
                                 str(torrent), str(data)],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env)


def stop_seeders(seeders: list[subprocess.Popen]) -> None:
    """SIGINT first, so each says `stopped` to the tracker; then make sure."""
    for proc in seeders:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc in seeders:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def wait_for_seeders(registry, info_hash: bytes, count: int, seeders: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + SEEDER_START_TIMEOUT
    while len(registry.peers(info_hash)) < count:
        if any(p.poll() is not None for p in seeders):
            raise TorrentError("a demo seeder exited early; see its log")
        if time.monotonic() > deadline:
            raise TorrentError(f"the seeders did not announce within {SEEDER_START_TIMEOUT:.0f} s")
        await asyncio.sleep(0.1)


async def run_demo(workdir: Path, size: int, seeder_count: int = 3,
                   progress: Callable[[Progress], None] | None = None,
                   say: Callable[[str], None] = lambda _: None,
                   started: Callable[[Swarm], None] | None = None) -> DemoResult:
    workdir.mkdir(parents=True, exist_ok=True)
    payload = workdir / "payload.bin"
    say(f"writing a {size >> 20} MiB payload")
    expected = await asyncio.to_thread(write_payload, payload, size)
    tracker = await start_tracker("127.0.0.1", 0, interval=60)
    seeders: list[subprocess.Popen] = []
    try:
        created = await asyncio.to_thread(
            make_torrent, payload, CreateOptions(trackers=((tracker.announce_url,),)))
        torrent_path = workdir / "payload.bin.torrent"
        write_torrent(created.data, torrent_path)
        say(f"torrent {created.info_hash.hex()}; tracker {tracker.announce_url}")
        for _ in range(seeder_count):
            seeders.append(start_seeder(torrent_path, payload, free_port(), workdir / "seeders.log"))
        await wait_for_seeders(tracker.registry, created.info_hash, seeder_count, seeders)
        say(f"{seeder_count} seeders announced; downloading")
        torrent = client.load_torrent(torrent_path)
        output = workdir / "download" / "payload.bin"
        result = await client.download_async(
            torrent.info, output, client.Source.of_torrent(torrent),
            config=SwarmConfig(port=free_port(), listen=True), progress=progress, started=started)
        actual = await asyncio.to_thread(_sha1_of, output)
        return DemoResult(size, seeder_count, result, actual == expected)
    finally:
        await asyncio.to_thread(stop_seeders, seeders)
        await tracker.close()


def _sha1_of(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        while block := f.read(4 << 20):
            digest.update(block)
    return digest.hexdigest()
