"""Fetching piece layers (BEP 52 hash requests) from a libtorrent seeder, given only the
info dict, as a magnet download must: the layers must equal the .torrent's `piece layers`."""
from __future__ import annotations

import asyncio

import pytest

from app.core.metainfo import parse_info, parse_torrent
from app.core.tracker import PeerAddress
from app.io.peer import new_peer_id
from app.io.piece_layers import fetch_piece_layers
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
