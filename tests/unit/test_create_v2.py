"""Making v2 and hybrid torrents (BEP 52): the streaming merkle hasher, the pure layout
(app.core.create_v2) and the disk hasher (app.io.create), without libtorrent
(tests/e2e/test_create_v2.py compares against it).

Expected hashes are computed here by hand with hashlib; the decoder is the tests' own.
"""
import hashlib
import random

import pytest

from app.core.create import CreateOptions, FileSpec, sorted_files
from app.core.create_v2 import (
    FileHashes,
    build_info_v2,
    create_torrent_v2,
    pad_lengths,
    piece_layers,
    tree_order,
    v1_piece_count,
)
from app.core.errors import MetainfoError
from app.core.merkle import FileHasher, file_root, piece_layer_of
from app.io import create as io_create
from app.io.create import hash_file_v2, make_torrent
from support.bencoding import bdecode, bencode

KIB = 1024
BLOCK = 16 * KIB
ZERO = bytes(32)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def h2(left: bytes, right: bytes) -> bytes:
    return sha256(left + right)


def data_of(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def hashes_of(files: dict[tuple[str, ...], bytes], piece_length: int) -> dict[tuple[str, ...], FileHashes]:
    """Through merkle.py's whole-file helpers (checked against libtorrent elsewhere)."""
    out = {}
    for path, data in files.items():
        if data:
            layer = piece_layer_of(data, piece_length) if len(data) > piece_length else []
            out[path] = FileHashes(file_root(data, piece_length), tuple(layer))
    return out


def sha1_pieces(data: bytes, piece_length: int) -> list[bytes]:
    return [hashlib.sha1(data[i:i + piece_length]).digest() for i in range(0, len(data), piece_length)]


# --- FileHasher ----------------------------------------------------------------------------

def test_file_hasher_roots_by_hand():
    one = data_of(1)
    hasher = FileHasher(4 * BLOCK)
    hasher.update(one)
    assert hasher.finish() == (sha256(one), [])  # one leaf: the root is the leaf

    three = data_of(2 * BLOCK + 5)  # one 64 KiB piece of three leaves: padded to four, not to the piece
    leaves = [sha256(three[i:i + BLOCK]) for i in range(0, len(three), BLOCK)]
    hasher = FileHasher(4 * BLOCK)
    hasher.update(three)
    assert hasher.finish() == (h2(h2(leaves[0], leaves[1]), h2(leaves[2], ZERO)), [])

    # three 16 KiB pieces: the piece layer is the leaves, the root pads them to four
    hasher = FileHasher(BLOCK)
    hasher.update(three)
    root, layer = hasher.finish()
    assert layer == leaves
    assert root == h2(h2(leaves[0], leaves[1]), h2(leaves[2], ZERO))

    # two 32 KiB pieces, the second one leaf short: its missing leaf is a zero hash
    hasher = FileHasher(2 * BLOCK)
    hasher.update(three)
    root, layer = hasher.finish()
    assert layer == [h2(leaves[0], leaves[1]), h2(leaves[2], ZERO)]
    assert root == h2(layer[0], layer[1])


@pytest.mark.parametrize("piece_length", [BLOCK, 4 * BLOCK])
@pytest.mark.parametrize("size", [1, BLOCK - 1, BLOCK, BLOCK + 1, 4 * BLOCK - 1, 4 * BLOCK,
                                  4 * BLOCK + 1, 11 * BLOCK + 77])
@pytest.mark.parametrize("chunk", [7, 1000, BLOCK, 3 * BLOCK + 5, 1 << 20])
def test_file_hasher_streams_to_the_whole_file_helpers(piece_length, size, chunk):
    data = data_of(size, seed=size)
    hasher = FileHasher(piece_length)
    for start in range(0, size, chunk):
        hasher.update(data[start:start + chunk])
    layer = piece_layer_of(data, piece_length) if size > piece_length else []
    assert hasher.finish() == (file_root(data, piece_length), layer)
    assert hasher.length == size


def test_file_hasher_refuses_empty_files_and_odd_piece_lengths():
    with pytest.raises(ValueError):
        FileHasher(BLOCK).finish()
    for bad in (8 * KIB, 48 * KIB, 0):
        with pytest.raises(ValueError):
            FileHasher(bad)


# --- layout ----------------------------------------------------------------------------------

def test_tree_order_is_by_path_parts_not_by_the_joined_path():
    files = [FileSpec(("a", "z"), 1), FileSpec(("a b", "x"), 1), FileSpec(("doc", "x"), 1),
             FileSpec(("doc.md",), 1), FileSpec(("B",), 1)]
    assert [f.path for f in tree_order(files)] == [
        ("B",), ("a", "z"), ("a b", "x"), ("doc", "x"), ("doc.md",)]


def test_pad_lengths_complete_each_unaligned_file_and_none_for_a_single_file():
    files = tree_order([FileSpec(("a",), 0), FileSpec(("b",), 1), FileSpec(("c",), BLOCK),
                        FileSpec(("d",), 3 * BLOCK + 2)])
    assert pad_lengths(files, 2 * BLOCK) == (0, 2 * BLOCK - 1, BLOCK, BLOCK - 2)
    assert v1_piece_count(files, 2 * BLOCK) == 1 + 1 + 2
    assert pad_lengths([FileSpec((), 5)], BLOCK) == (0,)
    assert v1_piece_count([FileSpec((), BLOCK + 5)], BLOCK) == 2
    # a directory holding one file is still multi-file, but libtorrent pads only when there are several
    assert pad_lengths([FileSpec(("only",), 5)], BLOCK) == (0,)


def test_v2_single_file_info_has_a_file_tree_and_nothing_of_v1():
    data = data_of(3 * BLOCK + 1)
    info = build_info_v2("f.bin", [FileSpec((), len(data))], BLOCK, hashes_of({(): data}, BLOCK))
    assert info == {b"file tree": {b"f.bin": {b"": {b"length": len(data),
                                                     b"pieces root": file_root(data, BLOCK)}}},
                    b"meta version": 2, b"name": b"f.bin", b"piece length": BLOCK}


def test_hybrid_multi_file_info_pads_every_unaligned_file_the_last_included():
    content = {("b", "x"): data_of(5, 1), ("a",): data_of(2 * BLOCK, 2), ("e",): b"",
               ("c",): data_of(BLOCK + 3, 3)}
    specs = sorted_files((p, len(d)) for p, d in content.items())
    padded = b"".join(content[p] + bytes(-len(content[p]) % (2 * BLOCK)) for p in [("a",), ("b", "x"), ("c",), ("e",)])
    info = build_info_v2("dir", specs, 2 * BLOCK, hashes_of(content, 2 * BLOCK),
                         v1_pieces=sha1_pieces(padded, 2 * BLOCK))
    pad = {b"attr": b"p"}
    assert info[b"files"] == [
        {b"length": 2 * BLOCK, b"path": [b"a"]},
        {b"length": 5, b"path": [b"b", b"x"]}, {**pad, b"length": 2 * BLOCK - 5, b"path": [b".pad", b"32763"]},
        {b"length": BLOCK + 3, b"path": [b"c"]}, {**pad, b"length": BLOCK - 3, b"path": [b".pad", b"16381"]},
        {b"length": 0, b"path": [b"e"]}]
    assert info[b"pieces"] == b"".join(sha1_pieces(padded, 2 * BLOCK))
    assert info[b"file tree"][b"e"] == {b"": {b"length": 0}}  # an empty file has no pieces root
    assert info[b"file tree"][b"b"][b"x"][b""][b"pieces root"] == sha256(content[("b", "x")])
    assert b"length" not in info and b"private" not in info


def test_hybrid_single_file_keeps_v1_length_and_a_short_last_piece():
    data = data_of(BLOCK + 9)
    info = build_info_v2("one", [FileSpec((), len(data))], BLOCK, hashes_of({(): data}, BLOCK),
                         v1_pieces=sha1_pieces(data, BLOCK), private=True, executable={()})
    assert info[b"length"] == len(data) and b"files" not in info
    assert info[b"attr"] == b"x" and info[b"file tree"][b"one"][b""][b"attr"] == b"x"
    assert info[b"private"] == 1
    assert info[b"pieces"] == b"".join(sha1_pieces(data, BLOCK))


@pytest.mark.parametrize("broken, message", [
    (lambda h: {}, "no 32-byte pieces root"),
    (lambda h: {(): FileHashes(h[()].root[:20], h[()].piece_layer)}, "no 32-byte pieces root"),
    (lambda h: {(): FileHashes(h[()].root, h[()].piece_layer[:-1])}, "piece layer of 3"),
    (lambda h: {(): FileHashes(h[()].root, h[()].piece_layer[::-1])}, "does not lead to the pieces root"),
])
def test_hashes_that_do_not_fit_the_file_are_refused(broken, message):
    data = data_of(2 * BLOCK + 1)
    with pytest.raises(MetainfoError, match=message):
        build_info_v2("f", [FileSpec((), len(data))], BLOCK, broken(hashes_of({(): data}, BLOCK)))


def test_a_hybrid_needs_one_sha1_per_padded_piece():
    content = {("a",): data_of(5), ("b",): data_of(6)}
    specs = sorted_files((p, len(d)) for p, d in content.items())
    with pytest.raises(MetainfoError, match="needs 2 SHA-1 piece hashes, not 1"):
        build_info_v2("d", specs, BLOCK, hashes_of(content, BLOCK), v1_pieces=[bytes(20)])


def test_piece_layers_only_for_files_longer_than_a_piece():
    content = {("small",): data_of(BLOCK), ("big",): data_of(2 * BLOCK + 1)}
    layers = piece_layers(hashes_of(content, BLOCK))
    big = content[("big",)]
    assert layers == {file_root(big, BLOCK): b"".join(sha256(big[i:i + BLOCK]) for i in range(0, len(big), BLOCK))}


# --- the encoded torrent ---------------------------------------------------------------------

def test_v2_torrent_hashes_and_magnet():
    data = data_of(2 * BLOCK + 1)
    options = CreateOptions(trackers=(("http://127.0.0.1:1/a b",),), comment="hi")
    created = create_torrent_v2("x y", [FileSpec((), len(data))], BLOCK, hashes_of({(): data}, BLOCK), options)
    meta = bdecode(created.data)
    raw_info = bencode(meta[b"info"])
    assert created.info_hash_v2 == sha256(raw_info)
    assert created.info_hash == sha256(raw_info)[:20]  # the wire hash of a v2-only torrent
    assert created.magnet == (f"magnet:?xt=urn:btmh:1220{sha256(raw_info).hex()}&dn=x%20y"
                              "&tr=http%3A%2F%2F127.0.0.1%3A1%2Fa%20b")
    assert sorted(meta) == [b"announce", b"comment", b"info", b"piece layers"]
    assert meta[b"piece layers"] == {file_root(data, BLOCK): b"".join(piece_layer_of(data, BLOCK))}


def test_hybrid_torrent_hashes_and_magnet():
    data = data_of(100)
    created = create_torrent_v2("h", [FileSpec((), 100)], BLOCK, hashes_of({(): data}, BLOCK),
                                CreateOptions(), v1_pieces=sha1_pieces(data, BLOCK))
    meta = bdecode(created.data)
    raw_info = bencode(meta[b"info"])
    assert created.info_hash == hashlib.sha1(raw_info).digest()
    assert created.info_hash_v2 == sha256(raw_info)
    assert created.magnet == (f"magnet:?xt=urn:btih:{hashlib.sha1(raw_info).hexdigest()}"
                              f"&xt=urn:btmh:1220{sha256(raw_info).hex()}&dn=h")
    assert meta[b"piece layers"] == {}  # BEP 52: present even when no file needs a layer
    assert created.data == create_torrent_v2("h", [FileSpec((), 100)], BLOCK, hashes_of({(): data}, BLOCK),
                                             CreateOptions(), v1_pieces=sha1_pieces(data, BLOCK)).data


# --- from disk -------------------------------------------------------------------------------

@pytest.mark.parametrize("size, pad", [(1, BLOCK - 1), (BLOCK, 0), (3 * BLOCK + 7, BLOCK - 7), (3 * BLOCK + 7, 0)])
def test_hash_file_v2_streams_and_pads_the_v1_pieces(tmp_path, monkeypatch, size, pad):
    monkeypatch.setattr(io_create, "READ_CHUNK", 5000)  # chunks that straddle blocks and pieces
    data = data_of(size, seed=size)
    path = tmp_path / "f"
    path.write_bytes(data)
    v1: list[bytes] = []
    got = hash_file_v2(path, size, BLOCK, v1, pad)
    layer = piece_layer_of(data, BLOCK) if size > BLOCK else []
    assert got == FileHashes(file_root(data, BLOCK), tuple(layer))
    assert v1 == sha1_pieces(data + bytes(pad), BLOCK)


def test_hash_file_v2_notices_a_changed_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(data_of(100))
    with pytest.raises(MetainfoError, match="grew"):
        hash_file_v2(path, 99, BLOCK)
    with pytest.raises(MetainfoError, match="shrank"):
        hash_file_v2(path, 101, BLOCK)


def test_make_torrent_hybrid_from_a_directory(tmp_path):
    root = tmp_path / "d"
    content = {("z",): data_of(BLOCK + 1, 1), ("a", "b"): data_of(7, 2), ("e",): b""}
    for parts, data in content.items():
        root.joinpath(*parts).parent.mkdir(parents=True, exist_ok=True)
        root.joinpath(*parts).write_bytes(data)
    (root / "z").chmod(0o755)
    created = make_torrent(root, CreateOptions(piece_length=BLOCK, version="hybrid"))
    info = bdecode(created.data)[b"info"]
    padded = content[("a", "b")] + bytes(BLOCK - 7) + content[("z",)] + bytes(BLOCK - 1)
    assert info[b"pieces"] == b"".join(sha1_pieces(padded, BLOCK))
    assert [f[b"path"] for f in info[b"files"]] == [[b"a", b"b"], [b".pad", b"16377"], [b"e"],
                                                     [b"z"], [b".pad", b"16383"]]
    assert info[b"files"][3][b"attr"] == b"x" and info[b"file tree"][b"z"][b""][b"attr"] == b"x"
    assert b"attr" not in info[b"files"][0]
    assert created.info_hash == hashlib.sha1(bencode(info)).digest()


def test_make_torrent_v1_is_unchanged_by_the_version_option(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(data_of(BLOCK + 1))
    v1 = make_torrent(path, CreateOptions(piece_length=BLOCK))
    assert v1 == make_torrent(path, CreateOptions(piece_length=BLOCK, version="v1"))
    assert v1.info_hash_v2 is None and b"meta version" not in bdecode(v1.data)[b"info"]


@pytest.mark.parametrize("version", ["v2", "hybrid"])
def test_created_torrents_parse_back_with_the_same_hashes_files_and_layers(tmp_path, version):
    from app.core.metainfo import parse_torrent  # the v2 parser, written apart from create

    root = tmp_path / "d"
    content = {("z",): data_of(3 * BLOCK + 1, 1), ("a b", "c"): data_of(7, 2), ("a", "e"): b"",
               ("a", "f"): data_of(BLOCK, 3)}
    for parts, data in content.items():
        root.joinpath(*parts).parent.mkdir(parents=True, exist_ok=True)
        root.joinpath(*parts).write_bytes(data)
    created = make_torrent(root, CreateOptions(piece_length=BLOCK, version=version, private=True))
    info = parse_torrent(created.data).info
    assert (info.info_hash, info.info_hash_v2, info.version) == (created.info_hash, created.info_hash_v2, version)
    assert info.private and info.name == "d" and info.piece_length == BLOCK
    assert [(f.path, f.length, f.pieces_root) for f in info.files] == [
        (p, len(content[p]), file_root(content[p], BLOCK) if content[p] else None)
        for p in [("a", "e"), ("a", "f"), ("a b", "c"), ("z",)]]
    big = content[("z",)]
    assert dict(info.piece_layers) == {file_root(big, BLOCK): tuple(piece_layer_of(big, BLOCK))}
