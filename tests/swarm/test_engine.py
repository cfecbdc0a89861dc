"""The swarm engine against real libtorrent peers found through opentracker: multi-file
layout, pieces spread over partial seeders, a seeder killed mid-way, a lying seeder,
and resuming after our own client is SIGKILLed."""
from __future__ import annotations

import re
import signal
import time

from support.checks import assert_ok
from support.cli import run_cli, start_cli
from support.net import wait_for

from swarm.kit import KIB, MIB, assert_tree, payload_on_disk, run_cli_tty, summary, verified_pieces

PIECE = 32 * KIB


def test_multi_file_tree_from_three_seeders_via_opentracker(swarms, tmp_path, client_port):
    """Nested directories, a zero-length file, a 7-byte file and pieces that span file
    boundaries, from 3 libtorrent seeders announced to opentracker: DIR/<name>/ holds
    exactly the torrent's files with the right bytes."""
    sizes = {"top.bin": 300_001, "docs/empty.dat": 0, "docs/readme.txt": 12_345,
             "deep/x/y/z.bin": 1_000_000, "deep/x/tiny": 7, "deep/mid.bin": 1_500_003}
    swarm = swarms.multi("album", sizes, piece_length=PIECE, seed=41, seeders=3)
    spec = swarm.spec
    # the scenario is what it says: an empty file listed, boundaries inside pieces
    assert (("album", "docs", "empty.dat"), 0) in spec.files, spec.files
    offsets, pos = [], 0
    for _, length in spec.files:
        pos += length
        offsets.append(pos)
    assert any(o % PIECE for o in offsets[:-1]), "no piece spans a file boundary"
    assert not any(".pad" in "/".join(p) for p, _ in spec.files), spec.files

    out = tmp_path / "out"
    result = run_cli("download", "-o", out, "--port", client_port, spec.torrent_path,
                     timeout=40)
    assert_ok(result, within=30)
    assert result.stdout == "", result.describe()
    assert sorted(p.name for p in out.iterdir()) == ["album"], list(out.iterdir())
    assert (out / "album" / "docs" / "empty.dat").is_file()
    assert_tree(out, spec, result.describe())


def test_pieces_spread_over_partial_seeders(swarms, tmp_path, client_port):
    """Three libtorrent seeders in upload mode, each holding about a third of the pieces
    (a few held twice); none has them all, together they cover every piece."""
    size = 3 * MIB + 777
    count = -(-size // PIECE)
    holders = {0: set(), 1: set(), 2: set()}
    for i in range(count):
        holders[i % 3].add(i)
        if i % 5 == 0:
            holders[(i + 1) % 3].add(i)
    swarm = swarms.single("spread.bin", size, piece_length=PIECE, seed=42, seeders=3,
                          per_seeder={k: {"have": sorted(v)} for k, v in holders.items()})
    spec = swarm.spec
    assert spec.num_pieces == count
    held = [set(s.info["pieces"]) for s in swarm.seeders]
    assert held == [holders[0], holders[1], holders[2]], "libtorrent holds other pieces"
    assert all(len(h) < count for h in held) and set().union(*held) == set(range(count))

    out = tmp_path / "spread.bin"
    result = run_cli("download", "-o", out, "--port", client_port, spec.torrent_path,
                     timeout=40)
    assert_ok(result, within=30)
    assert out.read_bytes() == spec.payload(), result.describe()
    # upload mode kept them partial: nobody filled its gaps from the others meanwhile
    assert all(s.alive() for s in swarm.seeders)


def test_seeder_killed_mid_download(swarms, tmp_path, client_port):
    """Three rate-limited libtorrent seeders; one is SIGKILLed (by PID) once some pieces
    are on disk. It stays listed at the tracker. The download completes from the others."""
    swarm = swarms.single("killed.bin", 4 * MIB + 1234, piece_length=PIECE, seed=43,
                          seeders=3, upload_rate=512 * KIB)
    spec = swarm.spec
    out = tmp_path / "killed.bin"
    run = start_cli("download", "-v", "-o", out, "--port", client_port, spec.torrent_path)
    try:
        wait_for(lambda: run.proc.poll() is not None
                 or (out.is_file() and len(verified_pieces(spec, out)) >= 12),
                 20, interval=0.05, what="some pieces on disk")
        assert run.proc.poll() is None, "finished before a seeder could be killed\n" \
            + run.finish(5).describe()
        at_kill = len(verified_pieces(spec, out))
        victim = swarm.seeders[0]
        victim.kill()  # SIGKILL, by PID
        assert not victim.alive()
    finally:
        result = run.finish(timeout=40)
    why = f"{at_kill}/{spec.num_pieces} pieces when seeder {victim.address} was killed\n" \
        + result.describe()
    assert at_kill < spec.num_pieces, why
    assert_ok(result)
    assert out.read_bytes() == spec.payload(), why
    assert victim.address in swarm.tracker.peers(spec.info_hash), \
        "the killed seeder should still be listed (it never said stopped)"


def test_corrupt_seeder_among_honest_ones(swarms, tmp_path, client_port):
    """A fast libtorrent seeder serves every 4th piece with every byte flipped; two honest
    ones are rate-limited, so the liar gets asked. The file comes out right, and the client
    did see bad pieces (the scenario really ran)."""
    size = 2 * MIB + 4321
    count = -(-size // PIECE)
    bad = list(range(0, count, 4))
    swarm = swarms.single("lies.bin", size, piece_length=PIECE, seed=44, seeders=3,
                          per_seeder={0: {"corrupt": bad},
                                      1: {"upload_rate": 1 * MIB},
                                      2: {"upload_rate": 1 * MIB}})
    spec = swarm.spec
    assert swarm.seeders[0].info["corrupt"] == bad
    out = tmp_path / "lies.bin"
    result = run_cli("download", "-v", "-o", out, "--port", client_port, spec.torrent_path,
                     timeout=45)
    assert_ok(result, within=40)
    assert out.read_bytes() == spec.payload(), result.describe()
    failed = {int(m) for m in re.findall(r"piece (\d+) failed its hash check", result.stderr)}
    assert failed, "the corrupt seeder was never used: no hash failure logged\n" \
        + result.describe()
    assert failed <= set(bad), f"pieces {sorted(failed - set(bad))} failed but were served " \
        f"honestly\n{result.describe()}"


def test_resume_after_sigkill_of_our_client(swarms, tmp_path, client_port):
    """A multi-file download from a rate-limited seeder; our client is SIGKILLed (by PID)
    mid-way. The rerun says `resuming: N of M pieces` with N = the pieces that verify on
    disk (0 < N < M), fetches fewer bytes than the whole, and the tree is exact."""
    sizes = {"one.bin": 1_200_000, "sub/two.bin": 1_700_001, "sub/empty": 0, "three": 99}
    swarm = swarms.multi("resumed", sizes, piece_length=PIECE, seed=45, seeders=1,
                         upload_rate=768 * KIB)
    spec = swarm.spec
    out = tmp_path / "out"
    argv = ["download", "-v", "-o", out, "--port", client_port, spec.torrent_path]
    run = start_cli(*argv)
    try:
        wait_for(lambda: run.proc.poll() is not None
                 or len(verified_pieces(spec, out)) >= 20,
                 20, interval=0.05, what="some pieces on disk")
    finally:
        if run.proc.poll() is None:
            run.proc.send_signal(signal.SIGKILL)  # our client, by PID
        first = run.finish(timeout=10)
    assert first.returncode == -signal.SIGKILL, "not killed mid-way\n" + first.describe()
    kept = verified_pieces(spec, out)
    assert 0 < len(kept) < spec.num_pieces, f"{len(kept)} pieces kept\n" + first.describe()
    kept_bytes = sum(spec.piece_size(i) for i in kept)

    time.sleep(0.2)
    second = run_cli_tty(*argv, timeout=40)
    why = f"{len(kept)} of {spec.num_pieces} pieces were on disk\n" + second.describe()
    assert_ok(second, within=35)
    match = re.search(r"resuming: (\d+) of (\d+) pieces", second.stderr)
    assert match, "no 'resuming: N of M pieces' line\n" + why
    assert (int(match[1]), int(match[2])) == (len(kept), spec.num_pieces), why
    stats = summary(second)
    assert stats["resumed"] == len(kept), why
    # the rerun fetched only what was missing (the summary rounds to 0.1 of a unit)
    assert stats["downloaded"] <= spec.total_length - kept_bytes + 0.06 * MIB, why
    assert stats["downloaded"] < spec.total_length, why
    assert payload_on_disk(spec, out) == spec.payload()
    assert_tree(out, spec, why)
