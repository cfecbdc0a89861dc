"""Making v2 and hybrid torrents (BEP 52, with BEP 47 pad files), laid out as libtorrent 2.1 does.

Pure, like app.core.create: the caller hashes the files (app/io/create.py) and
this module only lays them out and encodes them. The layout follows libtorrent's
create_torrent, so the same files and piece length give the same info dict and
info hashes:

- a hybrid lists its v1 files in the file tree's order: by path parts, each
  compared byte-wise, as v1 create sorts them. libtorrent sorts by the whole
  '/'-joined path instead, so when a name holds a character below '/' (space,
  '-', '.': "a b/x" and "a/z", or "doc.md" and "doc/x") its v1 list and its
  file tree (keys sorted, as libtorrent's generate() entry is bencoded) disagree,
  and libtorrent itself refuses that hybrid ("the v1 and v2 file metadata does
  not match"). There we differ from it on purpose;
  wherever the two orders agree our info dict is byte for byte libtorrent's;
- in a hybrid of more than one file, each non-empty file that does not end on a
  piece boundary is followed by a pad file `.pad/<N>` (attr "p"), the last file
  included, so every file starts a piece and every v1 piece is whole; a hybrid
  of one file has no padding (and, unless that file sits in a directory, keeps
  v1's `length` instead of `files`);
- `file tree` lists every file, an empty one without `pieces root`; `piece layers`
  (beside `info`) maps the root of each file longer than one piece to its layer;
- a file with its owner's execute bit set gets attr "x".
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.core import bencode
from app.core.create import HASH_LENGTH, CreatedTorrent, CreateOptions, FileSpec, build_metainfo, check_path_part
from app.core.errors import MetainfoError
from app.core.magnet import format_magnet
from app.core.merkle import HASH_SIZE, pieces_in_file, root_from_piece_layer

PAD_DIRECTORY = ".pad"

FilePath = tuple[str, ...]  # a FileSpec.path


@dataclass(frozen=True)
class FileHashes:
    """A non-empty file's v2 hashes."""
    root: bytes                          # `pieces root`
    piece_layer: tuple[bytes, ...] = ()  # only for files longer than one piece


def tree_order(files: Sequence[FileSpec]) -> tuple[FileSpec, ...]:
    """The file tree's order (bencoded keys, sorted at each level): by path parts.
    Comparing str code points is comparing their UTF-8 bytes."""
    return tuple(sorted(files, key=lambda f: f.path))


def pad_lengths(files: Sequence[FileSpec], piece_length: int) -> tuple[int, ...]:
    """The pad file after each file of a hybrid, in tree_order (0: none). Every file
    starts on a piece boundary, so the pad is what its last piece lacks."""
    if len(files) == 1:
        return (0,)
    return tuple(-f.length % piece_length for f in files)


def v1_piece_count(files: Sequence[FileSpec], piece_length: int) -> int:
    """How many SHA-1 pieces a hybrid of these files (in tree_order) has."""
    total = sum(f.length for f in files) + sum(pad_lengths(files, piece_length))
    return pieces_in_file(total, piece_length)


def _attrs(path: FilePath, executable: Collection[FilePath]) -> dict[bytes, Any]:
    return {b"attr": b"x"} if path in executable else {}


def _file_tree(name: str, files: Sequence[FileSpec], hashes: Mapping[FilePath, FileHashes],
               executable: Collection[FilePath]) -> dict[bytes, Any]:
    tree: dict[bytes, Any] = {}
    for spec in files:
        entry: dict[bytes, Any] = {**_attrs(spec.path, executable), b"length": spec.length}
        if spec.length:
            entry[b"pieces root"] = hashes[spec.path].root
        node = tree
        for part in spec.path or (name,):  # a single file sits under the torrent's name
            node = node.setdefault(part.encode(), {})
        node[b""] = entry
    return tree


def _v1_files(files: Sequence[FileSpec], piece_length: int,
              executable: Collection[FilePath]) -> list[dict[bytes, Any]]:
    entries: list[dict[bytes, Any]] = []
    for spec, pad in zip(files, pad_lengths(files, piece_length)):
        entries.append({**_attrs(spec.path, executable), b"length": spec.length,
                        b"path": [p.encode() for p in spec.path]})
        if pad:
            entries.append({b"attr": b"p", b"length": pad,
                            b"path": [PAD_DIRECTORY.encode(), str(pad).encode()]})
    return entries


def check_hashes(files: Sequence[FileSpec], piece_length: int,
                 hashes: Mapping[FilePath, FileHashes]) -> None:
    """Every non-empty file needs a root, and a piece layer of the right length that
    leads to it exactly when it is longer than one piece."""
    for spec in files:
        if not spec.length:
            continue
        where = "/".join(spec.path) or "the file"
        found = hashes.get(spec.path)
        if found is None or len(found.root) != HASH_SIZE:
            raise MetainfoError(f"{where} has no 32-byte pieces root")
        wanted = pieces_in_file(spec.length, piece_length) if spec.length > piece_length else 0
        if len(found.piece_layer) != wanted or any(len(h) != HASH_SIZE for h in found.piece_layer):
            raise MetainfoError(f"{where} needs a piece layer of {wanted} 32-byte hashes")
        if wanted and root_from_piece_layer(found.piece_layer, piece_length) != found.root:
            raise MetainfoError(f"{where}: the piece layer does not lead to the pieces root")


def build_info_v2(name: str, files: Sequence[FileSpec], piece_length: int,
                  hashes: Mapping[FilePath, FileHashes], *, v1_pieces: Sequence[bytes] | None = None,
                  private: bool = False, executable: Collection[FilePath] = ()) -> dict[bytes, Any]:
    """The `info` dict of a v2 torrent, or of a hybrid when `v1_pieces` (the SHA-1
    hashes over the files in tree_order with their pad files) is given. `files` must
    come from app.core.create.sorted_files(); `executable` holds paths to mark "x"."""
    check_path_part(name)
    files = tree_order(files)
    check_hashes(files, piece_length, hashes)
    info: dict[bytes, Any] = {b"file tree": _file_tree(name, files, hashes, executable),
                              b"meta version": 2, b"name": name.encode(), b"piece length": piece_length}
    if v1_pieces is not None:
        expected = v1_piece_count(files, piece_length)
        if len(v1_pieces) != expected or any(len(h) != HASH_LENGTH for h in v1_pieces):
            raise MetainfoError(f"a hybrid of these files needs {expected} SHA-1 piece hashes, "
                                f"not {len(v1_pieces)}")
        info[b"pieces"] = b"".join(v1_pieces)
        if len(files) == 1 and not files[0].path:
            info.update(_attrs((), executable))
            info[b"length"] = files[0].length
        else:
            info[b"files"] = _v1_files(files, piece_length, executable)
    if private:
        info[b"private"] = 1
    return info


def piece_layers(hashes: Mapping[FilePath, FileHashes]) -> dict[bytes, bytes]:
    """The top-level `piece layers`: root -> concatenated layer, for files longer than a piece."""
    return {h.root: b"".join(h.piece_layer) for h in hashes.values() if h.piece_layer}


def create_torrent_v2(name: str, files: Sequence[FileSpec], piece_length: int,
                      hashes: Mapping[FilePath, FileHashes], options: CreateOptions, *,
                      v1_pieces: Sequence[bytes] | None = None,
                      executable: Collection[FilePath] = ()) -> CreatedTorrent:
    """Encode a v2 torrent (a hybrid when `v1_pieces` is given). Its `info_hash` is the
    one peers use on the wire: SHA-1 for a hybrid, the first 20 bytes of SHA-256 for v2."""
    info = build_info_v2(name, files, piece_length, hashes, v1_pieces=v1_pieces,
                         private=options.private, executable=executable)
    raw_info = bencode.encode(info)
    info_hash_v2 = hashlib.sha256(raw_info).digest()
    info_hash_v1 = hashlib.sha1(raw_info).digest() if v1_pieces is not None else None
    meta = build_metainfo(info, options)
    meta[b"piece layers"] = piece_layers({f.path: hashes[f.path] for f in files if f.length})
    trackers = [url for tier in options.trackers for url in tier]
    return CreatedTorrent(bencode.encode(meta), info_hash_v1 or info_hash_v2[:HASH_LENGTH],
                          format_magnet(info_hash_v1, name, trackers, info_hash_v2=info_hash_v2),
                          info_hash_v2=info_hash_v2)
