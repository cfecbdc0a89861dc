"""handshake: the grader's ca4 peer (replies, then closes at once) and a real libtorrent peer."""
from support.checks import assert_error, assert_ok, peer_ids
from support.cli import run_cli
from support.fakes import GraderTracker, HandshakePeer
from support.net import free_port
from support.torrents import random_hashes, write_raw_torrent


def grader_torrent(tmp_path, announce="http://127.0.0.1:1/announce"):
    """ca4's test.torrent: fakefilename.iso with 8 pieces."""
    return write_raw_torrent(tmp_path / "test.torrent", announce=announce,
                             name="fakefilename.iso", piece_length=262144,
                             piece_hashes=random_hashes(8, seed=4), length=8 * 262144 - 1000)


def test_grader_peer_that_closes_at_once(tmp_path):
    with GraderTracker() as tracker:  # present but unused, as in ca4
        spec = grader_torrent(tmp_path, tracker.announce_url)
        with HandshakePeer(spec.info_hash) as peer:
            result = run_cli("handshake", spec.torrent_path, peer.address)
            assert_ok(result, within=10)
            assert peer.violations == []
            assert peer.completed == 1
            assert peer_ids(result.stdout) == [peer.sent_peer_ids[0]], result.describe()
            assert f"Peer ID: {peer.sent_peer_ids[0]}\n" in result.stdout


def test_each_run_prints_that_runs_peer_id(tmp_path):
    spec = grader_torrent(tmp_path)
    with HandshakePeer(spec.info_hash) as peer:
        outs = [run_cli("handshake", spec.torrent_path, peer.address) for _ in range(2)]
        for result in outs:
            assert_ok(result)
        assert [peer_ids(r.stdout) for r in outs] == [[p] for p in peer.sent_peer_ids]
        assert peer.violations == []


def test_libtorrent_seeder(single_swarm):
    seeder = single_swarm.seeders[0]
    result = run_cli("handshake", single_swarm.spec.torrent_path, seeder.address)
    assert_ok(result, within=10)
    ids = peer_ids(result.stdout)
    assert len(ids) == 1, result.describe()
    assert bytes.fromhex(ids[0]).startswith(b"-LT"), "libtorrent's peer ids start with -LT"


def test_refused_connection_is_an_error(tmp_path):
    spec = grader_torrent(tmp_path)
    result = run_cli("handshake", spec.torrent_path, f"127.0.0.1:{free_port()}")
    assert_error(result)
    assert result.elapsed < 10


def test_peer_without_the_torrent_is_an_error(single_swarm, tmp_path):
    """libtorrent drops a handshake for an info hash it does not serve."""
    spec = grader_torrent(tmp_path)
    result = run_cli("handshake", spec.torrent_path, single_swarm.seeders[0].address,
                     timeout=20)
    assert_error(result)
    assert result.elapsed < 10


def test_malformed_address_is_an_error(tmp_path):
    spec = grader_torrent(tmp_path)
    for address in ("nonsense", "127.0.0.1", "127.0.0.1:notaport", "127.0.0.1:70000"):
        assert_error(run_cli("handshake", spec.torrent_path, address))
