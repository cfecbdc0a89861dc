"""seed: libtorrent leechers download from our seeder (by .torrent, by magnet, via opentracker)."""
import support.seeder
from support.checks import assert_same_files
from support.net import wait_for
from support.peers import start_leecher
from support.torrents import make_multi_file, make_single_file

KIB = 1024


class OurSeeder(support.seeder.OurSeeder):
    """support's OurSeeder; leaving `with` normally also checks that it stopped cleanly."""

    def __exit__(self, *exc):
        result = self.stop()
        if exc[0] is None:  # Ctrl-C is a normal way to stop seeding
            assert not result.timed_out, result.describe()
            assert "Traceback" not in result.stderr, result.describe()


def test_libtorrent_downloads_a_file_from_our_seeder(tmp_path):
    spec = make_single_file(tmp_path, "served.bin", 700_001, piece_length=64 * KIB, seed=31,
                            announce=None)
    with OurSeeder(spec.torrent_path, spec.data_root / spec.name) as seeder:
        leecher = start_leecher(tmp_path / "lt", torrent=spec.torrent_path,
                                peers=[seeder.address], timeout=40)
        assert leecher.wait_exit(50) == 0, leecher.log_text()
    assert (tmp_path / "lt" / "download" / spec.name).read_bytes() == spec.payload()


def test_libtorrent_fetches_metadata_and_a_directory_from_our_seeder(tmp_path):
    spec = make_multi_file(tmp_path, "tree", {"a.bin": 90_000, "d/b.bin": 40_000,
                                              "d/e/c.txt": 17}, piece_length=32 * KIB,
                           seed=32, announce=None)
    with OurSeeder(spec.torrent_path, spec.data_root) as seeder:
        leecher = start_leecher(tmp_path / "lt", magnet=spec.magnet(),
                                peers=[seeder.address], timeout=40)
        assert leecher.wait_exit(50) == 0, leecher.log_text()
    assert_same_files(spec, tmp_path / "lt" / "download")


def test_libtorrent_finds_our_seeder_through_opentracker(opentracker, tmp_path):
    spec = make_single_file(tmp_path, "announced.bin", 300_000, piece_length=32 * KIB,
                            seed=33, announce=opentracker.announce_url)
    opentracker.whitelist(spec.info_hash)
    with OurSeeder(spec.torrent_path, spec.data_root / spec.name) as seeder:
        wait_for(lambda: seeder.address in opentracker.peers(spec.info_hash), 15,
                 interval=0.2, what="our seeder to announce itself")
        leecher = start_leecher(tmp_path / "lt", torrent=spec.torrent_path, timeout=40)
        assert leecher.wait_exit(50) == 0, leecher.log_text()
    assert (tmp_path / "lt" / "download" / spec.name).read_bytes() == spec.payload()
