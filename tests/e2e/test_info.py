"""info: torrents made by libtorrent and by hand (grader-shaped), and the grader's own files."""
import hashlib
import os
from pathlib import Path

import libtorrent as lt
import pytest

from support.bencoding import bencode
from support.checks import assert_error, assert_ok, fields
from support.cli import run_cli
from support.torrents import make_multi_file, make_single_file, random_hashes, write_raw_torrent

KIB = 1024
SAMPLES = Path(__file__).resolve().parents[2] / "samples"  # the grader's own torrents, shipped


def info(torrent: Path):
    result = run_cli("info", torrent)
    assert_ok(result)
    return result.stdout


def check_all_fields(stdout: str, spec) -> None:
    f = fields(stdout)
    if spec.announce:
        assert f.get("Tracker URL") == spec.announce, stdout
    assert f.get("Length") == str(spec.total_length), stdout
    assert f.get("Info Hash") == spec.info_hash, stdout
    assert f.get("Piece Length") == str(spec.piece_length), stdout
    lines = stdout.splitlines()
    for piece_hash in spec.piece_hashes:
        assert piece_hash in lines, f"piece hash {piece_hash} not on a line of its own"


@pytest.mark.parametrize("size,piece_length", [
    (1, 16 * KIB),                      # one tiny piece
    (16 * KIB, 16 * KIB),               # exactly one piece
    (700_001, 64 * KIB),                # short last piece
    (3 * 256 * KIB, 256 * KIB),         # exact multiple
    (2_500_000, 1024 * KIB),
])
def test_single_file_torrent_made_by_libtorrent(tmp_path, size, piece_length):
    spec = make_single_file(tmp_path, "sample.iso", size, piece_length=piece_length,
                            seed=size, announce="http://127.0.0.1:6969/announce")
    check_all_fields(info(spec.torrent_path), spec)


def test_multi_file_torrent_made_by_libtorrent(tmp_path):
    spec = make_multi_file(tmp_path, "album", {"one.bin": 100_000, "two/three.bin": 33_333,
                                               "z.txt": 5}, piece_length=32 * KIB, seed=3,
                           announce="http://127.0.0.1:6969/announce")
    assert spec.multi_file
    check_all_fields(info(spec.torrent_path), spec)  # Length: the sum of the files


def test_grader_shaped_piece_hashes(tmp_path):
    """bf7: faketorrent.iso, 262144-byte pieces, random hashes plus the grader's fixed one."""
    hashes = random_hashes(6, seed=7) + ["70edcac2611a8829ebf467a6849f5d8408d9d8f4"]
    spec = write_raw_torrent(tmp_path / "test.torrent",
                             announce="http://tracker.example.invalid:6969/announce",
                             name="faketorrent.iso", piece_length=262144,
                             piece_hashes=hashes, length=262144 * len(hashes))
    out = info(spec.torrent_path)
    assert "Piece Length: 262144" in out
    for piece_hash in hashes:
        assert piece_hash in out
    check_all_fields(out, spec)


def test_info_hash_is_over_the_raw_bytes_of_an_unsorted_info_dict(tmp_path):
    """The hash is SHA-1 of the info dict's bytes as they are in the file, even when its
    keys are not sorted (the grader warns about re-encoding with sorted keys)."""
    pieces = os.urandom(40)
    raw_info = (b"d4:name5:x.iso12:piece lengthi16384e6:pieces40:" + pieces
                + b"6:lengthi20000ee")  # 'length' last: not sorted
    raw = b"d8:announce30:http://127.0.0.1:1234/announce4:info" + raw_info + b"e"
    path = tmp_path / "unsorted.torrent"
    path.write_bytes(raw)
    expected = hashlib.sha1(raw_info).hexdigest()
    assert str(lt.torrent_info(raw).info_hashes().v1) == expected  # libtorrent agrees
    f = fields(info(path))
    assert f.get("Info Hash") == expected
    assert f.get("Length") == "20000"


GRADER_TORRENTS = [("codercat.gif", 2994120, 12), ("congratulations.gif", 820892, 4),
                   ("itsworking.gif", 2549700, 10)]


@pytest.mark.parametrize("name,length,count", GRADER_TORRENTS)
def test_the_graders_torrents(name, length, count):
    """ow9/rb2 on the very files the grader copies (shipped in samples/)."""
    torrent = SAMPLES / f"{name}.torrent"
    assert torrent.exists(), f"{torrent} missing"
    raw = torrent.read_bytes()
    ti = lt.torrent_info(raw)
    out = info(torrent)
    assert "Tracker URL: http://bittorrent-test-tracker.codecrafters.io/announce" in out
    assert f"Length: {length}\n" in out
    assert f"Info Hash: {ti.info_hashes().v1}\n" in out
    assert "Piece Length: 262144\n" in out
    hashes = [ti.hash_for_piece(i).hex() for i in range(ti.num_pieces())]
    assert len(hashes) == count
    for piece_hash in hashes:
        assert piece_hash in out


def bad_torrents(tmp_path: Path) -> dict[str, Path]:
    def write(name, data):
        path = tmp_path / name
        path.write_bytes(data)
        return path
    good_info = {"length": 10, "name": "a", "piece length": 16384, "pieces": os.urandom(20)}
    return {
        "missing": tmp_path / "does-not-exist.torrent",
        "directory": tmp_path,
        "not bencode": write("text.torrent", b"hello, this is not a torrent\n"),
        "truncated": write("trunc.torrent", bencode({"info": good_info})[:-7]),
        "no info": write("noinfo.torrent", bencode({"announce": "http://127.0.0.1:1/a"})),
        "info not a dict": write("infolist.torrent", bencode({"info": [1, 2]})),
        "pieces not a multiple of 20": write("pieces.torrent", bencode(
            {"info": dict(good_info, pieces=os.urandom(19))})),
        "no length": write("nolength.torrent", bencode(
            {"info": {k: v for k, v in good_info.items() if k != "length"}})),
        "negative piece length": write("negpl.torrent", bencode(
            {"info": dict(good_info, **{"piece length": -1})})),
        "too few pieces": write("fewpieces.torrent", bencode(
            {"info": dict(good_info, length=16385)})),
    }


@pytest.mark.parametrize("case", ["missing", "directory", "not bencode", "truncated",
                                  "no info", "info not a dict", "pieces not a multiple of 20",
                                  "no length", "negative piece length", "too few pieces"])
def test_bad_torrent_is_one_error_line(tmp_path, case):
    assert_error(run_cli("info", bad_torrents(tmp_path)[case]), quiet=True)
