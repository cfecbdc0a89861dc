"""app/core/metainfo.py and app/core/file_tree.py on v2 and hybrid torrents (BEP 52).

Two sources of torrents: libtorrent's own (made at test time with make_lt_torrent), whose
view -- info hashes, files, offsets, piece count and sizes -- is the reference; and small
hand-built info dicts (merkle roots from app.core.merkle), each broken in one way to show
that every validation rule refuses it with a MetainfoError.
"""

import hashlib
import os
from pathlib import Path

import libtorrent as lt
import pytest

from app.core.errors import MetainfoError
from app.core.merkle import file_root, piece_layer_of
from app.core.metainfo import FileEntry, default_output, parse_info, parse_torrent
from app.core.piece_check import PieceCheck
from app.core.pieces import read_stream
from support.bencoding import bdecode, bencode
from support.bencoding import bencode_as_given as bencode_given
from support.torrents import lt_info_hashes, make_lt_torrent, write_payload

KIB = 1024
PL = 16 * KIB
pytestmark = pytest.mark.filterwarnings("ignore:files\\(\\) is deprecated:DeprecationWarning")


# --- libtorrent's torrents: our view must be libtorrent's ------------------------------------

LAYOUTS = {
    # name: ({relative path: size}, piece length); {name: size} alone is a single file
    "short_last_piece.bin": ({"short_last_piece.bin": 40_000}, 32 * KIB),
    "tiny.bin": ({"tiny.bin": 100}, 32 * KIB),                    # smaller than one piece
    "one_piece.bin": ({"one_piece.bin": 32 * KIB}, 32 * KIB),     # exactly one piece
    "three_pieces.bin": ({"three_pieces.bin": 3 * 16 * KIB}, 16 * KIB),
    "album": ({"a.bin": 70_000, "b/empty": 0, "b/z.bin": 20_000, "c.bin": 16 * KIB,
               "d/e/f/deep.txt": 5, "d/e/g.bin": 64 * KIB, "zz_empty": 0}, 32 * KIB),
    "lonely": ({"only.bin": 100}, 16 * KIB),                      # a directory of one file
    "starts_empty": ({"a": 0, "b": 5, "c": 16 * KIB + 1}, 16 * KIB),
    "ends_empty": ({"a": 100, "z": 0}, 16 * KIB),
}


def make(tmp_path: Path, name: str, version: str) -> tuple[bytes, Path]:
    sizes, piece_length = LAYOUTS[name]
    data_root = tmp_path / "data"
    single = list(sizes) == [name]
    for i, (rel, size) in enumerate(sorted(sizes.items())):
        write_payload(data_root / name if single else data_root / name / rel, size, seed=i + 1)
    raw = make_lt_torrent(data_root, name, tmp_path / f"{name}.torrent", piece_length=piece_length,
                          version=version)
    return raw, data_root


def lt_view(raw: bytes):
    """libtorrent's files (pad files left out) and piece sizes."""
    ti = lt.torrent_info(raw)
    layout = ti.files()
    files = [(layout.file_path(i), layout.file_size(i), layout.file_offset(i))
             for i in range(layout.num_files()) if not layout.file_flags(i) & lt.file_storage.flag_pad_file]
    return ti, files, [ti.piece_size(i) for i in range(ti.num_pieces())]


def our_path(info, entry: FileEntry) -> str:
    return "/".join((info.name, *entry.path)) if info.multi_file else info.name


@pytest.mark.parametrize("version", ["v1", "v2", "hybrid"])
@pytest.mark.parametrize("name", list(LAYOUTS))
def test_libtorrent_torrents_read_as_libtorrent_reads_them(tmp_path, name, version):
    raw, data_root = make(tmp_path, name, version)
    torrent = parse_torrent(raw)
    info = torrent.info
    ti, lt_files, lt_piece_sizes = lt_view(raw)
    v1_hex, v2_hex = lt_info_hashes(raw)

    assert info.version == version
    assert info.meta_version == (1 if version == "v1" else 2)
    if version == "v1":
        assert info.info_hash.hex() == v1_hex and info.info_hash_v2 is None
    elif version == "v2":
        assert info.info_hash_v2.hex() == v2_hex and info.info_hash == info.info_hash_v2[:20]
        assert info.piece_hashes == ()
    else:
        assert info.info_hash.hex() == v1_hex and info.info_hash_v2.hex() == v2_hex
    assert info.info_hash_v2 is None or info.info_hash_v2 == hashlib.sha256(info.raw).digest()

    # files: paths, sizes and offsets as libtorrent has them; padding is no file
    assert [(our_path(info, f), f.length, f.offset) for f in info.files] == lt_files
    assert info.total_length == sum(size for _, size, _ in lt_files)
    # the pieces on the wire: count and every size
    assert info.piece_count == ti.num_pieces()
    assert [info.piece_size(i) for i in range(info.piece_count)] == lt_piece_sizes
    if version != "v1":
        for f in info.files:
            assert (f.pieces_root is None) == (f.length == 0)
        big = {f.pieces_root for f in info.files if f.length > info.piece_length}
        assert set(info.piece_layers) == big
    for i in range(info.piece_count if version != "v2" else 0):
        assert info.piece_hashes[i] == ti.hash_for_piece(i)

    # every piece of the real data passes the hash check (SHA-1, merkle, or both)
    check = PieceCheck(info)
    single = list(LAYOUTS[name][0]) == [name]
    blobs = {f: (data_root / name if single else (data_root / name).joinpath(*f.path)).read_bytes()
             for f in info.files}
    for index in range(info.piece_count):
        start = index * info.piece_length
        data = read_stream(info.files, start, info.piece_size(index), info.file_offsets,
                           lambda span: blobs[span.file][span.file_offset:span.file_offset + span.length])
        assert check.can_check(index)
        assert check.matches(index, data), f"piece {index}"


@pytest.mark.parametrize("version", ["v1", "v2", "hybrid"])
@pytest.mark.parametrize("single", [False, True])
def test_executable_files_are_the_ones_libtorrent_marks(tmp_path, version, single):
    """BEP 47's attr "x", wherever each layout keeps it: a v1 file list's entries, a
    single file's info dict, a v2 file tree's leaves."""
    data_root = tmp_path / "data"
    sizes = {"tool": 20_000} if single else {"run.sh": 20_000, "lib/tool": 5, "notes": 3, "empty": 0}
    base = data_root / "tool" if single else data_root / "exe"
    for i, (rel, size) in enumerate(sorted(sizes.items())):
        path = base if single else base / rel
        write_payload(path, size, seed=i + 1)
        path.chmod(0o755 if rel in ("tool", "run.sh", "lib/tool") else 0o644)
    raw = make_lt_torrent(data_root, base.name, tmp_path / "x.torrent", piece_length=PL, version=version)
    info = parse_torrent(raw).info
    ti = lt.torrent_info(raw)
    layout = ti.files()
    lt_marked = {layout.file_path(i) for i in range(layout.num_files())
                 if layout.file_flags(i) & lt.file_storage.flag_executable}
    ours = {our_path(info, f) for f in info.files if f.executable}
    assert ours == lt_marked
    assert ours == ({"tool"} if single else {os.path.join("exe", "run.sh"), os.path.join("exe", "lib", "tool")})


@pytest.mark.parametrize("version", ["v2", "hybrid"])
def test_metadata_alone_has_no_piece_layers(tmp_path, version):
    """A magnet's metadata is the info dict alone: layers come later, from peers."""
    raw, _ = make(tmp_path, "album", version)
    info = parse_info(bencode(bdecode(raw)[b"info"]))
    assert info.piece_layers == {}
    assert parse_torrent(raw).info == info     # the same torrent (layers are not compared)


def test_single_file_v2_is_named_by_its_tree_key(tmp_path):
    """libtorrent makes a v2 torrent of a directory holding one file as a single-file
    torrent named after the file (BEP 52: one file at the tree's root); `name` is advisory."""
    raw, _ = make(tmp_path, "lonely", "v2")
    meta = bdecode(raw)
    assert meta[b"info"][b"name"] == b"lonely" and list(meta[b"info"][b"file tree"]) == [b"only.bin"]
    info = parse_torrent(raw).info
    assert not info.multi_file
    assert info.name == "only.bin" == lt.torrent_info(raw).name()
    assert info.files == (FileEntry(("only.bin",), 100, 0, info.files[0].pieces_root),)
    assert default_output(info) == "only.bin"
    # the hybrid of the same directory keeps its v1 list, so it is multi-file: lonely/only.bin
    hybrid = parse_torrent(make(tmp_path / "h", "lonely", "hybrid")[0]).info
    assert hybrid.multi_file and hybrid.name == "lonely" and hybrid.files[0].path == ("only.bin",)


# --- hand-built v2 info dicts ------------------------------------------------------------------

def content(size: int, seed: int = 1) -> bytes:
    return bytes((seed * 7 + i * 13) % 251 for i in range(size))


def tree_file(data: bytes, **props) -> dict:
    leaf = {b"length": len(data), **({b"pieces root": file_root(data, PL)} if data else {})}
    leaf.update(props)
    return {b"": leaf}


A, B, C = content(40_000, 1), content(100, 2), content(0)    # A spans 3 pieces of 16 KiB


def tree() -> dict:
    return {b"a.bin": tree_file(A), b"d": {b"b.txt": tree_file(B), b"e": tree_file(C)}}


def v2_info(**overrides) -> dict:
    info = {b"file tree": tree(), b"meta version": 2, b"name": b"t", b"piece length": PL}
    info.update({k.replace("_", " ").encode(): v for k, v in overrides.items()})
    return {k: v for k, v in info.items() if v is not None}


def layers() -> dict:
    return {file_root(A, PL): b"".join(piece_layer_of(A, PL))}


def torrent(info: dict, piece_layers=None, *, raw_info: bytes | None = None) -> bytes:
    """A .torrent: the info dict (or raw bytes for it) and `piece layers` beside it."""
    raw_info = bencode(info) if raw_info is None else raw_info
    tail = b"" if piece_layers is None else b"12:piece layers" + bencode(piece_layers)
    return b"d4:info" + raw_info + tail + b"e"


def sha1_pieces(stream: bytes) -> bytes:
    return b"".join(hashlib.sha1(stream[i:i + PL]).digest() for i in range(0, len(stream), PL))


def hybrid_info(pad_after_last: bool = True, **overrides) -> dict:
    """The hand-built tree as a hybrid: files a.bin (40000), pad, d/b.txt, pad, d/e."""
    pad1, pad2 = 3 * PL - len(A), PL - len(B)
    files = [{b"length": len(A), b"path": [b"a.bin"]},
             {b"attr": b"p", b"length": pad1, b"path": [b".pad", str(pad1).encode()]},
             {b"length": len(B), b"path": [b"d", b"b.txt"]}]
    if pad_after_last:
        files.append({b"attr": b"p", b"length": pad2, b"path": [b".pad", str(pad2).encode()]})
    files.append({b"length": 0, b"path": [b"d", b"e"]})
    stream = A + bytes(pad1) + B + (bytes(pad2) if pad_after_last else b"")
    return v2_info(**{"files": files, "pieces": sha1_pieces(stream), **overrides})


def test_hand_built_v2_torrent():
    raw_info = bencode(v2_info())
    info = parse_torrent(torrent(v2_info(), layers())).info
    assert info.version == "v2" and info.multi_file and info.name == "t"
    assert info.info_hash_v2 == hashlib.sha256(raw_info).digest()
    assert info.info_hash == info.info_hash_v2[:20]
    assert info.files == (FileEntry(("a.bin",), 40_000, 0, file_root(A, PL)),
                          FileEntry(("d", "b.txt"), 100, 3 * PL, file_root(B, PL)),
                          FileEntry(("d", "e"), 0, 4 * PL, None))
    assert info.padded_length == 4 * PL and info.total_length == 40_100
    assert info.piece_count == 4 and {info.piece_size(i) for i in range(4)} == {PL}
    assert info.piece_layers == {file_root(A, PL): tuple(piece_layer_of(A, PL))}


def test_hand_built_hybrid_with_and_without_tail_padding():
    for tail in (True, False):
        info = parse_torrent(torrent(hybrid_info(pad_after_last=tail), layers())).info
        assert info.version == "hybrid"
        assert [f.offset for f in info.files] == [0, 3 * PL, 4 * PL]
        assert info.padded_length == (4 * PL if tail else 3 * PL + len(B))
        assert info.piece_count == 4


def test_single_file_hybrid_uses_length():
    info = v2_info(file_tree={b"t": tree_file(A)}, length=len(A), pieces=sha1_pieces(A))
    parsed = parse_torrent(torrent(info, layers())).info
    assert not parsed.multi_file and parsed.version == "hybrid"
    assert parsed.files == (FileEntry(("t",), len(A), 0, file_root(A, PL)),)
    assert [parsed.piece_size(i) for i in range(3)] == [PL, PL, len(A) - 2 * PL]


def test_unknown_keys_are_ignored():
    info = v2_info(comment=b"x", file_tree={**tree(), b"z": {b"": {b"length": 0, b"mtime": 5}}})
    extra_layers = {**layers(), b"\x01" * 32: b"junk"}
    assert len(parse_torrent(torrent(info, extra_layers)).info.files) == 4


def test_v1_pad_files_are_gaps():
    files = [{b"length": 10, b"path": [b"a"]}, {b"attr": b"p", b"length": 6, b"path": [b".pad", b"6"]},
             {b"length": 4, b"path": [b"b"]}]
    info = parse_info(bencode({b"files": files, b"name": b"v1", b"piece length": 16,
                               b"pieces": hashlib.sha1(b"x").digest() * 2}))
    assert info.version == "v1"
    assert info.files == (FileEntry(("a",), 10, 0), FileEntry(("b",), 4, 16))
    assert info.total_length == 14 and info.padded_length == 20 and info.piece_count == 2
    only_pads = [{b"attr": b"p", b"length": 6, b"path": [b"x"]}]
    with pytest.raises(MetainfoError, match="only pad files"):
        parse_info(bencode({b"files": only_pads, b"name": b"v1", b"piece length": 16,
                            b"pieces": hashlib.sha1(b"x").digest()}))


def bad(tree_value=None, **overrides) -> dict:
    return v2_info(file_tree=tree_value, **overrides) if tree_value is not None else v2_info(**overrides)


BAD_INFO = {
    "meta version 3": (bad(meta_version=3), "meta version"),
    "meta version 0": (bad(meta_version=0), "meta version"),
    "meta version a string": (bad(meta_version=b"2"), "meta version"),
    "file tree without meta version": (bad(meta_version=None, length=1, pieces=b"\x00" * 20), "meta version"),
    "meta version 2 without file tree": (bad(file_tree=None), "file tree"),
    "piece length not a power of two": (bad(piece_length=3 * PL), "power of two"),
    "piece length under 16 KiB": (bad(piece_length=8 * KIB), "power of two"),
    "file tree not a dictionary": (bad([b"a"]), "file tree"),
    "empty file tree": (bad({}), "file tree"),
    "root is a file": (bad({b"": {b"length": 0}}), "root"),
    "entry not a dictionary": (bad({b"a": 5}), "not a dictionary"),
    "file properties not a dictionary": (bad({b"a": {b"": 5}}), "properties"),
    "file and directory at once": (bad({b"a": {b"": {b"length": 0}, b"b": tree_file(C)}}),
                                   "both a file and a directory"),
    "empty directory": (bad({b"a": tree_file(B), b"d": {}}), "empty"),
    "length missing": (bad({b"a": {b"": {b"pieces root": file_root(B, PL)}}}), "length"),
    "length negative": (bad({b"a": {b"": {b"length": -1}}}), "length"),
    "length a string": (bad({b"a": {b"": {b"length": b"100", b"pieces root": file_root(B, PL)}}}), "length"),
    "pieces root missing": (bad({b"a": {b"": {b"length": 100}}}), "pieces root"),
    "pieces root 31 bytes": (bad({b"a": {b"": {b"length": 100, b"pieces root": b"\x01" * 31}}}), "pieces root"),
    "pieces root not a string": (bad({b"a": {b"": {b"length": 100, b"pieces root": 7}}}), "pieces root"),
    "pieces root on an empty file": (bad({b"a": {b"": {b"length": 0, b"pieces root": b"\x01" * 32}}}),
                                     "pieces root"),
    "pad file in the tree": (bad({b"a": tree_file(B, attr=b"p")}), "pad file"),
    "dot-dot": (bad({b"..": tree_file(B)}), "unsafe"),
    "dot": (bad({b"d": {b".": tree_file(B)}}), "unsafe"),
    "slash": (bad({b"a/b": tree_file(B)}), "unsafe"),
    "backslash": (bad({b"a\\b": tree_file(B)}), "unsafe"),
    "drive letter": (bad({b"C:": {b"x": tree_file(B)}}), "unsafe"),
    "NUL": (bad({b"a\x00": tree_file(B)}), "unsafe"),
    "same path twice once decoded": (bad({b"\xc3\xa9": tree_file(B), b"\xe9": tree_file(B)}), "repeats"),
    "unsafe name": (bad(name=b".."), "unsafe"),
    "v2 with files but no pieces": (bad(files=[{b"length": 1, b"path": [b"a"]}]), "pieces"),
    "v2 with length but no pieces": (bad(length=1), "pieces"),
}


@pytest.mark.parametrize("case", list(BAD_INFO))
def test_bad_v2_info_is_refused(case):
    info, message = BAD_INFO[case]
    with pytest.raises(MetainfoError, match=message):
        parse_info(bencode(info))


def test_unsorted_tree_keys_are_refused():
    raw = bencode_given({b"file tree": {b"b": tree_file(B), b"a": tree_file(B)}, b"meta version": 2,
                         b"name": b"t", b"piece length": PL})
    with pytest.raises(MetainfoError, match="sorted order"):
        parse_info(raw)
    deep = bencode_given({b"file tree": {b"d": {b"y": tree_file(B), b"x": tree_file(C)}},
                          b"meta version": 2, b"name": b"t", b"piece length": PL})
    with pytest.raises(MetainfoError, match="under d"):
        parse_info(deep)


def hybrid_files(**changes) -> list:
    files = hybrid_info()[b"files"]
    for index, value in changes.items():
        i = int(index[1:])
        if value is None:
            del files[i]
        else:
            files[i] = value
    return files


BAD_HYBRID = {
    "wrong piece count": (hybrid_info(pieces=sha1_pieces(A)), "piece hashes"),
    "v1 path differs": (hybrid_info(files=hybrid_files(f2={b"length": 100, b"path": [b"d", b"B.txt"]})),
                        "d/B.txt"),
    "v1 size differs": (hybrid_info(files=hybrid_files(f2={b"length": 99, b"path": [b"d", b"b.txt"]})),
                        "99 bytes in v1"),
    "v1 order differs": (hybrid_info(files=[hybrid_files()[i] for i in (2, 3, 0, 1, 4)]), "v1 file 1"),
    "pad missing": (hybrid_info(files=hybrid_files(f1=None)), "at byte 40000"),
    "pad too long": (hybrid_info(files=hybrid_files(f1={b"attr": b"p", b"length": 3 * PL - len(A) + 1,
                                                        b"path": [b".pad", b"x"]})), "piece alignment"),
    "tail pad past the boundary": (hybrid_info(files=hybrid_files(f3={b"attr": b"p", b"length": 2 * PL,
                                                                      b"path": [b".pad", b"x"]})), "end at byte"),
    "extra v1 file": (hybrid_info(files=[*hybrid_files(), {b"length": 0, b"path": [b"zz"]}]), "has 4 files"),
    "pad file that is not marked": (hybrid_info(files=hybrid_files(f1={b"length": 3 * PL - len(A),
                                                                       b"path": [b".pad", b"x"]})), "4 files"),
    "single file named otherwise": (v2_info(file_tree={b"t": tree_file(A)}, name=b"u", length=len(A),
                                            pieces=sha1_pieces(A)), "v1 file 1 is u"),
    "single-file v1 view of a multi-file tree": (v2_info(length=len(A), pieces=sha1_pieces(A)), "1 files"),
}


@pytest.mark.parametrize("case", list(BAD_HYBRID))
def test_bad_hybrid_is_refused(case):
    info, message = BAD_HYBRID[case]
    with pytest.raises(MetainfoError, match=message):
        parse_info(bencode(info))


@pytest.mark.parametrize("case,layer_value,message", [
    ("no piece layers at all", None, "lacks the layer of a.bin"),
    ("not a dictionary", [b"x"], "must be a dictionary"),
    ("layer missing", {b"\x02" * 32: b"\x00" * 96}, "lacks the layer of a.bin"),
    ("layer too short", {file_root(A, PL): b"".join(piece_layer_of(A, PL))[:-32]}, "is 64 bytes, expected 96"),
    ("layer too long", {file_root(A, PL): b"".join(piece_layer_of(A, PL)) + b"\x00" * 32}, "128 bytes"),
    ("layer not a string", {file_root(A, PL): 5}, "not a string"),
    ("layer does not match the root", {file_root(A, PL): b"\x00" * 96}, "does not match its pieces root"),
])
def test_bad_piece_layers_are_refused(case, layer_value, message):
    with pytest.raises(MetainfoError, match=message):
        parse_torrent(torrent(v2_info(), layer_value))


def test_files_of_one_piece_need_no_layer():
    info = v2_info(file_tree={b"a": tree_file(content(PL)), b"b": tree_file(B)})
    assert parse_torrent(torrent(info)).info.piece_layers == {}


def test_libtorrent_piece_layers_tampered(tmp_path):
    """A real torrent with one hash of a piece layer changed is refused."""
    raw, _ = make(tmp_path, "album", "v2")
    meta = bdecode(raw)
    (root, blob), = [(k, v) for k, v in meta[b"piece layers"].items() if len(v) == 96]
    meta[b"piece layers"][root] = blob[:32] + os.urandom(32) + blob[64:]
    with pytest.raises(MetainfoError, match="does not match its pieces root"):
        parse_torrent(bencode(meta))


def test_a_claimed_size_of_too_many_pieces_is_refused():
    """No hash bounds a v2 torrent's claimed size: past libtorrent's limit it is refused."""
    limit = 0x200000 * PL
    ok = parse_info(bencode(v2_info(file_tree={b"a": {b"": {b"length": limit, b"pieces root": b"\x01" * 32}}})))
    assert ok.piece_count == 0x200000
    with pytest.raises(MetainfoError, match="more than 2097152 pieces"):
        parse_info(bencode(v2_info(file_tree={b"a": {b"": {b"length": limit + 1, b"pieces root": b"\x01" * 32}}})))
