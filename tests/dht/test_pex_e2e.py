"""Peer exchange (BEP 11) end to end: our client is given one libtorrent peer that holds
half the pieces (upload mode) and is connected to a full libtorrent seeder; it learns the
seeder only through that peer's ut_pex messages, and completes."""
from __future__ import annotations

import time

from support.checks import assert_ok
from support.cli import run_cli
from support.lt_dht import LtNode
from support.net import free_port
from support.torrents import make_single_file

KIB = 1024


def test_pex_introduces_the_seeder(tmp_path):
    net = 20 + int(time.time() * 1000) % 200
    spec = make_single_file(tmp_path / "t", "pex.bin", 640 * KIB, piece_length=64 * KIB, seed=61)
    seeder = LtNode(f"127.{net}.201.1", dht=False)
    partial = LtNode(f"127.{net}.202.1", dht=False)
    try:
        seeder.seed(spec, tmp_path / "seeder")
        partial.seed(spec, tmp_path / "partial", have=list(range(0, spec.num_pieces, 2)))
        partial.handle.connect_peer((seeder.ip, seeder.port))
        deadline = time.monotonic() + 10
        while partial.handle.status().num_peers < 1:
            assert time.monotonic() < deadline, "the partial peer never connected to the seeder"
            time.sleep(0.05)
        out = tmp_path / "out.bin"
        result = run_cli("download", "-o", out, "--port", free_port(), "--no-dht", "--peer", partial.address,
                         "-vv", spec.torrent_path, timeout=40)
        assert_ok(result)
        assert out.read_bytes() == spec.payload()
        assert f"ut_pex from {partial.address}" in result.stderr, result.describe()
        assert seeder.address in result.stderr, "the seeder was never dialled\n" + result.describe()
    finally:
        del seeder.session, partial.session


def test_private_torrent_sends_no_pex(tmp_path):
    """private=1: no ut_pex in our extension handshake, so peers send us none."""
    from app.core import extension as ext
    body = ext.extension_handshake_body(1000, pex=False)
    assert b"ut_pex" not in body
    assert ext.parse_extension_handshake(ext.extension_handshake_body(1000, pex=True)).ut_pex_id == ext.OUR_UT_PEX_ID
