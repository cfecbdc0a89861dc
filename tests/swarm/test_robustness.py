"""Robustness of the engine, end to end (the CLI as a subprocess, real and raw peers):

1. Our `seed`'s connection slots cannot be taken by a flood of useless connections: after
   300 of them (silent handshakes, garbage, nothing at all) a libtorrent leecher still gets
   in and downloads everything, in bounded time and bounded memory.
2. When every peer misbehaves (a 2 GiB length prefix, a bitfield and then garbage, the
   wrong info hash, hanging up, refusing the connection), `download` and `download_piece`
   give up with one `Error:` line that says what happened, well inside 20 s, whether the
   peers were given with --peer or came from opentracker.

Everything runs on 127.0.0.0/8; every process started here is stopped by its PID.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from support.cli import run_cli
from support.net import wait_for
from support.peers import start_leecher
from support.torrents import make_single_file

from swarm.kit import KIB, MIB, OurSeeder, retarget
from swarm.misbehaving import BEHAVIOURS, ConnectionFlood, RawPeer, RefusingAddress, announce_from

# --- 1. the seeder's slots ----------------------------------------------------------------

SLOTS = 50              # --max-peers of the seeder under attack
ATTACKERS = 300
LEECH_LIMIT = 30.0      # seconds the libtorrent leecher may take, attack included
RSS_LIMIT_MIB = 200.0


def peak_rss_mib(pid: int) -> float:
    """VmHWM (peak resident set) of a live process, in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB$", status, re.M)
    assert match, status
    return int(match[1]) / 1024


def command_line(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def test_seeder_slots_cannot_be_exhausted(tmp_path):
    """`seed --max-peers 50` meets 300 connections from 300 addresses: 150 complete a valid
    handshake for its torrent and then say nothing, 75 send garbage, 75 send nothing at
    all; all of them stay open. A libtorrent leecher that then dials the seeder must still
    download every byte within 30 s, and the seeder's peak RSS must stay under 200 MiB.

    On the engine without handshake deadlines and idle-peer eviction, the silent
    handshakers hold every slot forever and the leecher is turned away."""
    spec = make_single_file(tmp_path / "torrent", "slots.bin", 4 * MIB + 4321,
                            piece_length=256 * KIB, seed=81, announce=None)
    seeder = OurSeeder(spec.torrent_path, spec.data_root / spec.name, "--max-peers", SLOTS)
    flood = ConnectionFlood(seeder.port, spec.info_hash, count=ATTACKERS)
    leecher = None
    code = took = peak = None
    alive = False
    try:
        # the PID we watch is the Python process itself (the launcher execs it)
        assert "app" in command_line(seeder.pid), command_line(seeder.pid)
        report = flood.run()
        flood.collect_replies(2.0)
        started = time.monotonic()
        leecher = start_leecher(tmp_path / "lt", torrent=spec.torrent_path,
                                peers=[seeder.address], timeout=LEECH_LIMIT)
        try:
            code = leecher.wait_exit(LEECH_LIMIT + 10)
        except TimeoutError:
            code = None
        took = time.monotonic() - started
        alive = seeder.run.proc.poll() is None
        if alive:
            peak = peak_rss_mib(seeder.pid)
    finally:
        flood.close()
        if leecher is not None:
            leecher.stop()
        result = seeder.stop()
    why = (f"flood: {report}\nleecher exit {code} after {took:.1f}s; seeder peak RSS {peak} MiB\n"
           f"leecher log (tail):\n{leecher.log_text()[-2000:]}\nseeder: {result.describe()}")
    # the attack was real: it reached the seeder and filled at least every slot once
    assert report.connected >= ATTACKERS // 2, "the flood hardly got through\n" + why
    assert report.handshakes_answered >= SLOTS, \
        "fewer silent handshakes were answered than there are slots\n" + why
    assert alive, "our seeder died under the flood\n" + why
    assert code == 0, "the libtorrent leecher did not complete\n" + why
    assert took < LEECH_LIMIT, why
    assert (tmp_path / "lt" / "download" / spec.name).read_bytes() == spec.payload(), why
    assert peak is not None and peak < RSS_LIMIT_MIB, why
    assert not result.timed_out and "Traceback" not in result.stderr, why


# --- 2. every peer misbehaves --------------------------------------------------------------

FAILURE_LIMIT = 20.0    # seconds a hopeless download may take to say so
CLI_TIMEOUT = 25.0      # then the run is killed (and the test fails on elapsed time)
PIECE_INDEX = 3
# each misbehaving peer has an address of its own
HOSTS = {"huge_length": "127.0.0.11", "bitfield_then_garbage": "127.0.0.12",
         "wrong_info_hash": "127.0.0.13", "hang_up": "127.0.0.14", "refused": "127.0.0.15"}
KINDS = list(BEHAVIOURS) + ["refused"]
COUNT = re.compile(r"\b\d+\s+(?:\w+\s+){0,2}(?:peers?|tried|addresses)\b", re.I)
ADDRESS = re.compile(r"\b127\.\d+\.\d+\.\d+:\d+\b")


def hopeless_torrent(tmp_path: Path, seed: int):
    """A 1 MiB torrent (16 pieces of 64 KiB) without a tracker; nobody here serves it."""
    return make_single_file(tmp_path / "torrent", "hopeless.bin", MIB, piece_length=64 * KIB,
                            seed=seed, announce=None)


def start_peers(spec, kinds) -> list:
    peers = []
    try:
        for kind in kinds:
            if kind == "refused":
                peers.append(RefusingAddress(HOSTS[kind]))
            else:
                peers.append(RawPeer(HOSTS[kind], kind, spec.info_hash, spec.num_pieces))
    except BaseException:
        stop_peers(peers)
        raise
    return peers


def stop_peers(peers) -> None:
    for peer in peers:
        peer.stop()


def run_command(command: str, spec_path: Path, out: Path, port: int, peers=()):
    args = [command, "-o", out, "--port", port]
    for peer in peers:
        args += ["--peer", peer.address]
    args.append(spec_path)
    if command == "download_piece":
        args.append(PIECE_INDEX)
    return run_cli(*args, timeout=CLI_TIMEOUT)


def assert_clear_failure(result, peers) -> str:
    """Non-zero exit, no traceback, the last stderr line an `Error:` line that names a peer
    or a number of peers, and all of it well inside FAILURE_LIMIT. Every listening
    misbehaver was tried at least once."""
    why = result.describe() + "".join(f"\n  {p.describe()}" for p in peers)
    assert not result.timed_out, \
        f"still running after {CLI_TIMEOUT:.0f}s, killed (no data can ever come)\n" + why
    assert result.elapsed < FAILURE_LIMIT, \
        f"took {result.elapsed:.1f}s to give up (limit {FAILURE_LIMIT:.0f}s)\n" + why
    assert result.returncode != 0, "a hopeless download exited 0\n" + why
    assert "Traceback" not in result.stderr, why
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error:"), "the last line is not an Error line\n" + why
    error = lines[-1]
    assert ADDRESS.search(error) or COUNT.search(error), \
        "the Error line names no peer and no number of peers\n" + why
    for peer in peers:
        if isinstance(peer, RawPeer):
            assert peer.connections >= 1, f"{peer.behaviour} was never contacted\n" + why
    return error


@pytest.mark.parametrize("command", ["download", "download_piece"])
def test_every_peer_misbehaves_given_by_hand(tmp_path, client_port, command):
    """Five peers given with --peer, each broken in its own way: one clear Error line, fast."""
    spec = hopeless_torrent(tmp_path, seed=91)
    peers = start_peers(spec, KINDS)
    try:
        result = run_command(command, spec.torrent_path, tmp_path / "out", client_port, peers)
    finally:
        stop_peers(peers)
    assert_clear_failure(result, peers)


@pytest.mark.parametrize("kind", ["huge_length", "bitfield_then_garbage", "wrong_info_hash"])
def test_a_single_protocol_breaker(tmp_path, client_port, kind):
    """One peer that breaks the protocol, alone: dropped for good at once, so the Error line
    comes at once too. (Hanging up and refusing are retried with back-off, which the runs
    above already bound; alone they would only add seconds to the suite.)"""
    spec = hopeless_torrent(tmp_path, seed=92)
    peers = start_peers(spec, [kind])
    try:
        result = run_command("download", spec.torrent_path, tmp_path / "out", client_port, peers)
    finally:
        stop_peers(peers)
    assert_clear_failure(result, peers)


@pytest.mark.parametrize("command,seed", [("download", 93), ("download_piece", 94)])
def test_every_peer_misbehaves_via_opentracker(opentracker, tmp_path, client_port, command,
                                               seed):
    """The five peers are listed at opentracker (each announced from its own address) and
    the torrent names only that tracker, so re-announcing finds nobody new. The client must
    not wait out a long stall timeout: one clear Error line well inside 20 s.
    (Each parameter uses its own torrent, so no peer of another run is listed.)"""
    bare = hopeless_torrent(tmp_path, seed=seed)
    spec = retarget(bare, opentracker.announce_url, tmp_path / "tracked.torrent")
    opentracker.whitelist(spec.info_hash)
    peers = start_peers(spec, KINDS)
    try:
        for peer in peers:
            announce_from(opentracker.port, spec.info_hash, peer.host, peer.port)
        wanted = {p.address for p in peers}
        wait_for(lambda: wanted <= set(opentracker.peers(spec.info_hash)), 5, interval=0.1,
                 what="opentracker to list the misbehaving peers")
        result = run_command(command, spec.torrent_path, tmp_path / "out", client_port)
    finally:
        stop_peers(peers)
    assert_clear_failure(result, peers)
