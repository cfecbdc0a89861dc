"""info, files, magnet_parse and magnet_info on v2 and hybrid torrents (BEP 52) made by
libtorrent; and the v1 output pinned byte for byte (the grader reads it)."""
import hashlib

import libtorrent as lt
import pytest

from support.bencoding import bdecode
from support.checks import assert_error, assert_ok, fields
from support.cli import run_cli
from support.peers import start_seeder
from support.torrents import make_lt_spec, make_multi_file, make_single_file

KIB = 1024
ANNOUNCE = "http://127.0.0.1:6969/announce"
pytestmark = pytest.mark.filterwarnings("ignore:files\\(\\) is deprecated:DeprecationWarning")

ALBUM = {"a.bin": 70_000, "b/empty": 0, "b/z.bin": 20_000, "c.bin": 16 * KIB}


def pieces_roots(spec) -> dict[str, str]:
    """path inside the torrent -> pieces root hex, from the .torrent's file tree."""
    tree = bdecode(spec.torrent_path.read_bytes())[b"info"][b"file tree"]
    roots, stack = {}, [((), tree)]
    while stack:
        prefix, node = stack.pop()
        for key, value in node.items():
            if key == b"":
                if b"pieces root" in value:
                    roots["/".join(prefix)] = value[b"pieces root"].hex()
            else:
                stack.append(((*prefix, key.decode()), value))
    return roots


@pytest.mark.parametrize("version", ["v2", "hybrid"])
def test_info_of_a_multi_file_torrent(tmp_path, version):
    spec = make_lt_spec(tmp_path, "album", ALBUM, piece_length=32 * KIB, version=version, seed=5,
                        announce=ANNOUNCE)
    result = run_cli("info", spec.torrent_path)
    assert_ok(result)
    out, f = result.stdout, fields(result.stdout)
    ti = lt.torrent_info(spec.torrent_path.read_bytes())
    assert f["Tracker URL"] == ANNOUNCE
    assert f["Length"] == str(sum(ALBUM.values()))
    assert f["Info Hash v2"] == spec.info_hash_v2
    assert f["Torrent Version"] == version
    assert f["Piece Length"] == str(32 * KIB)
    assert f["Name"] == "album"
    files = out.split("Files:\n")[1].split("Pieces Roots:\n")[0].splitlines()
    assert files == ["70000 a.bin", "0 b/empty", "20000 b/z.bin", "16384 c.bin"]   # tree order
    roots = out.split("Pieces Roots:\n")[1].splitlines()
    assert roots == [f"{root} {path}" for path, root in sorted(pieces_roots(spec).items())]
    assert len(roots) == 3     # the empty file has no pieces root
    if version == "hybrid":
        assert f["Info Hash"] == spec.info_hash == str(ti.info_hashes().v1)
        hashes = out.split("Piece Hashes:\n")[1].split("Name:")[0].splitlines()
        assert hashes == [ti.hash_for_piece(i).hex() for i in range(ti.num_pieces())]
        assert len(hashes) == 5     # padding counts: a.bin 3 pieces, b/z.bin 1, c.bin 1
    else:
        assert "Info Hash:" not in out and "Piece Hashes:" not in out   # no SHA-1 in a v2 torrent


@pytest.mark.parametrize("version", ["v2", "hybrid"])
def test_info_of_a_single_file_torrent(tmp_path, version):
    spec = make_lt_spec(tmp_path, "movie.mkv", {"movie.mkv": 40_000}, piece_length=16 * KIB,
                        version=version, seed=6)
    result = run_cli("info", spec.torrent_path)
    assert_ok(result)
    lines = result.stdout.splitlines()
    root = pieces_roots(spec)["movie.mkv"]
    assert lines[:2] == ["Tracker URL: ", "Length: 40000"]
    assert f"Info Hash v2: {spec.info_hash_v2}" in lines and f"Torrent Version: {version}" in lines
    assert lines[-2:] == ["Pieces Roots:", f"{root} movie.mkv"]
    assert "Files:" not in lines and "Name: movie.mkv" not in lines     # as for a v1 single file


def test_v1_output_is_byte_for_byte_the_graders(tmp_path):
    """The v1 lines, exactly: no v2 line sneaks into a v1 torrent's output."""
    single = make_single_file(tmp_path / "s", "sample.iso", 70_000, piece_length=32 * KIB, seed=1,
                              announce=ANNOUNCE)
    expected = (f"Tracker URL: {ANNOUNCE}\nLength: 70000\nInfo Hash: {single.info_hash}\n"
                f"Piece Length: 32768\nPiece Hashes:\n" + "".join(h + "\n" for h in single.piece_hashes))
    result = run_cli("info", single.torrent_path)
    assert_ok(result)
    assert result.stdout == expected
    multi = make_multi_file(tmp_path / "m", "album", {"one.bin": 40_000, "sub/two.bin": 5}, piece_length=16 * KIB,
                            seed=2, announce=ANNOUNCE)
    expected = (f"Tracker URL: {ANNOUNCE}\nLength: 40005\nInfo Hash: {multi.info_hash}\n"
                f"Piece Length: 16384\nPiece Hashes:\n" + "".join(h + "\n" for h in multi.piece_hashes)
                + "Name: album\nFiles:\n" + "".join(f"{n} {'/'.join(p[1:])}\n" for p, n in multi.files))
    assert "40000 one.bin\n" in expected and "5 sub/two.bin\n" in expected
    result = run_cli("info", multi.torrent_path)
    assert_ok(result)
    assert result.stdout == expected


@pytest.mark.parametrize("version", ["v2", "hybrid"])
def test_files_lists_real_files_only(tmp_path, version):
    spec = make_lt_spec(tmp_path, "album", ALBUM, piece_length=32 * KIB, version=version, seed=7)
    result = run_cli("files", spec.torrent_path)
    assert_ok(result)
    assert result.stdout == ("1 70000 album/a.bin\n2 0 album/b/empty\n3 20000 album/b/z.bin\n"
                             "4 16384 album/c.bin\n")     # no .pad entries


def test_files_of_a_v2_torrent_of_one_file_in_a_directory(tmp_path):
    """libtorrent's v2 torrent of a directory holding one file is a single-file torrent."""
    spec = make_lt_spec(tmp_path, "lonely", {"only.bin": 100}, piece_length=16 * KIB, version="v2", seed=8)
    result = run_cli("files", spec.torrent_path)
    assert_ok(result)
    assert result.stdout == "1 100 only.bin\n"


def test_info_refuses_a_tampered_piece_layer(tmp_path):
    spec = make_lt_spec(tmp_path, "album", ALBUM, piece_length=32 * KIB, version="v2", seed=9)
    raw = spec.torrent_path.read_bytes()
    meta = bdecode(raw)
    (root, layer), = meta[b"piece layers"].items()
    bad = raw.replace(layer, layer[:-1] + bytes([layer[-1] ^ 1]))
    path = tmp_path / "bad.torrent"
    path.write_bytes(bad)
    error = assert_error(run_cli("info", path), quiet=True)
    assert "a.bin" in error and "pieces root" in error


# ---------------------------------------------------------------- magnet_parse

V2_HASH = hashlib.sha256(b"some info dict").hexdigest()
V1_HASH = hashlib.sha1(b"some info dict").hexdigest()


def test_magnet_parse_v2():
    result = run_cli("magnet_parse", f"magnet:?xt=urn:btmh:1220{V2_HASH}&dn=a.bin&tr=http%3A%2F%2F127.0.0.1%3A1%2Fa")
    assert_ok(result)
    assert result.stdout == f"Tracker URL: http://127.0.0.1:1/a\nInfo Hash v2: {V2_HASH}\nName: a.bin\n"


def test_magnet_parse_hybrid():
    result = run_cli("magnet_parse", f"magnet:?xt=urn:btih:{V1_HASH}&xt=urn:btmh:1220{V2_HASH}")
    assert_ok(result)
    assert result.stdout == f"Tracker URL: \nInfo Hash: {V1_HASH}\nInfo Hash v2: {V2_HASH}\n"


def test_magnet_parse_btih_only_is_unchanged():
    result = run_cli("magnet_parse", f"magnet:?xt=urn:btih:{V1_HASH}&dn=x.gif&tr=http%3A%2F%2F127.0.0.1%3A1%2Fa")
    assert_ok(result)
    assert result.stdout == f"Tracker URL: http://127.0.0.1:1/a\nInfo Hash: {V1_HASH}\nName: x.gif\n"


def test_magnet_parse_refuses_another_multihash():
    error = assert_error(run_cli("magnet_parse", f"magnet:?xt=urn:btmh:1114{V1_HASH}"), quiet=True)
    assert "sha2-256" in error


# ---------------------------------------------------------------- magnet_info from libtorrent

@pytest.mark.parametrize("version", ["v2", "hybrid"])
def test_magnet_info_of_a_v2_link_from_a_libtorrent_seeder(tmp_path, version):
    """The metadata fetched for a btmh link is checked by SHA-256 (and SHA-1 for a hybrid
    link with btih too) and printed like `info` (without piece layers: none came)."""
    spec = make_lt_spec(tmp_path, "album", ALBUM, piece_length=32 * KIB, version=version, seed=10)
    with start_seeder(spec, tmp_path / "seeder", announce=False) as seeder:
        result = run_cli("magnet_info", spec.magnet(tracker=""), "--peer", seeder.address)
    assert_ok(result)
    f = fields(result.stdout)
    assert f["Info Hash v2"] == spec.info_hash_v2
    assert f["Torrent Version"] == version
    assert f["Length"] == str(sum(ALBUM.values()))
    assert ("Info Hash" in f) == (version == "hybrid")
