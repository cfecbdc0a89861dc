"""Protocol encryption (MSE) against real libtorrent peers: incoming connections from
leechers, and (at the end) our downloader dialling seeders that require it.

libtorrent dials with MSE first by default (plaintext allowed). Our `seed` answers it,
selecting the plaintext method, so the leecher's FIRST connection is the one that
downloads: `--trace` shows a single connection, opening with the MSE line and then the
handshakes and messages in clear. A leecher that insists on RC4 is refused cleanly.
"""
from __future__ import annotations

import re
import sys
import time

from support.checks import assert_error, assert_ok
from support.cli import run_cli
from support.peers import LT_PEER, LtPeer, free_port, start_seeder
from support.torrents import make_single_file

from swarm.kit import KIB, MIB, OurSeeder

TRACE_LINE = re.compile(r"^\s*\d+\.\d+ (\S) (\S+) (.*)$")


def start_lt_leecher(workdir, torrent, seeder: OurSeeder, encryption: str, timeout: float) -> LtPeer:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    ready = workdir / "ready.json"
    argv = [sys.executable, str(LT_PEER), "leech", "--save-path", str(workdir / "download"),
            "--port", str(port), "--ready-file", str(ready), "--timeout", str(timeout),
            "--torrent", str(torrent), "--peer", seeder.address, "--encryption", encryption]
    return LtPeer(argv, workdir, port, ready)


def peer_lines(stderr: str, port: int) -> list[tuple[str, str]]:
    """The trace lines (direction, text) about connections from 127.0.0.1 other than
    `port` (the seeder's own)."""
    lines = []
    for line in stderr.splitlines():
        match = TRACE_LINE.match(line)
        if match and match[2].startswith("127.0.0.1:") and not match[2].endswith(f":{port}"):
            lines.append((match[2], match[1] + " " + match[3]))
    return lines


def test_libtorrent_with_default_encryption_gets_through_on_its_first_connection(tmp_path):
    spec = make_single_file(tmp_path / "torrent", "mse.bin", 1 * MIB + 999, piece_length=64 * KIB,
                            seed=211, announce=None)
    seeder = OurSeeder(spec.torrent_path, spec.data_root / spec.name, "--trace", "--no-dht")
    leecher = start_lt_leecher(tmp_path / "lt", spec.torrent_path, seeder, "default", timeout=30)
    try:
        started = time.monotonic()
        code = leecher.wait_exit(40)
        took = time.monotonic() - started
    finally:
        leecher.stop()
        result = seeder.stop()
    why = f"leecher log (tail):\n{leecher.log_text()[-2000:]}\nseeder: {result.describe()}"
    assert code == 0, why
    assert (tmp_path / "lt" / "download" / spec.name).read_bytes() == spec.payload(), why
    assert "Traceback" not in result.stderr, why
    lines = peer_lines(result.stderr, seeder.port)
    # (the harness's probe of the seeder's port is a connection with nothing but its close)
    connections = {who for who, text in lines if not text.startswith("×")}
    assert len(connections) == 1, f"{len(connections)} connections (a failed first one?)\n{why}"
    texts = [text for who, text in lines if who in connections]
    assert texts[0] == "← MSE handshake, plaintext selected", why
    assert texts[1].startswith("← handshake") and texts[2].startswith("→ handshake"), why
    assert any(text.startswith("→ piece") for text in texts), why
    assert not any("undecodable" in text for text in texts), why
    assert took < 20, why


def test_libtorrent_requiring_rc4_is_refused_cleanly(tmp_path):
    spec = make_single_file(tmp_path / "torrent", "rc4.bin", 256 * KIB, piece_length=64 * KIB,
                            seed=212, announce=None)
    seeder = OurSeeder(spec.torrent_path, spec.data_root / spec.name, "-v", "--no-dht")
    leecher = start_lt_leecher(tmp_path / "lt", spec.torrent_path, seeder, "rc4", timeout=4)
    try:
        code = leecher.wait_exit(15)
        alive = seeder.run.proc.poll() is None
    finally:
        leecher.stop()
        result = seeder.stop()
    why = f"leecher log (tail):\n{leecher.log_text()[-2000:]}\nseeder: {result.describe()}"
    assert code == 1, why   # it gave up: nothing downloaded
    assert alive, why
    assert "Traceback" not in result.stderr, why
    assert "offers only encrypted streams" in result.stderr, why


# --- outgoing: our downloader dials a seeder that takes only encrypted connections ------

def test_download_from_a_seeder_that_requires_encryption(tmp_path):
    """libtorrent with MSE forced (either crypto method) hangs up on a plain handshake;
    the client dials again inside MSE, offering the plaintext method, and downloads."""
    spec = make_single_file(tmp_path / "torrent", "forced.bin", 1 * MIB + 321, piece_length=64 * KIB,
                            seed=213, announce=None)
    seeder = start_seeder(spec, tmp_path / "lt", announce=False, encryption="forced")
    out = tmp_path / "out" / spec.name
    try:
        result = run_cli("download", "--port", free_port(), "-v", "--trace", "--no-dht", "--peer",
                         f"127.0.0.1:{seeder.port}", "-o", out, spec.torrent_path, timeout=30)
    finally:
        seeder.stop()
    why = f"{result.describe()}\nseeder log (tail):\n{seeder.log_text()[-2000:]}"
    assert_ok(result)
    assert out.read_bytes() == spec.payload(), why
    assert "closed a plain handshake; trying protocol encryption" in result.stderr, why
    texts = [text for _, text in peer_lines(result.stderr, -1)]
    at = texts.index("← MSE handshake, plaintext selected")
    assert texts[at + 1].startswith("→ handshake") and texts[at + 2].startswith("← handshake"), why


def test_download_from_a_seeder_that_requires_rc4_fails_cleanly(tmp_path):
    """Offered the plaintext method only, a peer that insists on RC4 refuses us: one
    clear Error line, no traceback, well within the time the stall rules allow."""
    spec = make_single_file(tmp_path / "torrent", "rc4only.bin", 256 * KIB, piece_length=64 * KIB,
                            seed=214, announce=None)
    seeder = start_seeder(spec, tmp_path / "lt", announce=False, encryption="rc4")
    try:
        result = run_cli("download", "--port", free_port(), "--no-dht", "--peer", f"127.0.0.1:{seeder.port}", "-o",
                         tmp_path / "out.bin", spec.torrent_path, timeout=30)
    finally:
        seeder.stop()
    assert_error(result)
    assert result.elapsed < 20, result.describe()


def test_plain_seeders_get_one_plain_connection(tmp_path):
    """The fallback costs nothing where plain handshakes work: --trace shows no MSE."""
    spec = make_single_file(tmp_path / "torrent", "plain.bin", 256 * KIB, piece_length=64 * KIB,
                            seed=215, announce=None)
    seeder = start_seeder(spec, tmp_path / "lt", announce=False)
    try:
        result = run_cli("download", "--port", free_port(), "--trace", "--no-dht", "--peer",
                         f"127.0.0.1:{seeder.port}", "-o", tmp_path / "out.bin", spec.torrent_path, timeout=30)
    finally:
        seeder.stop()
    assert_ok(result)
    assert "MSE" not in result.stderr and "trying protocol encryption" not in result.stderr, result.describe()
