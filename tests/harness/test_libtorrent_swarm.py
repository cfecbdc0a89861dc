"""The libtorrent peers used by the e2e tests do what the tests rely on.

These use only libtorrent, opentracker and the harness's own wire client: they pass or
fail independently of the application.
"""
import time

import pytest

from support.checks import assert_same_files
from support.peers import start_leecher
from support.torrents import sha1_hex
from support.wire import EXT_RESERVED, PeerConnection


def test_seeders_are_announced_to_opentracker(single_swarm):
    listed = single_swarm.tracker.peers(single_swarm.spec.info_hash)
    for address in single_swarm.addresses:
        assert address in listed


def test_libtorrent_leecher_downloads_via_opentracker(single_swarm, tmp_path):
    """A reference client given only the .torrent finds the seeders through the tracker."""
    spec = single_swarm.spec
    leecher = start_leecher(tmp_path / "leecher", torrent=spec.torrent_path, timeout=45)
    assert leecher.wait_exit(60) == 0, leecher.log_text()
    got = (tmp_path / "leecher" / "download" / spec.name).read_bytes()
    assert got == spec.payload()


def test_libtorrent_leecher_fetches_metadata_from_magnet(multi_swarm, tmp_path):
    spec = multi_swarm.spec
    leecher = start_leecher(tmp_path / "leecher", magnet=spec.magnet(),
                            peers=multi_swarm.addresses[:1], timeout=45)
    assert leecher.wait_exit(60) == 0, leecher.log_text()
    assert_same_files(spec, tmp_path / "leecher" / "download")


def test_wire_client_gets_every_piece_right(single_swarm):
    spec = single_swarm.spec
    seeder = single_swarm.seeders[0]
    with PeerConnection("127.0.0.1", seeder.port, bytes.fromhex(spec.info_hash)) as conn:
        for index in range(spec.num_pieces):
            assert sha1_hex(conn.download_piece(index, spec.piece_size(index))) \
                == spec.piece_hashes[index]


def test_corrupt_seeder_serves_wrong_bytes_only_for_chosen_pieces(swarms):
    swarm = swarms.single("corrupt.bin", 6 * 64 * 1024 + 999, piece_length=64 * 1024,
                          seeders=1, corrupt=[1, 4], announce=False)
    spec, seeder = swarm.spec, swarm.seeders[0]
    assert seeder.info["corrupt"] == [1, 4]
    with PeerConnection("127.0.0.1", seeder.port, bytes.fromhex(spec.info_hash)) as conn:
        for index in range(spec.num_pieces):
            data = conn.download_piece(index, spec.piece_size(index))
            assert len(data) == spec.piece_size(index)
            good = sha1_hex(data) == spec.piece_hashes[index]
            assert good == (index not in (1, 4)), f"piece {index}"
            if index in (1, 4):  # exactly the flipped bytes
                assert data == bytes(b ^ 0xFF for b in spec.piece_bytes(index))


def test_partial_seeder_holds_only_its_pieces_and_never_downloads(swarms):
    """A partial seeder in a swarm with a full seeder still has only its pieces later."""
    swarm = swarms.single("partial.bin", 5 * 64 * 1024, piece_length=64 * 1024, seeders=2,
                          per_seeder={1: {"have": [0, 3]}})
    spec, partial = swarm.spec, swarm.seeders[1]
    assert partial.info["pieces"] == [0, 3]
    time.sleep(2)  # long enough for a normal leecher to fetch 320 KiB over loopback
    with PeerConnection("127.0.0.1", partial.port, bytes.fromhex(spec.info_hash)) as conn:
        msg_id, payload = conn.read_message()
        assert msg_id == 5, "a partial seeder starts with a bitfield"
        assert payload == bytes([0b10010000])
        assert sha1_hex(conn.download_piece(3, spec.piece_size(3))) == spec.piece_hashes[3]


def test_seeder_serves_metadata_over_the_extension_protocol(single_swarm):
    spec = single_swarm.spec
    seeder = single_swarm.seeders[1]
    with PeerConnection("127.0.0.1", seeder.port, bytes.fromhex(spec.info_hash),
                        reserved=EXT_RESERVED) as conn:
        assert conn.remote_reserved[5] & 0x10
        assert conn.fetch_metadata() == spec.metadata


def test_killed_seeder_is_gone(swarms):
    swarm = swarms.single("kill.bin", 100_000, piece_length=32 * 1024, seeders=1,
                          announce=False)
    seeder = swarm.seeders[0]
    assert seeder.alive()
    seeder.kill()
    assert not seeder.alive()
    with pytest.raises(OSError):
        PeerConnection("127.0.0.1", seeder.port, bytes.fromhex(swarm.spec.info_hash),
                       timeout=2)
