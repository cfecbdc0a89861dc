"""BitTorrent v2 and hybrid torrents (BEP 52) in the engine, against libtorrent 2.x peers.

Every torrent here is libtorrent's own (`make_lt_spec`), so the layout (files aligned to
pieces, padding after every file), the piece layers and the info hashes are the reference
ones. The payloads mix awkward sizes: a file of many pieces ending mid-block, files smaller
than a block and than a piece, an empty file.

- `download` of v2-only and hybrid torrents from libtorrent seeders, checked byte for byte
  and by `verify`; over opentracker too, which knows a v2 torrent by its truncated hash;
- a libtorrent seeder serving corrupted pieces: the merkle check refuses them;
- resume: a rerun re-hashes what is on disk with the v2 rules and fetches only the rest;
- `download_piece` of a piece that ends in padding;
- libtorrent downloading v2 and hybrid torrents from our `seed`.
"""
from __future__ import annotations

import os
import time

import pytest

from support.checks import assert_ok
from support.cli import run_cli
from support.peers import start_leecher, start_seeder
from support.torrents import TorrentSpec, make_lt_spec

from swarm.kit import KIB, OurSeeder, assert_tree, run_cli_tty, summary

PIECE = 32 * KIB
SIZES = {"big.bin": 5 * PIECE + 4321, "d/e/small.txt": 5000, "d/zero": 0, "d/block.bin": 16 * KIB,
         "one.bin": PIECE, "tiny": 1}
VERSIONS = ["v2", "hybrid"]


def spec_of(tmp_path, version: str, *, seed: int = 52, announce: str | None = None) -> TorrentSpec:
    return make_lt_spec(tmp_path / "torrent", "tree", SIZES, piece_length=PIECE, version=version,
                        seed=seed, announce=announce)


def stream_bytes(spec: TorrentSpec) -> bytes:
    """The torrent's piece stream as libtorrent lays it out: every file padded to a piece."""
    stream = bytearray()
    for parts, _ in spec.files:
        data = spec.data_root.joinpath(*parts).read_bytes()
        stream += data + bytes(-len(data) % PIECE)
    return bytes(stream)


@pytest.mark.parametrize("version", VERSIONS)
def test_download_from_libtorrent_seeders(tmp_path, client_port, version):
    spec = spec_of(tmp_path, version)
    seeders = [start_seeder(spec, tmp_path / f"lt-{i}", announce=False) for i in range(2)]
    try:
        out = tmp_path / "out"
        result = run_cli("download", "-o", out, "--port", client_port,
                         *[arg for s in seeders for arg in ("--peer", s.address)], spec.torrent_path,
                         timeout=60)
        assert_ok(result)
    finally:
        for seeder in seeders:
            seeder.stop()
    assert_tree(out, spec, result.describe())
    assert_ok(run_cli("verify", spec.torrent_path, out))


def test_v2_download_through_opentracker(opentracker, tmp_path, client_port):
    """A v2-only torrent is announced by the first 20 bytes of its SHA-256 info hash, by
    libtorrent and by us alike, so the tracker introduces us."""
    spec = spec_of(tmp_path, "v2", seed=53, announce=opentracker.announce_url)
    opentracker.whitelist(spec.info_hash)
    seeder = start_seeder(spec, tmp_path / "lt", announce=True)
    try:
        result = run_cli("download", "-o", tmp_path / "out", "--port", client_port, spec.torrent_path,
                         timeout=60)
        assert_ok(result)
    finally:
        seeder.stop()
    assert_tree(tmp_path / "out", spec, result.describe())


def test_merkle_check_refuses_corrupted_pieces(tmp_path, client_port):
    """One seeder garbles two pieces after libtorrent checked them (so it serves them);
    an honest seeder has everything. The download still ends byte for byte right."""
    spec = spec_of(tmp_path, "v2", seed=54)
    bad = start_seeder(spec, tmp_path / "bad", corrupt=[0, 3], announce=False)
    good = start_seeder(spec, tmp_path / "good", announce=False)
    try:
        result = run_cli("download", "-o", tmp_path / "out", "--port", client_port, "--peer", bad.address,
                         "--peer", good.address, spec.torrent_path, timeout=60)
        assert_ok(result)
    finally:
        bad.stop()
        good.stop()
    assert_tree(tmp_path / "out", spec, result.describe())


@pytest.mark.parametrize("version", VERSIONS)
def test_resume_rehashes_with_the_v2_rules(tmp_path, client_port, version):
    """Everything on disk but one flipped byte in big.bin's second piece and a truncated
    small file: verify names exactly those, and the rerun keeps every other piece."""
    spec = spec_of(tmp_path, version, seed=55)
    out = tmp_path / "out"
    for parts, _ in spec.files:
        target = out.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(spec.data_root.joinpath(*parts).read_bytes())
    big = out / "tree" / "big.bin"
    with open(big, "r+b") as handle:
        handle.seek(PIECE + 100)
        byte = handle.read(1)
        handle.seek(PIECE + 100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    os.truncate(out / "tree" / "d" / "e" / "small.txt", 100)
    checked = run_cli("verify", spec.torrent_path, out)
    assert checked.returncode == 1, checked.describe()
    incomplete = [line for line in checked.stdout.splitlines() if "big.bin" in line or "small.txt" in line]
    assert len(incomplete) == 2 and all("complete" not in line.split()[:1] for line in incomplete), checked.stdout

    seeder = start_seeder(spec, tmp_path / "lt", announce=False)
    try:
        result = run_cli_tty("download", "-o", out, "--port", client_port, "--peer", seeder.address,
                             spec.torrent_path, timeout=60)
        assert_ok(result)
    finally:
        seeder.stop()
    assert_tree(out, spec, result.describe())
    assert summary(result)["resumed"] == spec.num_pieces - 2, result.describe()
    assert summary(result)["downloaded"] <= 2 * PIECE, result.describe()


def test_download_piece_ending_in_padding(tmp_path, client_port):
    """Piece 5 holds the last 4321 bytes of big.bin and then padding: the piece as the wire
    knows it (a whole 32 KiB, padding as zeros) is what lands in the file."""
    spec = spec_of(tmp_path, "v2", seed=56)
    seeder = start_seeder(spec, tmp_path / "lt", announce=False)
    try:
        out = tmp_path / "piece"
        assert_ok(run_cli("download_piece", "-o", out, "--port", client_port, "--peer", seeder.address,
                          spec.torrent_path, "5", timeout=60))
    finally:
        seeder.stop()
    assert out.read_bytes() == stream_bytes(spec)[5 * PIECE:6 * PIECE]
    assert out.read_bytes()[4321:] == bytes(PIECE - 4321)


@pytest.mark.parametrize("version", VERSIONS)
def test_libtorrent_downloads_from_our_seed(tmp_path, version):
    spec = spec_of(tmp_path, version, seed=57)
    with OurSeeder(spec.torrent_path, spec.data_root) as seeder:
        leecher = start_leecher(tmp_path / "lt", torrent=spec.torrent_path, peers=[seeder.address], timeout=40)
        assert leecher.wait_exit(50) == 0, leecher.log_text()
    assert_tree(tmp_path / "lt" / "download", spec, leecher.log_text())


@pytest.mark.parametrize("version", VERSIONS)
def test_magnet_download_fetches_piece_layers(tmp_path, client_port, version):
    """Only a magnet link (btmh, plus btih for a hybrid): the metadata comes over
    ut_metadata and checks against the v2 hash; the piece layers, which metadata lacks,
    come with hash requests; then every piece is checked by the merkle rules."""
    spec = spec_of(tmp_path, version, seed=58)
    seeder = start_seeder(spec, tmp_path / "lt", announce=False)
    try:
        result = run_cli("magnet_download", "-o", tmp_path / "out", "--port", client_port,
                         "--peer", seeder.address, spec.magnet(), timeout=60)
        assert_ok(result)
    finally:
        seeder.stop()
    assert_tree(tmp_path / "out", spec, result.describe())


@pytest.mark.parametrize("version", VERSIONS)
def test_libtorrent_magnet_leecher_gets_layers_from_our_seed(tmp_path, version):
    """libtorrent, given only the magnet, asks our `seed` for the metadata and then for the
    piece layers (hash requests), which we answer from the .torrent's piece layers."""
    spec = spec_of(tmp_path, version, seed=59)
    with OurSeeder(spec.torrent_path, spec.data_root) as seeder:
        leecher = start_leecher(tmp_path / "lt", magnet=spec.magnet(), peers=[seeder.address], timeout=40)
        assert leecher.wait_exit(50) == 0, leecher.log_text()
    assert_tree(tmp_path / "lt" / "download", spec, leecher.log_text())


def test_select_file_needs_no_part_file(tmp_path, client_port):
    """v2 files start on piece boundaries, so no piece holds two files: a selection fetches
    exactly its files' pieces and parks nothing in a part-file."""
    spec = spec_of(tmp_path, "hybrid", seed=60)
    listed = run_cli("files", spec.torrent_path)
    assert_ok(listed)
    index = next(i for i, line in enumerate(listed.stdout.splitlines(), 1) if line.endswith("small.txt"))
    seeder = start_seeder(spec, tmp_path / "lt", announce=False)
    out = tmp_path / "out"
    try:
        result = run_cli_tty("download", "-o", out, "--port", client_port, "--peer", seeder.address,
                             "--select-file", str(index), spec.torrent_path, timeout=60)
        assert_ok(result)
    finally:
        seeder.stop()
    small = ("tree", "d", "e", "small.txt")
    assert sorted(p.relative_to(out).parts for p in out.rglob("*") if p.is_file()) == [small]
    assert out.joinpath(*small).read_bytes() == spec.data_root.joinpath(*small).read_bytes()
    assert summary(result)["downloaded"] == 16 * KIB, result.describe()   # one block: 5000 bytes and padding


def test_our_hybrid_seed_is_listed_under_both_hashes(opentracker, tmp_path):
    """A v2-only client knows a hybrid by its truncated v2 hash alone: our `seed` announces
    under that name as well as the v1 one, as libtorrent does."""
    spec = spec_of(tmp_path, "hybrid", seed=61, announce=opentracker.announce_url)
    v2_name = spec.info_hash_v2[:40]
    opentracker.whitelist(spec.info_hash, v2_name)
    with OurSeeder(spec.torrent_path, spec.data_root, "--no-dht") as seeder:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            listed = [opentracker.peers(spec.info_hash), opentracker.peers(v2_name)]
            if all(seeder.address in peers for peers in listed):
                break
            time.sleep(0.2)
        assert all(seeder.address in peers for peers in listed), listed
