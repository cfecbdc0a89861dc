"""Hostile trackers: each failure costs only that tracker. A torrent with announce-list
[[hostile], [good]] still gets the good tracker's peers; when every tracker is dead the
CLI fails with one clean Error line within the --tracker-timeout budget."""
from __future__ import annotations

import contextlib
import hashlib
from urllib.parse import quote

import pytest

from support.bencoding import bdecode, bencode
from support.cli import run_cli
from support.fakes import GraderTracker
from support.net import HOST, free_port

from hostile.evil_tracker import EvilHttpTracker, EvilUdpTracker
from hostile.helpers import assert_clean_failure, assert_same_bytes, assert_success, fake_info, tree_listing

GOOD_PEERS = ["10.20.30.40:6881", "192.0.2.7:51413", "198.51.100.9:1"]
TIMEOUT = 1.5  # --tracker-timeout for the cases that must wait for a silent tracker
STARTUP = 3.0  # slack for starting the CLI and asking the good tracker


def tiered_torrent(path, tiers, info: dict | None = None):
    info = info or fake_info(length=300_000)
    path.write_bytes(bencode({"announce": tiers[0][0], "announce-list": tiers, "info": info}))
    return path, hashlib.sha1(bencode(info)).hexdigest(), info


@contextlib.contextmanager
def hostile(kind: str):
    tracker = (EvilUdpTracker(kind[len("udp_"):]) if kind.startswith("udp_")
               else EvilHttpTracker(kind))
    with tracker:
        yield tracker


FAST_FAILURES = ["not_bencode", "http500", "peers_not_6", "huge", "redirect_loop", "failure",
                 "udp_short_announce", "udp_error", "udp_odd_peers"]
SLOW_FAILURES = ["hang", "trickle", "udp_wrong_tid"]
@pytest.mark.parametrize("kind", FAST_FAILURES + SLOW_FAILURES)
def test_peers_falls_through_to_the_good_tier(tmp_path, kind):
    with hostile(kind) as evil, GraderTracker() as good:
        path, info_hash, info = tiered_torrent(tmp_path / "t.torrent",
                                               [[evil.announce_url], [good.announce_url]])
        good.add(info_hash, info["length"], GOOD_PEERS)
        limit = STARTUP + (TIMEOUT if kind in SLOW_FAILURES else 0)
        result = run_cli("peers", "--tracker-timeout", TIMEOUT, path, timeout=limit + 1)
        why = result.describe() + f"\n  hostile tracker: {vars(evil)}"
        assert_success(result)
        assert sorted(result.stdout.split()) == sorted(GOOD_PEERS), why
        assert good.violations == [], why
        assert result.elapsed < limit, f"took {result.elapsed:.1f}s > {limit}s\n" + why
        if kind.startswith("udp_"):
            assert evil.answered, "the UDP tracker was never asked\n" + why
        else:
            assert evil.requests, "the hostile tracker was never asked\n" + why
        if kind == "huge":
            assert evil.bytes_sent < 8 << 20, "the huge reply was not cut short\n" + why
        if kind == "redirect_loop":
            assert len(evil.requests) <= 30, "redirects were followed without a limit\n" + why


@pytest.mark.parametrize("command", ["peers", "download", "magnet_info"])
def test_every_tracker_dead_fails_within_budget(tmp_path, client_port, command):
    """Three tiers: a UDP tracker with a wrong transaction id, an HTTP tracker that never
    answers, a closed port. Each may take --tracker-timeout, no more."""
    closed = f"http://{HOST}:{free_port()}/announce"
    with hostile("udp_wrong_tid") as udp, hostile("hang") as hang:
        tiers = [[udp.announce_url], [hang.announce_url], [closed]]
        path, info_hash, _ = tiered_torrent(tmp_path / "t.torrent", tiers)
        out = tmp_path / "out"
        out.mkdir()
        if command == "peers":
            args = ["peers", path]
        elif command == "download":
            # -q: nothing on stderr but the error (by default each tier's failure is logged)
            args = ["download", "-q", "-o", out / "file.bin", "--port", client_port, path]
        else:
            args = ["magnet_info", f"magnet:?xt=urn:btih:{info_hash}"
                    + "".join(f"&tr={quote(t[0], safe='')}" for t in tiers)]
        budget = 3 * 1.5 + STARTUP
        result = run_cli(*args[:1], "--tracker-timeout", 1.5, *args[1:], timeout=budget + 1)
    assert_clean_failure(result, max_seconds=budget)
    if command == "download":
        assert tree_listing(out) in ([], ["file.bin"])
        if (out / "file.bin").exists():
            assert (out / "file.bin").read_bytes().count(0) == 300_000


def test_every_tracker_of_one_tier_dead_fails_within_budget(tmp_path):
    closed = f"http://{HOST}:{free_port()}/announce"
    with hostile("trickle") as trickle, hostile("failure") as failure:
        path, _, _ = tiered_torrent(tmp_path / "t.torrent",
                                    [[trickle.announce_url, failure.announce_url, closed]])
        result = run_cli("peers", "--tracker-timeout", 1.5, path, timeout=3 * 1.5 + STARTUP + 1)
    assert_clean_failure(result, max_seconds=3 * 1.5 + STARTUP)


@pytest.mark.parametrize("kind", ["huge", "not_bencode"])
def test_download_finds_the_seeder_through_the_good_tier(served, tmp_path, client_port, kind):
    """A real download: the hostile tier fails, the good tier names the libtorrent seeder."""
    spec = served.spec
    info = bdecode(spec.metadata)
    with hostile(kind) as evil, GraderTracker() as good:
        path, info_hash, _ = tiered_torrent(tmp_path / "t.torrent",
                                            [[evil.announce_url], [good.announce_url]], info)
        assert info_hash == spec.info_hash
        good.add(info_hash, spec.total_length, [served.fast.address])
        out = tmp_path / "out.bin"
        result = run_cli("download", "-o", out, "--port", client_port, path, timeout=30)
        why = result.describe() + f"\n  hostile tracker: {vars(evil)}"
    assert_success(result, max_seconds=15)
    assert_same_bytes(out, served.payload, why)
    assert evil.requests, "the hostile tier was never asked\n" + why
