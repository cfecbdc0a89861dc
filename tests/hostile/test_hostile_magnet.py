"""Magnet links against hostile metadata peers (BEP 9): bad hash, absurd metadata_size,
rejections, and metadata that names paths outside the output directory."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from support.bencoding import bencode
from support.cli import run_cli

from hostile.evil_peer import EvilPeer
from hostile.helpers import assert_clean_failure, assert_success, tree_listing

META_MODES = ["meta_bad_hash", "meta_huge_size", "meta_reject"]


def expected_info_lines(spec) -> list[str]:
    return [f"Length: {spec.total_length}", f"Info Hash: {spec.info_hash}",
            f"Piece Length: {spec.piece_length}", *spec.piece_hashes]


@pytest.mark.parametrize("mode", META_MODES + ["silent_accept", "wrong_info_hash"])
def test_magnet_info_with_a_good_peer_besides(served, mode):
    spec = served.spec
    with EvilPeer.for_spec(spec, mode) as evil:
        result = run_cli("magnet_info", "--peer", evil.address, "--peer", served.fast.address,
                         spec.magnet(), timeout=20)
        why = result.describe() + f"\n  hostile: connections={evil.connections} " \
            f"metadata requests={evil.metadata_requests} endings={evil.endings}"
    assert_success(result, max_seconds=10)
    for line in expected_info_lines(spec):
        assert line in result.stdout.splitlines(), f"missing {line!r}\n{why}"
    assert evil.connections >= 1, "the hostile peer was never tried\n" + why


@pytest.mark.parametrize("mode", META_MODES)
def test_magnet_info_with_only_the_bad_peer_fails_cleanly(served, mode):
    spec = served.spec
    with EvilPeer.for_spec(spec, mode) as evil:
        result = run_cli("magnet_info", "--peer", evil.address, spec.magnet(), timeout=25)
        why = result.describe() + f"\n  hostile: connections={evil.connections} " \
            f"metadata requests={evil.metadata_requests} endings={evil.endings}"
    assert_clean_failure(result, max_seconds=12)
    assert evil.connections >= 1, "the hostile peer was never tried\n" + why
    if mode != "meta_huge_size":
        assert evil.metadata_requests >= 1, "metadata was never requested\n" + why


def test_magnet_download_with_only_the_bad_peer_writes_nothing(served, tmp_path):
    spec = served.spec
    out = tmp_path / "out"
    out.mkdir()
    with EvilPeer.for_spec(spec, "meta_bad_hash") as evil:
        result = run_cli("magnet_download", "-o", out / "file.bin", "--peer", evil.address,
                         spec.magnet(), timeout=25)
    assert_clean_failure(result, max_seconds=12)
    assert tree_listing(out) == []


UNSAFE_PATHS = {
    "dot-dot": ["..", "escape.txt"],
    "dot-dot deeper": ["sub", "..", "..", "escape.txt"],
    "absolute": ["/tmp/escape.txt"],
    "NUL": ["esc\x00ape.txt"],
    "drive letter": ["C:", "escape.txt"],
    "drive letter joined": ["C:\\escape.txt"],
    "backslash dot-dot": ["..\\escape.txt"],
}


@pytest.mark.parametrize("case", sorted(UNSAFE_PATHS))
def test_magnet_metadata_with_unsafe_path_is_refused(tmp_path, case):
    """The peer serves (correctly hashed) metadata whose file path leaves the output
    directory: refused before anything is written, inside or outside."""
    data = b"escaped!!\n"
    info = {"name": "pack", "piece length": 16384,
            "pieces": hashlib.sha1(data + b"ok").digest(),
            "files": [{"length": len(data), "path": UNSAFE_PATHS[case]},
                      {"length": 2, "path": ["ok.txt"]}]}
    metadata = bencode(info)
    info_hash = hashlib.sha1(metadata).hexdigest()
    base = tmp_path / "jail" / "deeper"
    out = base / "out"
    out.mkdir(parents=True)
    outside = Path("/tmp/escape.txt")
    existed = outside.exists()
    with EvilPeer(info_hash, "meta_serve", metadata=metadata, num_pieces=1,
                  payload=data + b"ok", piece_length=16384) as evil:
        result = run_cli("magnet_download", "-o", out, "--peer", evil.address,
                         f"magnet:?xt=urn:btih:{info_hash}&dn=pack", timeout=20)
        served_metadata = evil.metadata_requests
    assert served_metadata >= 1, "the client never asked for the metadata\n" + result.describe()
    assert_clean_failure(result, max_seconds=10)
    assert tree_listing(out) == [], "something was written for a refused torrent"
    assert tree_listing(tmp_path / "jail") == ["deeper", "deeper/out"]
    assert not (tmp_path / "escape.txt").exists()
    assert outside.exists() == existed


BAD_INFO_DICTS = {
    "not a dict": b"i5e",
    "empty dict": b"de",
    "no pieces": bencode({"name": "x", "piece length": 16384, "length": 10}),
    "piece length 0": bencode({"name": "x", "piece length": 0, "length": 10,
                               "pieces": bytes(20)}),
    "pieces not a multiple of 20": bencode({"name": "x", "piece length": 16384,
                                            "length": 10, "pieces": bytes(21)}),
    "negative length": bencode({"name": "x", "piece length": 16384, "length": -10,
                                "pieces": b""}),
    "trailing bytes": bencode({"name": "x", "piece length": 16384, "length": 10,
                               "pieces": bytes(20)}) + b"junk",
}


@pytest.mark.parametrize("case", sorted(BAD_INFO_DICTS))
def test_magnet_metadata_that_hashes_right_but_is_not_a_valid_info_dict(case):
    """The peer is honest about the hash: the metadata is exactly what the link names, but
    it is not a usable info dict. One clean Error line."""
    metadata = BAD_INFO_DICTS[case]
    info_hash = hashlib.sha1(metadata).hexdigest()
    with EvilPeer(info_hash, "meta_serve", metadata=metadata) as evil:
        result = run_cli("magnet_info", "--peer", evil.address,
                         f"magnet:?xt=urn:btih:{info_hash}", timeout=20)
        asked = evil.metadata_requests
    assert asked >= 1, "the client never asked for the metadata\n" + result.describe()
    assert_clean_failure(result, max_seconds=10)
