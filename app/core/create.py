"""Making a torrent (BEP 3, BEP 12, BEP 27): the metainfo from a file list and piece hashes.

Pure: the caller walks the disk and hashes the pieces (app/io/create.py); this
module only decides the layout and the fields, and encodes them. The output is
deterministic (sorted files, no creation date unless one is given), so the same
content always gives the same info hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from app.core import bencode
from app.core.errors import MetainfoError
from app.core.magnet import format_magnet

KIB = 1024
MIB = 1024 * KIB
MIN_PIECE_LENGTH = 16 * KIB       # the block size peers request; smaller pieces make no sense
MAX_AUTO_PIECE_LENGTH = 16 * MIB  # what mktorrent and transmission stop at
MAX_PIECE_LENGTH = 256 * MIB      # explicit choices may go further, as mktorrent allows
TARGET_MAX_PIECES = 2000          # aim at 1000-2000 pieces: small enough a .torrent, fine enough a grain
HASH_LENGTH = 20

TorrentVersion = Literal["v1", "v2", "hybrid"]  # BEP 3, BEP 52 only, or both (app.core.create_v2)


class FileSpec(NamedTuple):
    """One file to share: its path parts below the torrent's root directory and its size.
    A single-file torrent is given as exactly one FileSpec with path () -- the file is the root."""
    path: tuple[str, ...]
    length: int


@dataclass(frozen=True)
class CreateOptions:
    trackers: tuple[tuple[str, ...], ...] = ()  # tiers (BEP 12); see tracker_tiers()
    piece_length: int | None = None             # None: auto_piece_length()
    private: bool = False                       # BEP 27: peers only from the trackers
    comment: str | None = None
    created_by: str | None = None
    creation_date: int | None = None            # Unix time; None keeps the output reproducible
    web_seeds: tuple[str, ...] = ()             # BEP 19 url-list: HTTP(S) mirrors of the data
    version: TorrentVersion = "v1"


@dataclass(frozen=True)
class CreatedTorrent:
    data: bytes        # the bencoded .torrent file
    info_hash: bytes   # the one on the wire: SHA-1 (v1, hybrid) or truncated SHA-256 (v2 only)
    magnet: str
    info_hash_v2: bytes | None = None  # the whole SHA-256 of a v2 or hybrid info dict


def tracker_tiers(urls: Iterable[str]) -> tuple[tuple[str, ...], ...]:
    """One tier per URL, as mktorrent does; a URL with commas ("a,b") is one tier of several."""
    tiers = []
    for text in urls:
        tier = tuple(u.strip() for u in text.split(",") if u.strip())
        if tier:
            tiers.append(tier)
    return tuple(tiers)


def auto_piece_length(total_length: int) -> int:
    """The smallest power of two from 16 KiB that keeps the count at most ~2000 pieces
    (so between ~1000 and 2000), capped at 16 MiB for very large content."""
    piece_length = MIN_PIECE_LENGTH
    while piece_length < MAX_AUTO_PIECE_LENGTH and total_length > piece_length * TARGET_MAX_PIECES:
        piece_length *= 2
    return piece_length


def check_piece_length(piece_length: int) -> int:
    """An explicit piece length must be a power of two from 16 KiB to 256 MiB."""
    power_of_two = piece_length > 0 and piece_length & (piece_length - 1) == 0
    if not power_of_two or not MIN_PIECE_LENGTH <= piece_length <= MAX_PIECE_LENGTH:
        raise MetainfoError(f"piece length {piece_length} must be a power of two "
                            f"from {MIN_PIECE_LENGTH} to {MAX_PIECE_LENGTH}")
    return piece_length


def piece_count(total_length: int, piece_length: int) -> int:
    return -(-total_length // piece_length)


def sorted_files(files: Iterable[tuple[Sequence[str], int]]) -> tuple[FileSpec, ...]:
    """Validate the file list and sort it by path parts, so directory order never
    changes the info hash."""
    specs = tuple(sorted(FileSpec(tuple(path), length) for path, length in files))
    if not specs:
        raise MetainfoError("nothing to share: no files")
    for spec in specs:
        if spec.length < 0:
            raise MetainfoError(f"{'/'.join(spec.path)} has a negative length")
        for part in spec.path:
            check_path_part(part)
    if len(specs) > 1 and any(not s.path for s in specs):
        raise MetainfoError("a single-file entry (empty path) cannot be mixed with others")
    for before, after in zip(specs, specs[1:]):
        if before.path == after.path:
            raise MetainfoError(f"{'/'.join(after.path)} is listed twice")
        if after.path[:len(before.path)] == before.path:
            raise MetainfoError(f"{'/'.join(before.path)} is both a file and a directory")
    if sum(s.length for s in specs) == 0:
        raise MetainfoError("nothing to share: every file is empty")
    return specs


def check_path_part(part: str) -> str:
    """The same rule metainfo parsing applies: no part may escape the download directory."""
    unsafe = (part in ("", ".", "..") or "/" in part or "\\" in part or "\0" in part
              or (len(part) >= 2 and part[1] == ":" and part[0].isalpha()))
    if unsafe:
        raise MetainfoError(f"unsafe path component {part!r}")
    try:
        part.encode("utf-8")
    except UnicodeEncodeError as exc:  # undecodable bytes in a file name (surrogate escapes)
        raise MetainfoError(f"path component {part!r} is not valid UTF-8") from exc
    return part


def build_info(name: str, files: Sequence[FileSpec], piece_length: int,
               piece_hashes: Sequence[bytes], *, private: bool = False,
               executable: Collection[tuple[str, ...]] = ()) -> dict[bytes, Any]:
    """The `info` dict. `files` must come from sorted_files(); the hashes must cover
    the files' bytes concatenated in that order. Files whose path is in `executable`
    get BEP 47's attr "x", as libtorrent marks them."""
    check_path_part(name)
    total = sum(f.length for f in files)
    if piece_count(total, piece_length) != len(piece_hashes):
        raise MetainfoError(f"{len(piece_hashes)} piece hashes for {total} bytes in "
                            f"pieces of {piece_length}")
    if any(len(h) != HASH_LENGTH for h in piece_hashes):
        raise MetainfoError("every piece hash must be 20 bytes (SHA-1)")
    info: dict[bytes, Any] = {b"name": name.encode(), b"piece length": piece_length,
                              b"pieces": b"".join(piece_hashes)}
    def attrs(f: FileSpec) -> dict[bytes, Any]:
        return {b"attr": b"x"} if f.path in executable else {}
    if len(files) == 1 and not files[0].path:
        info.update(attrs(files[0]))
        info[b"length"] = files[0].length
    else:
        info[b"files"] = [{**attrs(f), b"length": f.length, b"path": [p.encode() for p in f.path]}
                          for f in files]
    if private:
        info[b"private"] = 1
    return info


def build_metainfo(info: dict[bytes, Any], options: CreateOptions) -> dict[bytes, Any]:
    """The whole .torrent: the info dict plus trackers and the optional descriptive fields."""
    meta: dict[bytes, Any] = {b"info": info}
    urls = [url for tier in options.trackers for url in tier]
    if urls:
        meta[b"announce"] = urls[0].encode()
    if len(urls) > 1:  # like mktorrent and libtorrent: a lone tracker needs no list
        meta[b"announce-list"] = [[u.encode() for u in tier] for tier in options.trackers]
    if options.web_seeds:
        meta[b"url-list"] = [u.encode() for u in options.web_seeds]
    if options.comment:
        meta[b"comment"] = options.comment.encode()
    if options.created_by:
        meta[b"created by"] = options.created_by.encode()
    if options.creation_date is not None:
        meta[b"creation date"] = options.creation_date
    return meta


def create_torrent(name: str, files: Sequence[FileSpec], piece_length: int,
                   piece_hashes: Sequence[bytes], options: CreateOptions,
                   executable: Collection[tuple[str, ...]] = ()) -> CreatedTorrent:
    """Encode the .torrent; the info hash is taken over the info dict exactly as written."""
    info = build_info(name, files, piece_length, piece_hashes, private=options.private, executable=executable)
    raw_info = bencode.encode(info)
    info_hash = hashlib.sha1(raw_info).digest()
    data = bencode.encode(build_metainfo(info, options))  # keys sorted: info is written as hashed
    trackers = [url for tier in options.trackers for url in tier]
    return CreatedTorrent(data, info_hash, format_magnet(info_hash, name, trackers))


def choose_piece_length(total_length: int, requested: int | None) -> int:
    return auto_piece_length(total_length) if requested is None else check_piece_length(requested)
