"""`create --v2` and `create --hybrid` against libtorrent's create_torrent (a missing libtorrent fails).

For the same files and piece length our info dict and `piece layers` are byte for byte
libtorrent's (its info hashes are SHA-1/SHA-256 of the raw info bytes, so equal hashes
are equal bytes), and our torrents load in libtorrent. One deliberate difference: when
names order differently by path parts than as '/'-joined strings ("a b/x" vs "a/z"),
libtorrent's hybrid lists its v1 files in an order its own loader refuses; ours follows
the file tree and loads.
"""
from __future__ import annotations

import random
import urllib.parse
from pathlib import Path

import libtorrent as lt
import pytest

from app.core.create import CreateOptions
from app.io.create import make_torrent
from support.bencoding import bdecode, bencode
from support.cli import run_cli
from support.torrents import lt_info_hashes, make_lt_torrent

KIB = 1024
MIB = 1024 * KIB
VERSIONS = ["v2", "hybrid"]


def write(path: Path, size: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(random.Random(seed).randbytes(size))


def edge_sizes(piece_length: int) -> list[int]:
    return [0, 1, 16383, 16384, 16385, piece_length - 1, piece_length, piece_length + 1]


def layouts(piece_length: int) -> dict[str, dict[str, int]]:
    """name -> {relative path: size}; an empty relative path is a single-file torrent."""
    nested = {f"d{i % 3}/sub{i % 2}/f{i}.bin": size for i, size in enumerate(edge_sizes(piece_length))}
    nested["top.txt"] = 2 * piece_length + 777
    return {"smaller": {"": piece_length // 2 + 3}, "one-piece": {"": piece_length},
            "many": {"": 3 * piece_length + 4097}, "nested": nested}


def build(root: Path, name: str, files: dict[str, int]) -> Path:
    for n, (rel, size) in enumerate(files.items()):
        write(root / name / rel if rel else root / name, size, seed=1000 * n + size)
    return root / name


def ours(path: Path, version: str, piece_length: int | None, **options) -> bytes:
    return make_torrent(path, CreateOptions(piece_length=piece_length, version=version, **options)).data


def assert_same_torrent(our_raw: bytes, lt_raw: bytes) -> None:
    our_meta, lt_meta = bdecode(our_raw), bdecode(lt_raw)
    assert bencode(our_meta[b"info"]) == bencode(lt_meta[b"info"])
    assert our_meta[b"piece layers"] == lt_meta[b"piece layers"]
    assert lt_info_hashes(our_raw) == lt_info_hashes(lt_raw)  # over the raw bytes, in libtorrent


# --- byte-identical to libtorrent ------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("piece_length", [16 * KIB, 32 * KIB, 1 * MIB])
@pytest.mark.parametrize("layout", ["smaller", "one-piece", "many", "nested"])
def test_info_and_piece_layers_equal_libtorrents(tmp_path, version, piece_length, layout):
    path = build(tmp_path / "data", layout, layouts(piece_length)[layout])
    lt_raw = make_lt_torrent(tmp_path / "data", layout, tmp_path / "lt.torrent",
                             piece_length=piece_length, version=version)
    our_raw = ours(path, version, piece_length)
    assert_same_torrent(our_raw, lt_raw)
    info = bdecode(our_raw)[b"info"]
    assert info[b"meta version"] == 2 and (b"pieces" in info) == (version == "hybrid")
    if layout == "nested" and version == "hybrid":  # pad files are there, and not trivially
        pads = [f for f in info[b"files"] if f.get(b"attr") == b"p"]
        assert len(pads) == sum(1 for s in layouts(piece_length)[layout].values() if s % piece_length)
    if layout in ("many", "nested"):
        assert bdecode(our_raw)[b"piece layers"]


@pytest.mark.parametrize("version", VERSIONS)
def test_a_directory_of_one_file_and_executable_files_equal_libtorrents(tmp_path, version):
    one = build(tmp_path / "data", "one", {"inner/only.bin": 40_000})
    assert_same_torrent(ours(one, version, 16 * KIB),
                        make_lt_torrent(tmp_path / "data", "one", tmp_path / "1.torrent",
                                        piece_length=16 * KIB, version=version))
    exe = build(tmp_path / "data", "exe", {"run.sh": 20_000, "lib/tool": 5, "notes": 3})
    (exe / "run.sh").chmod(0o755)
    (exe / "lib" / "tool").chmod(0o700)
    our_raw = ours(exe, version, 16 * KIB)
    assert_same_torrent(our_raw, make_lt_torrent(tmp_path / "data", "exe", tmp_path / "x.torrent",
                                                 piece_length=16 * KIB, version=version))
    assert bdecode(our_raw)[b"info"][b"file tree"][b"run.sh"][b""][b"attr"] == b"x"


def test_single_executable_hybrid_equals_libtorrents(tmp_path):
    path = build(tmp_path / "data", "tool", {"": 30_000})
    path.chmod(0o755)
    our_raw = ours(path, "hybrid", 16 * KIB)
    assert_same_torrent(our_raw, make_lt_torrent(tmp_path / "data", "tool", tmp_path / "t.torrent",
                                                 piece_length=16 * KIB, version="hybrid"))
    assert bdecode(our_raw)[b"info"][b"attr"] == b"x"


@pytest.mark.parametrize("version", VERSIONS)
def test_private_torrents_equal_libtorrents(tmp_path, version):
    path = build(tmp_path / "data", "p", {"a": 20_000, "b/c": 3})
    creator = lt.create_torrent(lt.list_files(str(path)), 16 * KIB,
                                lt.create_torrent.v2_only if version == "v2" else 0)
    creator.set_priv(True)
    lt.set_piece_hashes(creator, str(path.parent))
    our_raw = ours(path, version, 16 * KIB, private=True)
    assert_same_torrent(our_raw, lt.bencode(creator.generate()))
    assert bdecode(our_raw)[b"info"][b"private"] == 1


def test_names_ordered_differently_as_strings_give_a_hybrid_libtorrent_can_load(tmp_path):
    files = {"a b/x": 7, "a/z": 40_000, "doc.md": 3, "doc/x": 20_000}
    path = build(tmp_path / "data", "clash", files)
    lt_raw = make_lt_torrent(tmp_path / "data", "clash", tmp_path / "lt.torrent",
                             piece_length=16 * KIB, version="hybrid")
    with pytest.raises(RuntimeError, match="v1 and v2 file metadata does not match"):
        lt.torrent_info(lt_raw)  # libtorrent's own: v1 list by joined path, tree by parts
    our_raw = ours(path, "hybrid", 16 * KIB)
    info = lt.torrent_info(our_raw)
    storage = info.layout()
    real = [storage.file_path(i) for i in range(storage.num_files())
            if not storage.file_flags(i) & lt.file_storage.flag_pad_file]
    assert real == [str(Path("clash", *p.split("/"))) for p in ["a/z", "a b/x", "doc/x", "doc.md"]]

    our_info, lt_info = bdecode(our_raw)[b"info"], bdecode(lt_raw)[b"info"]
    assert our_info[b"file tree"] == lt_info[b"file tree"]  # the v2 side is libtorrent's
    assert {k: v for k, v in our_info.items() if k not in (b"files", b"pieces")} == \
        {k: v for k, v in lt_info.items() if k not in (b"files", b"pieces")}
    v2_only = make_lt_torrent(tmp_path / "data", "clash", tmp_path / "v2.torrent",
                              piece_length=16 * KIB, version="v2")
    assert_same_torrent(ours(path, "v2", 16 * KIB), v2_only)


# --- the command ----------------------------------------------------------------------------

def create(path: Path, out: Path, *args: str) -> dict[str, str]:
    result = run_cli("create", "-o", out, *args, path, timeout=60)
    assert result.returncode == 0, result.describe()
    return dict(line.split(": ", 1) for line in result.stdout.splitlines())


@pytest.mark.parametrize("version", VERSIONS)
def test_create_command_prints_both_hashes_and_a_btmh_magnet(tmp_path, version):
    path = build(tmp_path / "data", "album", {"a.bin": 50_000, "b/c.bin": 16_384, "e": 0})
    trackers = ["http://127.0.0.1:6969/announce", "udp://127.0.0.1:6970"]
    out = tmp_path / "ours.torrent"
    printed = create(path, out, f"--{version}", "--piece-length", "32K", "--tracker", trackers[0],
                     "--tracker", trackers[1], "--comment", "c", "--web-seed", "http://127.0.0.1:8/")
    assert list(printed) == (["Info Hash"] if version == "hybrid" else []) + ["Info Hash v2", "Magnet"]
    lt_raw = make_lt_torrent(tmp_path / "data", "album", tmp_path / "lt.torrent",
                             piece_length=32 * KIB, version=version)
    assert_same_torrent(out.read_bytes(), lt_raw)
    v1, v2 = lt_info_hashes(lt_raw)
    assert printed["Info Hash v2"] == v2
    assert printed.get("Info Hash") == (v1 if version == "hybrid" else None)   # as `info` shows it
    topics = (f"xt=urn:btih:{v1}&" if version == "hybrid" else "") + f"xt=urn:btmh:1220{v2}"
    assert printed["Magnet"] == f"magnet:?{topics}&dn=album" + "".join(
        "&tr=" + urllib.parse.quote(t, safe="") for t in trackers)
    magnet = lt.parse_magnet_uri(printed["Magnet"])
    assert str(magnet.info_hashes.v2) == v2 and magnet.name == "album"
    assert (str(magnet.info_hashes.v1) == v1) if version == "hybrid" else not magnet.info_hashes.has_v1()

    params = lt.load_torrent_buffer(out.read_bytes())
    assert list(zip(params.trackers, params.tracker_tiers)) == [(trackers[0], 0), (trackers[1], 1)]
    assert list(params.url_seeds) == ["http://127.0.0.1:8/"]
    loaded = lt.torrent_info(out.read_bytes())
    assert loaded.comment() == "c"
    assert loaded.creation_date() == 0  # as v1 create: no date unless --date

    shown = run_cli("info", out, timeout=30)  # our own reader agrees
    assert shown.returncode == 0, shown.describe()
    assert f"Info Hash v2: {v2}" in shown.stdout.splitlines()
    assert (f"Info Hash: {v1}" in shown.stdout.splitlines()) == (version == "hybrid")


def test_create_v2_picks_the_piece_length_and_refuses_both_flags(tmp_path):
    path = build(tmp_path / "data", "f.bin", {"": 100_000})
    printed = create(path, tmp_path / "auto.torrent", "--v2")
    info = bdecode((tmp_path / "auto.torrent").read_bytes())[b"info"]
    assert info[b"piece length"] == 16 * KIB
    assert_same_torrent((tmp_path / "auto.torrent").read_bytes(),
                        make_lt_torrent(tmp_path / "data", "f.bin", tmp_path / "lt.torrent",
                                        piece_length=16 * KIB, version="v2"))
    assert "Info Hash" not in printed and len(printed["Info Hash v2"]) == 64

    both = run_cli("create", "-o", tmp_path / "x.torrent", "--v2", "--hybrid", path, timeout=30)
    assert both.returncode != 0 and "--v2" in both.stderr and "--hybrid" in both.stderr
    assert not (tmp_path / "x.torrent").exists()
    v1 = create(path, tmp_path / "v1.torrent")  # no flag: v1 as before
    assert list(v1) == ["Info Hash", "Magnet"] and b"meta version" not in (tmp_path / "v1.torrent").read_bytes()
