"""Torrent metainfo (BEP 3, BEP 12, BEP 52): parse, validate, and compute the info hash.

`parse_info` validates an info dict given as its raw bytes. It serves both
.torrent files and metadata fetched from peers for magnet links (BEP 9).

v2 and hybrid torrents (BEP 52) start every file at a piece boundary. The
torrent's byte stream is then the files in order with zero padding between
them (BEP 47 pad files in a hybrid's v1 list, implied in a v2 one); padding
is never stored, so `files` lists real files only and their offsets have gaps.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, TypeVar

from app.core import bencode
from app.core.errors import BencodeError, MetainfoError
from app.core.file_tree import (
    aligned_offsets,
    check_hybrid_agreement,
    is_executable,
    path_part,
    refuse_file_directory_clash,
    walk_file_tree,
)
from app.core.file_tree import (
    is_safe_name as is_safe_name,  # re-exported: the path rule's home is file_tree
)
from app.core.magnet import web_seed_urls
from app.core.merkle import BLOCK_SIZE, HASH_SIZE, pieces_in_file, root_from_piece_layer, split_layer

HASH_LENGTH = 20
# A v2 torrent's size is only claimed (no per-piece hash bounds it, as v1's `pieces` does),
# so more pieces than this are refused: libtorrent's default limit when loading torrents.
MAX_V2_PIECES = 0x200000
T = TypeVar("T")


@dataclass(frozen=True)
class FileEntry:
    """One file of the torrent: its relative path parts, size, and offset in the byte stream."""
    path: tuple[str, ...]
    length: int
    offset: int
    pieces_root: bytes | None = None   # v2: the file's merkle root (None for v1 and empty files)
    executable: bool = False           # BEP 47's attr "x": created with the execute bits


@dataclass(frozen=True)
class Info:
    """The validated `info` dictionary."""
    info_hash: bytes             # the 20 bytes peers, trackers and the DHT know the torrent by
    name: str
    piece_length: int
    piece_hashes: tuple[bytes, ...]   # v1 SHA-1 hashes; empty for a v2-only torrent
    files: tuple[FileEntry, ...]      # real files only: padding is not a file
    multi_file: bool
    raw: bytes
    private: bool = False
    meta_version: int = 1
    info_hash_v2: bytes | None = None  # SHA-256 of the info dict, for v2 and hybrid torrents
    padded_length: int | None = None   # the stream's length with padding, when files are aligned
    # v2: each file's piece layer by pieces root, for files larger than one piece. Not in the
    # info dict: a .torrent carries them beside it, a magnet download fetches them from peers.
    piece_layers: Mapping[bytes, tuple[bytes, ...]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def version(self) -> str:
        """"v1", "v2" or "hybrid" (both a v1 piece list and a v2 file tree)."""
        if self.meta_version < 2:
            return "v1"
        return "hybrid" if self.piece_hashes else "v2"

    @cached_property
    def file_offsets(self) -> tuple[int, ...]:
        return tuple(f.offset for f in self.files)

    @cached_property
    def total_length(self) -> int:
        """Bytes of real data (what `left` counts), padding excluded."""
        return sum(f.length for f in self.files)

    @property
    def stream_length(self) -> int:
        """Bytes the pieces cover: the data plus any padding between aligned files."""
        return self.total_length if self.padded_length is None else self.padded_length

    @cached_property
    def piece_count(self) -> int:
        return -(-self.stream_length // self.piece_length)

    def piece_size(self, index: int) -> int:
        """Size of piece `index` on the wire; every piece is full except perhaps the last."""
        if not 0 <= index < self.piece_count:
            raise MetainfoError(f"piece index {index} out of range 0..{self.piece_count - 1}")
        return min(self.piece_length, self.stream_length - index * self.piece_length)


@dataclass(frozen=True)
class Torrent:
    """A whole .torrent file: the info dict plus where to find peers."""
    info: Info
    announce: str | None
    announce_list: tuple[tuple[str, ...], ...] = ()
    web_seeds: tuple[str, ...] = ()    # BEP 19 url-list: HTTP(S) mirrors

    @property
    def trackers(self) -> tuple[tuple[str, ...], ...]:
        """Tracker tiers (BEP 12): `announce-list` if present, else `announce` alone."""
        if self.announce_list:
            return self.announce_list
        return ((self.announce,),) if self.announce else ()


def info_hash(raw_info: bytes) -> bytes:
    return hashlib.sha1(raw_info).digest()


def parse_torrent(data: bytes) -> Torrent:
    """Parse .torrent bytes. The hash is taken over the info dict's bytes as they stand.
    A v2 or hybrid torrent's `piece layers` (beside the info dict) are checked here."""
    try:
        top, raw = bencode.decode_dict_with_raw(data)
    except BencodeError as exc:
        raise MetainfoError(f"not a torrent file: {exc}") from exc
    if b"info" not in raw:
        raise MetainfoError("torrent has no 'info' dictionary")
    decoded = top[b"info"]   # decoded and checked already: parse_info need not decode it again
    info = parse_info(raw[b"info"], decoded if isinstance(decoded, dict) else None)
    if info.meta_version >= 2:
        info = replace(info, piece_layers=_piece_layers(top.get(b"piece layers"), info))
    announce = _optional_text(top, b"announce")
    return Torrent(info=info, announce=announce, announce_list=_announce_list(top),
                   web_seeds=_url_list(top))


def parse_info(raw_info: bytes, decoded: dict[bytes, Any] | None = None) -> Info:
    """Validate an info dict (raw bencoded bytes) and build an `Info`: v1, v2 or hybrid.
    A v2 torrent's piece layers are not in the info dict: they stay empty here.
    `decoded`: the same dict already decoded (with the same checks) by the caller."""
    info = decoded if decoded is not None else bencode.decode_dict(raw_info, MetainfoError, "'info'")
    name = path_part(_require(info, b"name", bytes, "info.name"), "info.name")
    piece_length = _require(info, b"piece length", int, "info.piece length")
    if piece_length <= 0:
        raise MetainfoError("'piece length' must be positive")
    version = info.get(b"meta version", 1)
    if version not in (1, 2) or isinstance(version, bool):
        raise MetainfoError(f"unsupported 'meta version' {version!r} (1 and 2 are known)")
    if version == 2:
        return _parse_v2(info, raw_info, name, piece_length)
    if b"file tree" in info:
        raise MetainfoError("'file tree' needs 'meta version' 2")
    hashes = _piece_hashes(info)
    files, multi_file, stream_length = _v1_files(info, name)
    _check_piece_count(hashes, stream_length, piece_length)
    return Info(info_hash=info_hash(raw_info), name=name, piece_length=piece_length,
                piece_hashes=hashes, files=files, multi_file=multi_file, raw=raw_info,
                private=info.get(b"private") == 1,
                padded_length=stream_length if stream_length != sum(f.length for f in files) else None)


def _parse_v2(info: dict[bytes, Any], raw_info: bytes, name: str, piece_length: int) -> Info:
    """A v2 torrent (`file tree`), or a hybrid one (also v1 `pieces` with `files` or `length`)."""
    if piece_length < BLOCK_SIZE or piece_length & (piece_length - 1):
        raise MetainfoError(f"'piece length' {piece_length} must be a power of two of at least "
                            f"{BLOCK_SIZE} in a v2 torrent")
    if b"file tree" not in info:
        raise MetainfoError("a 'meta version' 2 torrent must have a 'file tree'")
    tree = walk_file_tree(info[b"file tree"])
    offsets, stream_length = aligned_offsets([f.length for f in tree], piece_length)
    if stream_length // piece_length > MAX_V2_PIECES:
        raise MetainfoError(f"{stream_length} bytes in pieces of {piece_length} is more than "
                            f"{MAX_V2_PIECES} pieces")
    files = tuple(FileEntry(f.path, f.length, offset, f.pieces_root, f.executable)
                  for f, offset in zip(tree, offsets, strict=True))
    # BEP 52 and libtorrent: one file at the root of the tree, and no v1 file list, is a
    # single-file torrent. The file is named by its key in the tree (`name` is advisory).
    multi_file = b"files" in info or len(tree) != 1 or len(tree[0].path) != 1
    hashes: tuple[bytes, ...] = ()
    if b"pieces" in info:
        hashes = _piece_hashes(info)
        v1_files, _, v1_length = _v1_files(info, name)
        check_hybrid_agreement([(f.path, f.length, f.offset) for f in v1_files], v1_length,
                               [(f.path, f.length, f.offset) for f in files], stream_length)
        stream_length = v1_length   # the wire's pieces are the v1 stream's (libtorrent agrees)
        _check_piece_count(hashes, stream_length, piece_length)
    elif b"files" in info or b"length" in info:
        raise MetainfoError("a v2 torrent with a v1 'files' or 'length' must also have 'pieces' (hybrid)")
    digest = hashlib.sha256(raw_info).digest()
    return Info(info_hash=info_hash(raw_info) if hashes else digest[:HASH_LENGTH],
                name=name if multi_file else tree[0].path[0], piece_length=piece_length,
                piece_hashes=hashes, files=files, multi_file=multi_file, raw=raw_info,
                private=info.get(b"private") == 1, meta_version=2, info_hash_v2=digest,
                padded_length=stream_length)


def _piece_hashes(info: dict[bytes, Any]) -> tuple[bytes, ...]:
    pieces = _require(info, b"pieces", bytes, "info.pieces")
    if len(pieces) % HASH_LENGTH:
        raise MetainfoError("'pieces' length is not a multiple of 20")
    return tuple(pieces[i:i + HASH_LENGTH] for i in range(0, len(pieces), HASH_LENGTH))


def _check_piece_count(hashes: tuple[bytes, ...], stream_length: int, piece_length: int) -> None:
    expected = -(-stream_length // piece_length)
    if len(hashes) != expected:
        raise MetainfoError(f"{len(hashes)} piece hashes for {stream_length} bytes; expected {expected}")


def _v1_files(info: dict[bytes, Any], name: str) -> tuple[tuple[FileEntry, ...], bool, int]:
    """The v1 view: real files (pad files are gaps), whether it is multi-file, the stream's length."""
    has_length, has_files = b"length" in info, b"files" in info
    if has_length == has_files:
        raise MetainfoError("info must have exactly one of 'length' and 'files'")
    if has_length:
        length = _length(info, "info.length")
        return (FileEntry((name,), length, 0, executable=is_executable(info.get(b"attr"))),), False, length
    files, stream_length = _file_list(info[b"files"])
    return files, True, stream_length


def _file_list(value: Any) -> tuple[tuple[FileEntry, ...], int]:
    """A v1 `files` list: the real files and the stream's length. BEP 47 pad files (`attr`
    holding "p") are zeros between files, not files: they leave gaps in the offsets."""
    if not isinstance(value, list) or not value:
        raise MetainfoError("'files' must be a non-empty list")
    entries, offset, seen = [], 0, set()
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise MetainfoError(f"files[{i}] is not a dictionary")
        length = _length(item, f"files[{i}].length")
        attr = item.get(b"attr")
        if isinstance(attr, bytes) and b"p" in attr:
            offset += length   # padding: never stored, so its path does not matter
            continue
        parts = item.get(b"path.utf-8", item.get(b"path"))
        if not isinstance(parts, list) or not parts:
            raise MetainfoError(f"files[{i}].path must be a non-empty list")
        path = tuple(path_part(p, f"files[{i}].path") for p in parts)
        if path in seen:
            raise MetainfoError(f"files[{i}].path repeats {'/'.join(path)}")
        seen.add(path)
        entries.append(FileEntry(path, length, offset, executable=is_executable(attr)))
        offset += length
    if not entries:
        raise MetainfoError("'files' holds only pad files")
    refuse_file_directory_clash(seen)
    return tuple(entries), offset


def _piece_layers(value: Any, info: Info) -> dict[bytes, tuple[bytes, ...]]:
    """`piece layers`: for each file longer than one piece, its piece-layer hashes, which
    must hash up to the file's pieces root. Layers nobody needs are ignored."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise MetainfoError("'piece layers' must be a dictionary")
    layers: dict[bytes, tuple[bytes, ...]] = {}
    for f in info.files:
        if f.length <= info.piece_length or f.pieces_root is None or f.pieces_root in layers:
            continue
        shown = "/".join(f.path)
        blob = value.get(f.pieces_root)
        if blob is None:
            raise MetainfoError(f"'piece layers' lacks the layer of {shown}")
        expected = pieces_in_file(f.length, info.piece_length) * HASH_SIZE
        if not isinstance(blob, bytes) or len(blob) != expected:
            size = f"{len(blob)} bytes" if isinstance(blob, bytes) else "not a string"
            raise MetainfoError(f"the piece layer of {shown} is {size}, expected {expected} bytes")
        layer = split_layer(blob)
        if root_from_piece_layer(layer, info.piece_length) != f.pieces_root:
            raise MetainfoError(f"the piece layer of {shown} does not match its pieces root")
        layers[f.pieces_root] = tuple(layer)
    return layers


def default_output(info: Info, suggested_name: str | None = None) -> str:
    """Where a download goes without -o: the current directory for a multi-file
    torrent (which then gets <name>/), else a file named after the torrent.
    A magnet's dn= is a stranger's text: used only if it is a safe file name."""
    if info.multi_file:
        return "."
    return suggested_name if suggested_name and is_safe_name(suggested_name) else info.name


def _length(d: dict[bytes, Any], field: str) -> int:
    value = _require(d, b"length", int, field)
    if value < 0:
        raise MetainfoError(f"{field} is negative")
    return value


def _require(d: dict[bytes, Any], key: bytes, kind: type[T], field: str) -> T:
    if key not in d:
        raise MetainfoError(f"missing {field}")
    value = d[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise MetainfoError(f"{field} must be {'an integer' if kind is int else 'a string'}")
    return value


def _optional_text(d: dict[bytes, Any], key: bytes) -> str | None:
    value = d.get(key)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


def _url_list(top: dict[bytes, Any]) -> tuple[str, ...]:
    """BEP 19: one URL or a list of them."""
    value = top.get(b"url-list")
    items = value if isinstance(value, list) else [value]
    return web_seed_urls(item.decode("utf-8", "replace") for item in items if isinstance(item, bytes))


def _announce_list(top: dict[bytes, Any]) -> tuple[tuple[str, ...], ...]:
    tiers = top.get(b"announce-list")
    if not isinstance(tiers, list):
        return ()
    result = []
    for tier in tiers:
        if isinstance(tier, list):
            urls = tuple(u.decode("utf-8", "replace") for u in tier if isinstance(u, bytes) and u)
            if urls:
                result.append(urls)
    return tuple(result)
