"""Trackers in a real swarm: opentracker over HTTP and UDP, a dead first tier (BEP 12),
magnet links with a dead first tr=, and magnet links with no tracker at all (x.pe=, --peer)."""
from __future__ import annotations

import re

import pytest

from support.checks import assert_ok, fields
from support.cli import run_cli
from support.peers import start_seeder
from support.torrents import make_single_file

from swarm.kit import KIB, MIB, announce_lists, assert_tree, magnet, make_tiered, retarget

PIECE = 32 * KIB
PEER_LINE = re.compile(r"^127\.0\.0\.1:\d{1,5}$")


def peer_lines(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    assert lines and all(PEER_LINE.match(line) for line in lines), repr(stdout)
    assert len(lines) == len(set(lines)), f"duplicate peers: {lines}"
    return lines


def announce_by_hand(tracker, spec, seeders) -> None:
    """Register libtorrent seeders started with announce=False at opentracker."""
    for seeder in seeders:
        reply = tracker.announce(spec.info_hash, port=seeder.port, left=0, event="started")
        assert b"failure reason" not in reply, reply


@pytest.mark.parametrize("scheme", ["http", "udp"])
def test_peers_from_opentracker(swarms, tmp_path, scheme):
    """`peers` lists the 3 libtorrent seeders that announced themselves to opentracker,
    over HTTP and over UDP (BEP 15) on the same port."""
    swarm = swarms.single("listed.bin", 300_000, piece_length=PIECE, seed=51, seeders=3)
    spec = swarm.spec
    tracker = swarm.tracker
    if scheme == "udp":
        spec = retarget(spec, tracker.udp_url, tmp_path / "udp.torrent")
    assert spec.announce.startswith(scheme + "://")
    result = run_cli("peers", spec.torrent_path, timeout=20)
    assert_ok(result, within=10)
    listed = peer_lines(result.stdout)
    assert set(swarm.addresses) <= set(listed), result.describe()
    # nothing invented: every other line is a peer the tracker knows of
    known = set(tracker.peers(spec.info_hash))
    assert set(listed) <= known | set(swarm.addresses), (known, result.describe())


# --- a dead first tier ----------------------------------------------------------------------

def dead_tier(kind: str, dead_port: int, refusing) -> list[str]:
    return {"http": [f"http://127.0.0.1:{dead_port}/announce", refusing.announce_url],
            "udp-refusing": [refusing.udp_url, f"http://127.0.0.1:{dead_port}/announce"],
            "udp-closed": [f"udp://127.0.0.1:{dead_port}/announce"]}[kind]


def tiered_swarm(opentracker, refusing, swarms, root, dead_port, kind, seed):
    """A torrent whose tier 1 is dead (`kind`) and tier 2 is opentracker, with 2 libtorrent
    seeders registered at opentracker."""
    tiers = [dead_tier(kind, dead_port, refusing), [opentracker.announce_url]]
    spec = make_tiered(root, "tiered.bin", 1 * MIB + 5, piece_length=PIECE, seed=seed,
                       tiers=tiers)
    assert announce_lists(spec.torrent_path) == tiers
    # the refusing tracker really refuses this torrent
    assert b"failure reason" in refusing.announce(spec.info_hash, port=1, left=1)
    swarm = swarms.start(spec, root, 2, announce=False)
    announce_by_hand(opentracker, spec, swarm.seeders)
    return swarm


@pytest.mark.parametrize("kind", ["http", "udp-refusing"])
def test_dead_first_tier_then_opentracker(opentracker, refusing_tracker, swarms, tmp_path,
                                          dead_port, client_port, kind):
    """Tier 1: a tracker on a closed TCP port and one that refuses the torrent (an
    opentracker that has not whitelisted it: `failure reason` over HTTP, a bare 8-byte reply
    over UDP). Tier 2: the working opentracker. `peers` and `download` get there in < 8 s."""
    swarm = tiered_swarm(opentracker, refusing_tracker, swarms, tmp_path / "torrent",
                         dead_port, kind, seed=52 + len(kind))
    spec = swarm.spec
    found = run_cli("peers", spec.torrent_path, timeout=20)
    assert_ok(found, within=8)
    assert set(swarm.addresses) <= set(peer_lines(found.stdout)), found.describe()

    out = tmp_path / "tiered.bin"
    got = run_cli("download", "-o", out, "--port", client_port, spec.torrent_path, timeout=20)
    assert_ok(got, within=8)
    assert out.read_bytes() == spec.payload(), got.describe()


def test_dead_udp_first_tier_is_left_quickly(opentracker, refusing_tracker, swarms, tmp_path,
                                             dead_port, client_port):
    """Tier 1: a UDP tracker on a closed port (the kernel answers port unreachable at once).
    Tier 2: opentracker. `peers` and `download` get there within a few seconds, not after
    the whole --tracker-timeout (fixed in 2839e40; it used to take 10 s)."""
    swarm = tiered_swarm(opentracker, refusing_tracker, swarms, tmp_path / "torrent",
                         dead_port, "udp-closed", seed=58)
    found = run_cli("peers", "-v", swarm.spec.torrent_path, timeout=20)
    assert_ok(found)
    assert set(swarm.addresses) <= set(peer_lines(found.stdout)), found.describe()
    assert found.elapsed < 8, found.describe()

    out = tmp_path / "tiered.bin"
    got = run_cli("download", "-o", out, "--port", client_port, swarm.spec.torrent_path,
                  timeout=20)
    assert_ok(got, within=8)
    assert out.read_bytes() == swarm.spec.payload(), got.describe()


def test_peers_does_not_list_itself(swarms):
    """opentracker's reply includes the announcing client (127.0.0.1 and the port it
    announced, 6881 for `peers`): that is not a peer of the torrent and must be left out."""
    swarm = swarms.single("self.bin", 100_000, piece_length=PIECE, seed=60, seeders=1)
    result = run_cli("peers", swarm.spec.torrent_path, timeout=20)
    assert_ok(result, within=10)
    listed = peer_lines(result.stdout)
    assert swarm.addresses[0] in listed, result.describe()
    assert "127.0.0.1:6881" not in listed, result.describe()


# --- magnet links ---------------------------------------------------------------------------

def check_magnet_info(result, spec) -> None:
    assert_ok(result)
    got = fields(result.stdout)
    assert got["Info Hash"] == spec.info_hash, result.describe()
    assert got["Length"] == str(spec.total_length), result.describe()
    assert got["Piece Length"] == str(spec.piece_length), result.describe()
    hashes = result.stdout.split("Piece Hashes:\n", 1)[1].split()[:spec.num_pieces]
    assert hashes == spec.piece_hashes, result.describe()


@pytest.mark.parametrize("dead", ["closed-http", "refusing-http", "refusing-udp", "closed-udp"])
def test_magnet_with_a_dead_first_tracker(opentracker, refusing_tracker, swarms, tmp_path,
                                          dead_port, client_port, dead):
    """A magnet link with two tr=: the first is dead (closed port, or refusing), the
    second is opentracker with 2 libtorrent seeders: magnet_info and magnet_download work."""
    first = {"closed-http": f"http://127.0.0.1:{dead_port}/announce",
             "refusing-http": refusing_tracker.announce_url,
             "refusing-udp": refusing_tracker.udp_url,
             "closed-udp": f"udp://127.0.0.1:{dead_port}/announce"}[dead]
    swarm = swarms.multi("magdir", {"a.bin": 700_001, "b/c.bin": 333_333, "b/d": 0},
                         piece_length=PIECE, seed=55, seeders=2)
    spec = swarm.spec
    link = magnet(spec.info_hash, name=spec.name, trackers=[first, opentracker.announce_url])

    info = run_cli("magnet_info", link, timeout=20)
    check_magnet_info(info, spec)
    assert info.elapsed < 8, info.describe()

    out = tmp_path / "out"
    got = run_cli("magnet_download", "-o", out, "--port", client_port, link,
                  timeout=30)
    assert_ok(got, within=8)
    assert_tree(out, spec, got.describe())


@pytest.mark.parametrize("how", ["x.pe", "--peer"])
def test_magnet_without_tracker(tmp_path, client_port, how):
    """No tr= at all: the only peer is a libtorrent seeder named by x.pe= in the link, or
    by --peer. magnet_info and magnet_download work from it alone."""
    spec = make_single_file(tmp_path / "torrent", "lonely.bin", 1 * MIB + 99, piece_length=PIECE,
                            seed=57, announce=None)
    seeder = start_seeder(spec, tmp_path / "seeder", announce=False)
    try:
        if how == "x.pe":
            link, extra = magnet(spec.info_hash, name=spec.name, peers=[seeder.address]), []
        else:
            link, extra = magnet(spec.info_hash, name=spec.name), ["--peer", seeder.address]
        assert "tr=" not in link
        info = run_cli("magnet_info", *extra, link, timeout=20)
        check_magnet_info(info, spec)
        out = tmp_path / "lonely.bin"
        got = run_cli("magnet_download", "-o", out, "--port", client_port, *extra, link,
                      timeout=30)
        assert_ok(got, within=20)
        assert out.read_bytes() == spec.payload(), got.describe()
    finally:
        seeder.stop()
