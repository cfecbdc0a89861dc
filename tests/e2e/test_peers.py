"""peers: the grader's fi9 tracker, real opentracker (HTTP and UDP), and failures."""

from support.bencoding import bdecode, bencode
from support.checks import assert_error, assert_ok
from support.cli import run_cli
from support.fakes import GraderTracker
from support.net import free_port
from support.torrents import describe_torrent, make_single_file, random_hashes, write_raw_torrent

KIB = 1024


def grader_torrent(tmp_path, tracker_url, name="faketorrent.iso"):
    """fi9's test.torrent: 2097152 bytes, 262144-byte pieces, 8 hashes."""
    return write_raw_torrent(tmp_path / "test.torrent", announce=tracker_url, name=name,
                             piece_length=262144, piece_hashes=random_hashes(8, seed=9),
                             length=2097152)


def test_grader_tracker_peers_are_printed(tmp_path):
    # loopback addresses only: the canned real replies hold public ones, never to be dialled
    canned = ["127.0.0.2:6881", "127.3.4.5:51413", "127.200.1.9:65535", "127.0.0.1:1"]
    with GraderTracker() as tracker:
        spec = grader_torrent(tmp_path, tracker.announce_url)
        tracker.add(spec.info_hash, spec.total_length, canned)
        result = run_cli("peers", spec.torrent_path)
        assert_ok(result, within=10)
        assert tracker.requests, "no announce reached the tracker"
        assert tracker.violations == []
    for peer in canned:
        assert peer in result.stdout.splitlines(), result.describe()


def test_tracker_failure_reason_is_an_error(tmp_path):
    with GraderTracker() as tracker:  # knows no torrent: replies with a failure reason
        spec = grader_torrent(tmp_path, tracker.announce_url)
        result = run_cli("peers", spec.torrent_path)
    line = assert_error(result)
    assert "unknown info_hash" in line, "the tracker's failure reason should be shown"


def test_tracker_not_listening_is_an_error(tmp_path):
    spec = grader_torrent(tmp_path, f"http://127.0.0.1:{free_port()}/announce")
    result = run_cli("peers", spec.torrent_path, timeout=20)
    assert_error(result)
    assert result.elapsed < 10, "a refused connection should fail fast"


def test_opentracker_lists_the_libtorrent_seeders(single_swarm):
    result = run_cli("peers", single_swarm.spec.torrent_path)
    assert_ok(result, within=10)
    printed = result.stdout.splitlines()
    for address in single_swarm.addresses:
        assert address in printed, result.describe()


def test_opentracker_over_udp(single_swarm, tmp_path):
    """The same torrent (same info dict, so same info hash) with a udp:// announce URL."""
    meta = bdecode(single_swarm.spec.torrent_path.read_bytes())
    meta[b"announce"] = single_swarm.tracker.udp_url.encode()
    path = tmp_path / "udp.torrent"
    path.write_bytes(bencode(meta))
    assert describe_torrent(path, tmp_path).info_hash == single_swarm.spec.info_hash
    result = run_cli("peers", path)
    assert_ok(result, within=10)
    for address in single_swarm.addresses:
        assert address in result.stdout.splitlines(), result.describe()


def test_opentracker_refusal_is_an_error(opentracker, tmp_path):
    spec = make_single_file(tmp_path, "unlisted.bin", 50_000, piece_length=16 * KIB, seed=5,
                            announce=opentracker.announce_url)  # never whitelisted
    line = assert_error(run_cli("peers", spec.torrent_path))
    assert "not authorized" in line, "the tracker's failure reason should be shown"


def hash_with_space_byte(tmp_path, announce):
    """A torrent whose info hash contains byte 0x20: '+' for it breaks opentracker, which
    does not read '+' as a space, so a client must send %20."""
    for seed in range(2000):
        spec = make_single_file(tmp_path / str(seed), "space.bin", 40_000,
                                piece_length=16 * KIB, seed=seed, announce=announce)
        if 0x20 in bytes.fromhex(spec.info_hash):
            return spec
    raise AssertionError("no seed in 2000 gave an info hash with a 0x20 byte")


def test_info_hash_with_a_space_byte_is_percent_encoded(swarms, tmp_path):
    spec = hash_with_space_byte(tmp_path, swarms.tracker.announce_url)
    swarm = swarms.start(spec, tmp_path / "seeders", 1)
    result = run_cli("peers", spec.torrent_path)
    assert_ok(result, within=10)
    assert swarm.addresses[0] in result.stdout.splitlines(), result.describe()


def test_stage_budget_of_repeated_runs(single_swarm):
    """The grader runs every stage up to the current one in a row: peers must be quick."""
    runs = [run_cli("peers", single_swarm.spec.torrent_path) for _ in range(3)]
    for result in runs:
        assert_ok(result)
    assert sum(r.elapsed for r in runs) < 10, [r.elapsed for r in runs]
