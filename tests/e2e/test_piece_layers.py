"""Fetching piece layers (BEP 52 hash requests) from a libtorrent seeder, given only the
info dict, as a magnet download must: the layers must equal the .torrent's `piece layers`;
and `magnet_download` of v2 and hybrid magnets, which needs them to check any piece."""
from __future__ import annotations

import asyncio

import pytest

from app.core.metainfo import parse_info, parse_torrent
from app.core.tracker import PeerAddress
from app.io.peer import new_peer_id
from app.io.piece_layers import fetch_piece_layers
from support.checks import assert_ok
from support.cli import run_cli
from support.peers import start_seeder
from support.torrents import make_lt_spec

KIB = 1024
PIECE = 16 * KIB
# 1100 pieces: three requests of 512 nodes, each proven with one uncle; 6 pieces: one
# request of 8 nodes, two of them padding; a file of one piece has no layer.
SIZES = {"big.bin": 1100 * PIECE - 5, "mid.bin": 5 * PIECE + 1, "small.txt": 5000}


@pytest.mark.parametrize("version", ["v2", "hybrid"])
def test_piece_layers_from_a_libtorrent_seeder(tmp_path, version):
    spec = make_lt_spec(tmp_path / "torrent", "tree", SIZES, piece_length=PIECE, version=version, seed=7)
    expected = parse_torrent(spec.torrent_path.read_bytes()).info.piece_layers
    assert len(expected) == 2
    info = parse_info(spec.metadata)
    assert not info.piece_layers
    seeder = start_seeder(spec, tmp_path / "lt", announce=False)
    try:
        address = PeerAddress("127.0.0.1", seeder.port)
        # a peer that refuses the connection is skipped
        dead = PeerAddress("127.0.0.1", 1)
        got = asyncio.run(fetch_piece_layers(info, [dead, address], new_peer_id(), timeout=10))
    finally:
        seeder.stop()
    assert dict(got.piece_layers) == dict(expected)
    assert got.info_hash == info.info_hash


@pytest.mark.parametrize("version", ["v2", "hybrid"])
def test_magnet_download_of_a_v2_torrent(tmp_path, version):
    sizes = {"big.bin": 40 * PIECE + 7, "mid.bin": 3 * PIECE, "small": 3000}
    spec = make_lt_spec(tmp_path / "torrent", "tree", sizes, piece_length=PIECE, version=version, seed=3)
    link = f"magnet:?xt=urn:btmh:1220{spec.info_hash_v2}"
    if version == "hybrid":
        link = f"magnet:?xt=urn:btih:{spec.info_hash}&xt=urn:btmh:1220{spec.info_hash_v2}"
    seeder = start_seeder(spec, tmp_path / "lt", announce=False)
    try:
        out = tmp_path / "out"
        result = run_cli("magnet_download", "-o", out, "--peer", f"127.0.0.1:{seeder.port}", "--no-dht", link,
                         timeout=60)
        assert_ok(result)
    finally:
        seeder.stop()
    for parts, _ in spec.files:
        assert out.joinpath(*parts).read_bytes() == spec.data_root.joinpath(*parts).read_bytes(), parts
