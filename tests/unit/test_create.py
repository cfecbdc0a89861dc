"""Making torrents: the pure builder (app.core.create) and the disk walker/hasher (app.io.create).

Expected values are computed here independently: hashlib over the concatenated bytes,
and the tests' own bencode decoder (support.bencoding), never the app's encoder.
"""
import hashlib
import os
import random
from pathlib import Path

import pytest

from app.core.create import (
    MAX_AUTO_PIECE_LENGTH,
    MIN_PIECE_LENGTH,
    CreateOptions,
    FileSpec,
    auto_piece_length,
    build_info,
    check_piece_length,
    create_torrent,
    piece_count,
    sorted_files,
    tracker_tiers,
)
from app.core.errors import MetainfoError
from app.core.magnet import format_magnet, parse_magnet
from app.core.metainfo import parse_torrent
from app.io import create as io_create
from app.io.create import hash_pieces, make_torrent, scan_content, write_torrent
from support.bencoding import bdecode

KIB, MIB, GIB = 1024, 1024 ** 2, 1024 ** 3


def sha1_pieces(data: bytes, piece_length: int) -> list[bytes]:
    return [hashlib.sha1(data[i:i + piece_length]).digest() for i in range(0, len(data), piece_length)]


def write(path: Path, data: bytes) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


# --- piece length ------------------------------------------------------------------

@pytest.mark.parametrize("total", [1, 1000, 16 * KIB, 31 * MIB])
def test_small_content_gets_the_smallest_piece_length(total):
    assert auto_piece_length(total) == MIN_PIECE_LENGTH


@pytest.mark.parametrize("total", [33 * MIB, 100 * MIB, 700 * MIB, 4 * GIB + 12345, 20 * GIB, 31 * GIB])
def test_mid_sizes_give_a_power_of_two_and_1000_to_2000_pieces(total):
    length = auto_piece_length(total)
    assert length & (length - 1) == 0
    assert MIN_PIECE_LENGTH <= length <= MAX_AUTO_PIECE_LENGTH
    assert 1000 <= piece_count(total, length) <= 2000


def test_huge_content_is_capped_at_16_mib_pieces():
    assert auto_piece_length(1024 * GIB) == 16 * MIB


def test_auto_piece_length_never_shrinks_as_content_grows():
    sizes = sorted(random.Random(4).randrange(1, 64 * GIB) for _ in range(300))
    lengths = [auto_piece_length(s) for s in sizes]
    assert lengths == sorted(lengths)


@pytest.mark.parametrize("bad", [0, -16384, 8 * KIB, 16 * KIB + 1, 48 * KIB, 512 * MIB])
def test_explicit_piece_length_must_be_a_power_of_two_in_range(bad):
    with pytest.raises(MetainfoError):
        check_piece_length(bad)


def test_explicit_piece_length_bounds_are_accepted():
    assert check_piece_length(16 * KIB) == 16 * KIB
    assert check_piece_length(256 * MIB) == 256 * MIB


# --- trackers -------------------------------------------------------------------------

def test_each_tracker_is_its_own_tier_and_commas_group():
    assert tracker_tiers(["http://a/ann", "udp://b:1,http://c/ann", " , "]) == (
        ("http://a/ann",), ("udp://b:1", "http://c/ann"))


def test_announce_is_the_first_tracker_and_the_list_keeps_the_tiers():
    tiers = tracker_tiers(["http://a/ann", "udp://b:1,http://c/ann"])
    meta = bdecode(build(tiers=tiers).data)
    assert meta[b"announce"] == b"http://a/ann"
    assert meta[b"announce-list"] == [[b"http://a/ann"], [b"udp://b:1", b"http://c/ann"]]


def test_a_lone_tracker_needs_no_announce_list_and_none_gives_neither():
    assert b"announce-list" not in bdecode(build(tiers=(("http://a/ann",),)).data)
    meta = bdecode(build().data)
    assert b"announce" not in meta and b"announce-list" not in meta


# --- file list -------------------------------------------------------------------------

def test_files_are_sorted_by_path_parts():
    files = [(("z",), 1), (("a-b",), 2), (("a", "y"), 3), (("A",), 4), (("a", "b", "c"), 5)]
    assert [f.path for f in sorted_files(files)] == [("A",), ("a", "b", "c"), ("a", "y"),
                                                      ("a-b",), ("z",)]


@pytest.mark.parametrize("files, message", [
    ([], "no files"),
    ([(("a",), 1), (("a",), 2)], "twice"),
    ([(("a",), 1), (("a", "b"), 2)], "both a file and a directory"),
    ([(("..", "x"), 1)], "unsafe"),
    ([(("a/b",), 1)], "unsafe"),
    ([(("",), 1)], "unsafe"),
    ([(("bad\udcff",), 1)], "UTF-8"),
    ([(("a",), -1)], "negative"),
    ([(("a",), 0), (("b",), 0)], "empty"),
    ([((), 1), (("b",), 1)], "single-file"),
])
def test_bad_file_lists_are_refused(files, message):
    with pytest.raises(MetainfoError, match=message):
        sorted_files(files)


def test_empty_files_are_kept_in_a_multi_file_torrent():
    specs = sorted_files([(("b",), 0), (("a",), 5)])
    info = build_info("dir", specs, 16 * KIB, [bytes(20)])
    assert info[b"files"] == [{b"length": 5, b"path": [b"a"]}, {b"length": 0, b"path": [b"b"]}]


# --- info dict and metainfo ------------------------------------------------------------

def build(tiers=(), files=None, name="payload.bin", piece_length=16 * KIB, **options):
    files = files or [FileSpec((), 40_000)]
    hashes = [bytes([i]) * 20 for i in range(piece_count(sum(f.length for f in files), piece_length))]
    return create_torrent(name, sorted_files(files), piece_length, hashes,
                          CreateOptions(trackers=tiers, **options))


def test_single_file_info_has_length_and_no_files():
    info = bdecode(build().data)[b"info"]
    assert info == {b"name": b"payload.bin", b"piece length": 16 * KIB, b"length": 40_000,
                    b"pieces": bytes([0]) * 20 + bytes([1]) * 20 + bytes([2]) * 20}


def test_multi_file_info_lists_files_in_sorted_order():
    created = build(files=[FileSpec(("sub", "b.bin"), 20_000), FileSpec(("a.bin",), 30_000)],
                    name="album")
    info = bdecode(created.data)[b"info"]
    assert b"length" not in info
    assert info[b"files"] == [{b"length": 30_000, b"path": [b"a.bin"]},
                              {b"length": 20_000, b"path": [b"sub", b"b.bin"]}]


def test_the_info_hash_is_the_sha1_of_the_written_info_dict():
    created = build(tiers=(("http://a/ann",),), comment="hi", created_by="me", private=True)
    torrent = parse_torrent(created.data)
    assert torrent.info.info_hash == created.info_hash
    assert hashlib.sha1(torrent.info.raw).digest() == created.info_hash
    assert torrent.info.private
    meta = bdecode(created.data)
    assert meta[b"comment"] == b"hi" and meta[b"created by"] == b"me"


def test_private_flag_is_absent_unless_asked():
    assert b"private" not in bdecode(build().data)[b"info"]
    assert bdecode(build(private=True).data)[b"info"][b"private"] == 1


def test_output_is_deterministic_without_a_date_and_the_date_spares_the_info_hash():
    files = [FileSpec(("b",), 20_000), FileSpec(("a",), 30_000)]
    first = build(files=files, name="d")
    second = build(files=list(reversed(files)), name="d")
    assert first.data == second.data
    assert b"creation date" not in bdecode(first.data)
    dated = build(files=files, name="d", creation_date=1_700_000_000)
    assert bdecode(dated.data)[b"creation date"] == 1_700_000_000
    assert dated.info_hash == first.info_hash and dated.data != first.data


def test_the_private_flag_changes_the_info_hash():
    assert build(private=True).info_hash != build().info_hash


def test_wrong_hash_count_or_size_is_refused():
    specs = sorted_files([((), 40_000)])
    with pytest.raises(MetainfoError, match="piece hashes"):
        build_info("x", specs, 16 * KIB, [bytes(20)] * 2)
    with pytest.raises(MetainfoError, match="20 bytes"):
        build_info("x", specs, 16 * KIB, [bytes(20), bytes(20), bytes(19)])
    with pytest.raises(MetainfoError, match="unsafe"):
        build_info("..", specs, 16 * KIB, [bytes(20)] * 3)


# --- magnet ------------------------------------------------------------------------------

def test_magnet_round_trips_through_the_parser_with_awkward_characters():
    info_hash = bytes(range(20))
    trackers = ["http://t.example:80/announce?key=a&b=c d", "udp://u:6969"]
    link = format_magnet(info_hash, "a & b=c #1 é", trackers)
    assert link.startswith("magnet:?xt=urn:btih:" + info_hash.hex() + "&dn=")
    assert " " not in link and link.count("&") == 3
    parsed = parse_magnet(link)
    assert parsed.info_hash == info_hash
    assert parsed.display_name == "a & b=c #1 é"
    assert parsed.trackers == tuple(trackers)


def test_created_torrent_magnet_carries_hash_name_and_every_tracker():
    created = build(tiers=(("http://a/ann",), ("udp://b:1", "http://c/ann")))
    parsed = parse_magnet(created.magnet)
    assert parsed.info_hash == created.info_hash
    assert parsed.display_name == "payload.bin"
    assert parsed.trackers == ("http://a/ann", "udp://b:1", "http://c/ann")


# --- disk: scanning ----------------------------------------------------------------------

def test_a_single_file_is_a_single_file_torrent(tmp_path):
    write(tmp_path / "one.bin", b"x" * 100)
    content = scan_content(tmp_path / "one.bin")
    assert content.name == "one.bin"
    assert [f.spec for f in content.files] == [FileSpec((), 100)]


def test_a_directory_is_walked_in_sorted_order(tmp_path):
    root = tmp_path / "album"
    for rel in ["z.bin", "sub/b.bin", "a-b/x", "A.txt", "sub/a/deep.txt"]:
        write(root / rel, rel.encode())
    content = scan_content(root)
    assert content.name == "album"
    assert [f.spec.path for f in content.files] == [
        ("A.txt",), ("a-b", "x"), ("sub", "a", "deep.txt"), ("sub", "b.bin"), ("z.bin",)]
    assert all(f.source.read_bytes() == "/".join(f.spec.path).encode() for f in content.files)


def test_trailing_slash_or_dot_still_names_the_torrent_after_the_directory(tmp_path, monkeypatch):
    write(tmp_path / "album" / "a", b"1")
    assert scan_content(str(tmp_path / "album") + "/").name == "album"
    monkeypatch.chdir(tmp_path / "album")
    assert scan_content(".").name == "album"


def test_symlinks_leaving_the_tree_are_skipped_and_inside_ones_are_kept(tmp_path):
    root = tmp_path / "album"
    write(root / "real.bin", b"inside")
    write(tmp_path / "secret.txt", b"outside")
    (root / "sub").mkdir()
    os.symlink(tmp_path / "secret.txt", root / "escape.txt")
    os.symlink(root / "real.bin", root / "sub" / "alias.bin")
    os.symlink(tmp_path, root / "loop")          # a directory symlink: never followed
    os.symlink(root / "missing", root / "dangling")
    content = scan_content(root)
    assert [f.spec.path for f in content.files] == [("real.bin",), ("sub", "alias.bin")]


def test_empty_directories_are_refused(tmp_path):
    (tmp_path / "empty" / "nested").mkdir(parents=True)
    with pytest.raises(MetainfoError, match="empty directory"):
        scan_content(tmp_path / "empty")


def test_a_directory_of_empty_files_is_refused(tmp_path):
    write(tmp_path / "d" / "a", b"")
    with pytest.raises(MetainfoError, match="empty"):
        make_torrent(tmp_path / "d", CreateOptions())


def test_a_missing_path_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        scan_content(tmp_path / "nope")


def test_excluded_paths_are_left_out(tmp_path):
    write(tmp_path / "d" / "a", b"1")
    write(tmp_path / "d" / "out.torrent", b"old")
    content = scan_content(tmp_path / "d", exclude=[tmp_path / "d" / "out.torrent"])
    assert [f.spec.path for f in content.files] == [("a",)]


# --- disk: hashing -----------------------------------------------------------------------

@pytest.mark.parametrize("sizes", [[1], [16384], [16385], [5000, 0, 30000, 1, 16384, 7], [0, 40000]])
@pytest.mark.parametrize("read_chunk", [7, 1 << 20])
def test_pieces_run_across_file_boundaries(tmp_path, monkeypatch, sizes, read_chunk):
    monkeypatch.setattr(io_create, "READ_CHUNK", read_chunk)
    rng = random.Random(sum(sizes))
    files = [(tmp_path / f"f{i}", size) for i, size in enumerate(sizes)]
    data = b"".join(write(path, rng.randbytes(size)) for path, size in files)
    assert hash_pieces(files, 16 * KIB) == sha1_pieces(data, 16 * KIB)


def test_a_file_that_changed_size_after_the_scan_is_an_error(tmp_path):
    path = tmp_path / "f"
    write(path, b"x" * 100)
    with pytest.raises(MetainfoError, match="shrank"):
        hash_pieces([(path, 101)], 16 * KIB)
    with pytest.raises(MetainfoError, match="grew"):
        hash_pieces([(path, 99)], 16 * KIB)


def test_make_torrent_matches_an_independent_computation(tmp_path):
    root = tmp_path / "album"
    parts = {"b/2.bin": 70_001, "a.bin": 30_000, "c.txt": 12}
    rng = random.Random(9)
    data = {rel: write(root / rel, rng.randbytes(size)) for rel, size in parts.items()}
    created = make_torrent(root, CreateOptions(piece_length=32 * KIB, trackers=(("http://t/a",),)))
    payload = data["a.bin"] + data["b/2.bin"] + data["c.txt"]   # sorted order
    info = bdecode(created.data)[b"info"]
    assert info[b"pieces"] == b"".join(sha1_pieces(payload, 32 * KIB))
    assert info[b"files"] == [{b"length": 30_000, b"path": [b"a.bin"]},
                              {b"length": 70_001, b"path": [b"b", b"2.bin"]},
                              {b"length": 12, b"path": [b"c.txt"]}]
    raw_info = created.data[created.data.index(b"4:infod") + 6:-1]
    assert hashlib.sha1(raw_info).digest() == created.info_hash


def test_make_torrent_picks_the_piece_length_when_not_given(tmp_path):
    write(tmp_path / "f", b"x" * 100)
    info = bdecode(make_torrent(tmp_path / "f", CreateOptions()).data)[b"info"]
    assert info[b"piece length"] == MIN_PIECE_LENGTH


def test_write_torrent_replaces_the_file_and_leaves_no_temporary(tmp_path):
    out = tmp_path / "x.torrent"
    write(out, b"old")
    write_torrent(b"new", out)
    assert out.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.torrent"]
