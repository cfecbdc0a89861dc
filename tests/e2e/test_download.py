"""download_piece and download against libtorrent seeders found through opentracker."""
import signal
import time

import pytest

from support.checks import assert_error, assert_ok, assert_same_files
from support.cli import run_cli, start_cli
from support.net import free_port
from support.torrents import make_single_file

KIB = 1024
MIB = 1024 * KIB


def piece(swarm, tmp_path, index, *extra):
    out = tmp_path / f"piece-{index}"
    result = run_cli("download_piece", *extra, "-o", out, swarm.spec.torrent_path, index)
    return result, out


@pytest.mark.parametrize("index", [0, 4, 9])  # first, middle, the short last piece
def test_download_piece(single_swarm, tmp_path, index):
    result, out = piece(single_swarm, tmp_path, index)
    assert_ok(result, within=10)
    assert out.read_bytes() == single_swarm.spec.piece_bytes(index)


def test_two_pieces_within_one_stage_budget(single_swarm, tmp_path):
    """nd2 runs download_piece twice, and the whole stage has 10 s."""
    started = time.monotonic()
    for index in (9, 1):
        result, out = piece(single_swarm, tmp_path, index)
        assert_ok(result)
        assert out.read_bytes() == single_swarm.spec.piece_bytes(index)
    assert time.monotonic() - started < 10


def test_download_piece_from_a_given_peer(single_swarm, tmp_path):
    result, out = piece(single_swarm, tmp_path, 3, "--peer", single_swarm.addresses[2])
    assert_ok(result, within=10)
    assert out.read_bytes() == single_swarm.spec.piece_bytes(3)


@pytest.mark.parametrize("index", ["10", "-1", "999999", "x"])
def test_download_piece_bad_index_is_an_error(single_swarm, tmp_path, index):
    result = run_cli("download_piece", "-o", tmp_path / "p", single_swarm.spec.torrent_path,
                     index, timeout=20)
    assert_error(result)
    assert not (tmp_path / "p").exists() or (tmp_path / "p").stat().st_size == 0


def test_download_whole_file(single_swarm, tmp_path):
    out = tmp_path / single_swarm.spec.name
    result = run_cli("download", "-o", out, single_swarm.spec.torrent_path, timeout=20)
    assert_ok(result, within=20)
    assert out.read_bytes() == single_swarm.spec.payload()


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_download_on_either_event_loop(single_swarm, tmp_path, monkeypatch, loop):
    """uvloop comes from the lock and is used by default; the client also runs on
    asyncio's own loop (BT_EVENT_LOOP=asyncio, as where uvloop cannot install)."""
    monkeypatch.setenv("BT_EVENT_LOOP", loop)
    out = tmp_path / single_swarm.spec.name
    result = run_cli("download", "--log-level", "debug", "-o", out, single_swarm.spec.torrent_path, timeout=20)
    assert_ok(result, within=20)
    assert f"event loop: {loop}" in result.stderr
    assert out.read_bytes() == single_swarm.spec.payload()


def test_download_from_given_peers_only(single_swarm, tmp_path):
    out = tmp_path / "given.bin"
    result = run_cli("download", "--peer", single_swarm.addresses[0], "--peer",
                     single_swarm.addresses[1], "-o", out, single_swarm.spec.torrent_path,
                     timeout=20)
    assert_ok(result, within=20)
    assert out.read_bytes() == single_swarm.spec.payload()


def test_download_multi_file_into_a_directory(multi_swarm, tmp_path):
    """-o DIR on a multi-file torrent writes DIR/<name>/<path...>."""
    spec = multi_swarm.spec
    result = run_cli("download", "-o", tmp_path / "out", spec.torrent_path, timeout=20)
    assert_ok(result, within=20)
    assert_same_files(spec, tmp_path / "out")


def test_download_piece_spanning_files(multi_swarm, tmp_path):
    spec = multi_swarm.spec
    boundary = spec.files[0][1]            # first file's length
    index = boundary // spec.piece_length  # the piece holding the end of file 1
    assert boundary % spec.piece_length, "the test needs a piece that spans two files"
    result, out = piece(multi_swarm, tmp_path, index)
    assert_ok(result, within=10)
    assert out.read_bytes() == spec.piece_bytes(index)


def test_seeder_killed_mid_download(swarms, tmp_path):
    """Three rate-limited seeders; one is SIGKILLed while the download runs."""
    swarm = swarms.single("killed.bin", 4 * MIB + 5, piece_length=64 * KIB, seed=21,
                          upload_rate=384 * KIB)
    out = tmp_path / "killed.bin"
    run = start_cli("download", "-o", out, swarm.spec.torrent_path)
    time.sleep(1.0)  # about a quarter of 4 MiB at 3 x 384 KiB/s
    assert run.proc.poll() is None, "the download ended before the kill: slow the seeders"
    swarm.seeders[0].kill()
    result = run.finish(timeout=40)
    assert_ok(result)
    assert out.read_bytes() == swarm.spec.payload()


def test_corrupt_seeder_does_not_corrupt_the_file(swarms, tmp_path):
    """One unlimited seeder serves garbled bytes for most pieces; two honest ones are
    slower. The file must still be right: every piece is checked against its SHA-1."""
    corrupt = list(range(0, 16, 1))
    swarm = swarms.single("corrupt.bin", 16 * 64 * KIB - 77, piece_length=64 * KIB, seed=22,
                          per_seeder={0: {"corrupt": corrupt},
                                      1: {"upload_rate": 256 * KIB},
                                      2: {"upload_rate": 256 * KIB}})
    out = tmp_path / "corrupt.bin"
    result = run_cli("download", "-o", out, swarm.spec.torrent_path, timeout=40)
    assert_ok(result)
    assert out.read_bytes() == swarm.spec.payload()


def test_pieces_spread_over_partial_seeders(swarms, tmp_path):
    """No peer has everything: one holds the even pieces, one the odd ones."""
    count = 12
    swarm = swarms.single("partial.bin", count * 32 * KIB - 1, piece_length=32 * KIB,
                          seed=23, seeders=2,
                          per_seeder={0: {"have": range(0, count, 2)},
                                      1: {"have": range(1, count, 2)}})
    out = tmp_path / "partial.bin"
    result = run_cli("download", "-o", out, swarm.spec.torrent_path, timeout=20)
    assert_ok(result, within=20)
    assert out.read_bytes() == swarm.spec.payload()


def test_download_with_no_reachable_peer_is_an_error(tmp_path):
    """No tracker, and the only peer refuses connections: an error, not a hang."""
    spec = make_single_file(tmp_path, "lonely.bin", 50_000, piece_length=16 * KIB, seed=25,
                            announce=None)
    result = run_cli("download", "--peer", f"127.0.0.1:{free_port()}", "-o",
                     tmp_path / "out.bin", spec.torrent_path, timeout=60)
    assert_error(result)


def test_interrupted_download_exits_cleanly(swarms, tmp_path):
    swarm = swarms.single("sigint.bin", 2 * MIB, piece_length=64 * KIB, seed=24, seeders=1,
                          upload_rate=256 * KIB)
    run = start_cli("download", "-o", tmp_path / "sigint.bin", swarm.spec.torrent_path)
    time.sleep(1.5)
    assert run.proc.poll() is None
    run.proc.send_signal(signal.SIGINT)  # the CLI process we started, by PID
    result = run.finish(timeout=10)
    assert result.returncode != 0 and not result.timed_out, result.describe()
    assert "Traceback" not in result.stderr, result.describe()
