"""The DHT end to end, against libtorrent DHT nodes on 127.A.i.1 (tests/support/lt_dht.py).

Every CLI run here passes --dht-bootstrap (the suite's environment turns the public
routers off) and gets its own cache directory for the DHT state file.
"""
from __future__ import annotations

import os
import re
import time

import libtorrent as lt
import pytest

from app.io.dht_state import load_state
from support.checks import assert_ok
from support.cli import run_cli
from support.lt_dht import LtDht, LtNode
from support.net import free_port
from support.seeder import OurSeeder
from support.torrents import make_lt_spec, make_single_file

KIB = 1024


@pytest.fixture(scope="module")
def dht():
    net = LtDht(6)
    yield net
    net.close()


@pytest.fixture(scope="module")
def seeded(dht, tmp_path_factory):
    """A trackerless torrent seeded by one libtorrent node, already announced to the DHT."""
    root = tmp_path_factory.mktemp("dht-torrent")
    spec = make_single_file(root, "dht.bin", 700 * KIB + 123, piece_length=64 * KIB, seed=51)
    seeder = dht.add_node()
    seeder.seed(spec, root / "seeder-data")
    seeder.handle.force_dht_announce()
    assert dht.announced(spec.info_hash, seeder.address, via=1), "the libtorrent seeder never reached the DHT"
    return spec, seeder


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_dht_ping_prints_the_node_id(dht):
    result = run_cli("dht_ping", dht.nodes[2].address, timeout=10)
    assert_ok(result)
    assert re.fullmatch(r"[0-9a-f]{40}\n", result.stdout), result.describe()
    assert run_cli("dht_ping", dht.nodes[2].address).stdout == result.stdout   # the same node, the same id


def test_dht_ping_of_a_silent_address_fails_quickly():
    result = run_cli("dht_ping", f"127.0.0.1:{free_port()}", "--timeout", "1", timeout=10)
    assert result.returncode == 1 and "Error:" in result.stderr and result.elapsed < 5, result.describe()


def test_dht_get_peers_finds_the_libtorrent_seeder(dht, seeded, tmp_path):
    spec, seeder = seeded
    result = run_cli("dht_get_peers", spec.info_hash, "--dht-bootstrap", dht.bootstrap, timeout=20)
    assert_ok(result)
    assert seeder.address in result.stdout.split(), result.describe()
    # the state file was saved in the cache directory and a magnet link works the same
    assert (tmp_path / "cache" / "bittorrent-toolkit" / "dht-state.benc").stat().st_size > 26
    again = run_cli("dht_get_peers", spec.magnet(tracker=""), "--dht-bootstrap", dht.bootstrap, "--trace", timeout=20)
    assert seeder.address in again.stdout.split(), again.describe()
    assert "krpc query get_peers" in again.stderr and "krpc response" in again.stderr   # --trace shows the KRPC


def test_trackerless_magnet_downloads_through_the_dht(dht, seeded, tmp_path):
    spec, _ = seeded
    link = spec.magnet(tracker="")
    assert "tr=" not in link
    out = tmp_path / "out.bin"
    started = time.monotonic()
    result = run_cli("magnet_download", "-o", out, "--port", free_port(), "--dht-bootstrap", dht.bootstrap,
                     link, timeout=30)
    assert_ok(result)
    assert out.read_bytes() == spec.payload()
    assert time.monotonic() - started < 10, result.describe()


def test_magnet_info_without_tracker_uses_the_dht(dht, seeded):
    spec, _ = seeded
    result = run_cli("magnet_info", "--dht-bootstrap", dht.bootstrap, spec.magnet(tracker=""), timeout=20)
    assert_ok(result)
    assert f"Info Hash: {spec.info_hash}" in result.stdout


def test_no_dht_means_no_peers_for_a_trackerless_magnet(dht, seeded, tmp_path):
    spec, _ = seeded
    result = run_cli("magnet_download", "-o", tmp_path / "x", "--no-dht", "--dht-bootstrap", dht.bootstrap,
                     spec.magnet(tracker=""), timeout=20)
    assert result.returncode == 1 and "no tracker and no peers" in result.stderr, result.describe()


def test_our_seed_announces_to_the_dht(dht, tmp_path):
    root = tmp_path / "t"
    spec = make_single_file(root, "ours.bin", 200 * KIB, piece_length=64 * KIB, seed=52)
    with OurSeeder(spec.torrent_path, spec.data_root / spec.name, "--dht-bootstrap", dht.bootstrap) as ours:
        assert dht.announced(spec.info_hash, ours.address, timeout=15, via=3), \
            "no libtorrent lookup returned our seeder\n" + ours.stop().describe()


def test_our_hybrid_seed_is_in_the_dht_under_both_hashes(dht, tmp_path):
    """BEP 52: a v2-only client looks a hybrid up by its truncated v2 hash; our seed
    announces that name as well as the v1 one."""
    spec = make_lt_spec(tmp_path / "t", "hyb", {"a.bin": 150 * KIB, "b.txt": 999}, piece_length=32 * KIB,
                        version="hybrid", seed=53)
    with OurSeeder(spec.torrent_path, spec.data_root, "--dht-bootstrap", dht.bootstrap) as ours:
        for name in (spec.info_hash, spec.info_hash_v2[:40]):
            assert dht.announced(name, ours.address, timeout=15, via=3), \
                f"no libtorrent lookup of {name} returned our seeder\n" + ours.stop().describe()


def test_private_torrent_never_uses_the_dht(dht, tmp_path):
    """private=1: our seeder must not announce to the DHT."""
    import libtorrent as lt
    root = tmp_path / "p"
    (root / "data").mkdir(parents=True)
    (root / "data" / "private.bin").write_bytes(os.urandom(100 * KIB))
    creator = lt.create_torrent(lt.list_files(str(root / "data" / "private.bin")), 64 * KIB,
                                lt.create_torrent.v1_only)
    creator.set_priv(True)
    lt.set_piece_hashes(creator, str(root / "data"))
    torrent = root / "private.torrent"
    torrent.write_bytes(lt.bencode(creator.generate()))
    info_hash = str(lt.torrent_info(str(torrent)).info_hashes().v1)
    with OurSeeder(torrent, root / "data" / "private.bin", "--dht-bootstrap", dht.bootstrap, "-vv") as ours:
        assert not dht.announced(info_hash, ours.address, timeout=3, via=3)
        result = ours.stop()
    assert "DHT node" not in result.stderr, result.describe()


def routing_table_size(node: LtNode) -> int:
    """The nodes in a libtorrent session's DHT routing table (from its dht_stats_alert)."""
    node.session.post_dht_stats()
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        node.session.wait_for_alert(100)
        for alert in node.session.pop_alerts():
            if isinstance(alert, lt.dht_stats_alert):
                return sum(bucket["num_nodes"] for bucket in alert.routing_table)
    raise TimeoutError("no dht_stats_alert")


def test_peers_swap_dht_nodes_with_the_port_message(dht, tmp_path):
    """BEP 5: a libtorrent seeder outside the DHT we bootstrap from names its node in a PORT
    message (we set the DHT bit); we ping it and keep it (it is in the state file we save),
    and it learns ours the same way."""
    spec = make_single_file(tmp_path / "torrent", "port.bin", 300 * KIB + 7, piece_length=64 * KIB, seed=52)
    loner = LtNode(f"127.{dht.net}.200.1")   # knows no other node, and none knows it
    try:
        deadline = time.monotonic() + 10
        while not loner.session.is_dht_running() and time.monotonic() < deadline:
            time.sleep(0.05)
        loner.seed(spec, tmp_path / "loner-data")
        out = tmp_path / "out.bin"
        result = run_cli("download", "-o", out, "--port", free_port(), "--dht-bootstrap", dht.bootstrap,
                         "--peer", loner.address, spec.torrent_path, timeout=30)
        assert_ok(result)
        assert out.read_bytes() == spec.payload()
        saved = load_state(tmp_path / "cache" / "bittorrent-toolkit" / "dht-state.benc").nodes
        assert (loner.ip, loner.port) in {(node.host, node.port) for node in saved}, saved
        deadline = time.monotonic() + 5
        while routing_table_size(loner) == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert routing_table_size(loner) >= 1   # ours, the only node that could reach it
    finally:
        del loner.session
