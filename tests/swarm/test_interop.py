"""Seeding and interop: libtorrent downloads from our `seed`; our `download` among a mix of
libtorrent and our own seeders; two of our downloaders trading pieces; bad requests to our
seeder; the demo."""
from __future__ import annotations

import threading

import pytest

from support.checks import assert_ok
from support.cli import run_cli
from support.net import free_port, port_accepts, wait_for
from support.peers import copy_payload, start_leecher
from support.torrents import garble_pieces, make_multi_file, make_single_file
from support.wire import PeerConnection

from swarm.kit import (
    KIB,
    MIB,
    OurSeeder,
    assert_tree,
    fetch_piece,
    read_for,
    request,
    run_cli_tty,
    summary,
    tree,
    wait_unchoked,
)
from swarm.kit import PIECE as PIECE_ID

PIECE = 32 * KIB
BITFIELD = 5


def test_libtorrent_leechers_fetch_torrent_and_magnet_from_our_seed(tmp_path):
    """One `seed` of a multi-file torrent; two libtorrent leechers at once, one given the
    .torrent, one only a magnet link (metadata over ut_metadata from us). Both get every
    byte of every file."""
    spec = make_multi_file(tmp_path / "torrent", "shared",
                           {"big.bin": 1_500_001, "d/e/small.txt": 4_321, "d/zero": 0,
                            "d/mid.bin": 600_000}, piece_length=PIECE, seed=61, announce=None)
    with OurSeeder(spec.torrent_path, spec.data_root) as seeder:
        by_torrent = start_leecher(tmp_path / "lt-torrent", torrent=spec.torrent_path,
                                   peers=[seeder.address], timeout=40)
        by_magnet = start_leecher(tmp_path / "lt-magnet", magnet=spec.magnet(),
                                  peers=[seeder.address], timeout=40)
        codes = [by_torrent.wait_exit(50), by_magnet.wait_exit(50)]
        assert codes == [0, 0], by_torrent.log_text() + by_magnet.log_text()
        uploaded = seeder.uploaded()
    for leecher in ("lt-torrent", "lt-magnet"):
        assert_tree(tmp_path / leecher / "download", spec, leecher)
    # it served both copies itself (libtorrent leechers with only our seeder as a source)
    assert uploaded >= 2 * spec.total_length * 0.95, uploaded


def test_download_from_libtorrent_and_our_seeders_together(swarms, tmp_path, client_port):
    """2 libtorrent seeders and 2 of our `seed` processes, all announced to opentracker.
    Our download finds them there and completes. Both kinds delivered: our seeders say
    how much they uploaded, and it is more than nothing and less than the whole (the rest
    can only have come from libtorrent); the summary counts the peers that sent data."""
    swarm = swarms.single("mixed.bin", 4 * MIB + 3, piece_length=PIECE, seed=62, seeders=2)
    spec = swarm.spec
    ours = [OurSeeder(spec.torrent_path, copy_payload(spec, tmp_path / f"ours{i}") / spec.name)
            for i in range(2)]
    try:
        wait_for(lambda: {s.address for s in ours} <= set(swarm.tracker.peers(spec.info_hash)),
                 15, interval=0.2, what="our seeders to be listed at opentracker")
        out = tmp_path / "mixed.bin"
        result = run_cli_tty("download", "-o", out, "--port", client_port, spec.torrent_path,
                             timeout=40)
    finally:
        uploaded = [s.uploaded() for s in ours]
    assert_ok(result, within=30)
    assert out.read_bytes() == spec.payload(), result.describe()
    stats = summary(result)
    why = f"our seeders uploaded {uploaded}; summary {stats}\n{result.describe()}"
    assert sum(u > 0 for u in uploaded) >= 1, "none of our seeders delivered\n" + why
    # displayed sizes are rounded to 0.1 of a unit: keep a margin of 0.1 MiB
    assert sum(uploaded) < spec.total_length - 0.1 * MIB, "libtorrent delivered nothing\n" + why
    assert stats["peers"] >= 2, why


def held_pieces(address: str, spec) -> set[int]:
    """The pieces a peer announces in its bitfield right after the handshake."""
    host, port = address.split(":")
    with PeerConnection(host, int(port), bytes.fromhex(spec.info_hash)) as conn:
        conn.sock.settimeout(5)
        msg_id, payload = conn.read_message()
        while msg_id != BITFIELD:  # an extension handshake may come first
            msg_id, payload = conn.read_message()
    return {i for i in range(spec.num_pieces) if payload[i // 8] >> (7 - i % 8) & 1}


@pytest.mark.parametrize("dial", ["one-way", "both-ways"])
def test_two_downloaders_trade_pieces(tmp_path, dial):
    """Our seeder S1 holds only the even pieces, our seeder S2 only the odd ones (the other
    half garbled on disk, so it does not verify). Downloader D1 knows S1 and D2; D2 knows
    only S2 (and, with both-ways, D1). No tracker, no PEX: D1 can get the odd pieces only
    from D2 and D2 the even ones only from D1, so both completing proves that each
    uploaded to the other. The summaries say each got data from 2 peers."""
    spec = make_single_file(tmp_path / "torrent", "traded.bin", 2 * MIB + 5, piece_length=PIECE,
                            seed=63, announce=None)
    even = set(range(0, spec.num_pieces, 2))
    odd = set(range(spec.num_pieces)) - even
    seeders = []
    try:
        for i, missing in enumerate((odd, even)):
            root = copy_payload(spec, tmp_path / f"seed{i}")
            garble_pieces(spec, missing, data_root=root)
            seeders.append(OurSeeder(spec.torrent_path, root / spec.name))
        assert held_pieces(seeders[0].address, spec) == even
        assert held_pieces(seeders[1].address, spec) == odd

        p1, p2 = free_port(), free_port()
        outs = [tmp_path / "d1" / spec.name, tmp_path / "d2" / spec.name]
        argv = {
            "d1": ["--port", p1, "--peer", seeders[0].address, "--peer", f"127.0.0.1:{p2}"],
            "d2": ["--port", p2, "--peer", seeders[1].address]
                  + (["--peer", f"127.0.0.1:{p1}"] if dial == "both-ways" else []),
        }
        results = {}

        def run(name, out):
            results[name] = run_cli_tty("download", "-v", "--seed-after", "3s", "-o", out,
                                        *argv[name], spec.torrent_path, timeout=45)

        threads = {"d2": threading.Thread(target=run, args=("d2", outs[1]))}
        threads["d2"].start()
        wait_for(lambda: port_accepts(p2) or not threads["d2"].is_alive(), 15,
                 what="D2 to listen")
        threads["d1"] = threading.Thread(target=run, args=("d1", outs[0]))
        threads["d1"].start()
        for thread in threads.values():
            thread.join(60)
    finally:
        uploaded = [s.uploaded() for s in seeders]
    why = f"seeders uploaded {uploaded}\n" + "\n".join(r.describe() for r in results.values())
    assert sorted(results) == ["d1", "d2"], why
    for name, out in zip(("d1", "d2"), outs):
        assert_ok(results[name])
        assert out.read_bytes() == spec.payload(), f"{name}\n{why}"
    assert summary(results["d1"])["peers"] == 2, why
    assert summary(results["d2"])["peers"] == 2, why
    # each seeder served only its half, once: the other half travelled between D1 and D2
    half = spec.total_length / 2
    assert all(u <= half + 0.2 * MIB for u in uploaded), why


def test_bad_requests_to_our_seed(tmp_path):
    """Raw peer-wire clients send our seeder (a) a 32 KiB request, (b) requests outside the
    torrent or beyond a piece's end: it closes the connection and sends no data; (c) a
    request while it chokes us: no piece comes. Meanwhile a libtorrent leecher downloads
    from it and a well-behaved raw connection stays open; afterwards that connection, a
    second leecher and a new raw client still get correct data."""
    spec = make_single_file(tmp_path / "torrent", "guarded.bin", 3 * MIB + 1001,
                            piece_length=PIECE, seed=64, announce=None)
    last = spec.num_pieces - 1
    last_size = spec.piece_size(last)
    assert last_size < PIECE
    info_hash = bytes.fromhex(spec.info_hash)
    closing = {
        "32 KiB": (0, 0, 32 * KIB),
        "index = piece count": (spec.num_pieces, 0, 16 * KIB),
        "huge index": (0xFFFFFFFF, 0, 1),
        "begin+length past the piece": (3, PIECE - 100, 16 * KIB),
        "begin at the piece's end": (3, PIECE, 1),
        "past the short last piece": (last, last_size - 1, 2),
        "zero length": (0, 0, 0),
    }
    with OurSeeder(spec.torrent_path, spec.data_root / spec.name) as seeder:
        steady = PeerConnection("127.0.0.1", seeder.port, info_hash)
        wait_unchoked(steady)
        leecher = start_leecher(tmp_path / "lt1", torrent=spec.torrent_path,
                                peers=[seeder.address], timeout=40)
        problems = []
        for label, (index, begin, length) in closing.items():
            with PeerConnection("127.0.0.1", seeder.port, info_hash) as conn:
                wait_unchoked(conn)
                request(conn, index, begin, length)
                seen, closed = read_for(conn, 3.0)
                if not closed or PIECE_ID in seen:
                    problems.append(f"{label}: closed={closed}, messages {seen}")
        with PeerConnection("127.0.0.1", seeder.port, info_hash) as conn:
            request(conn, 0, 0, 16 * KIB)  # never said interested: we stay choked
            seen, closed = read_for(conn, 2.0)
            if PIECE_ID in seen:
                problems.append(f"while choked: got a piece (messages {seen})")
        assert not problems, "\n".join(problems)
        with steady:
            assert fetch_piece(steady, 5, PIECE) == spec.piece_bytes(5)

        assert leecher.wait_exit(50) == 0, leecher.log_text()
        second = start_leecher(tmp_path / "lt2", torrent=spec.torrent_path,
                               peers=[seeder.address], timeout=40)
        assert second.wait_exit(50) == 0, second.log_text()
        with PeerConnection("127.0.0.1", seeder.port, info_hash) as conn:
            conn.sock.settimeout(10)
            assert conn.download_piece(last, last_size) == spec.piece_bytes(last)
        assert seeder.run.proc.poll() is None, "our seeder died"
    assert_ok(seeder.stop())
    for name in ("lt1", "lt2"):
        assert (tmp_path / name / "download" / spec.name).read_bytes() == spec.payload(), name


def test_demo_runs_end_to_end(tmp_path):
    """`demo --size 8`: payload, `create`, the embedded tracker, seeders and a download,
    all on this machine; it prints `Verified 8.0 MiB ...` and exits 0."""
    keep = tmp_path / "demo"
    result = run_cli("demo", "--size", "8", "--keep", keep, timeout=90)
    assert_ok(result, within=60)
    assert result.stdout.startswith("Verified 8.0 MiB from "), result.describe()
    # what it kept is consistent: some file of 8 MiB was downloaded
    files = tree(keep)
    assert any(len(data) == 8 * MIB for data in files.values()), sorted(files)
