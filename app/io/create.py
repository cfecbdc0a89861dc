"""Making a torrent from disk: walk the content, hash its pieces, write the .torrent.

The layout and encoding rules live in app.core.create; this module only reads.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from app.core.create import CreatedTorrent, CreateOptions, FileSpec, choose_piece_length, create_torrent, sorted_files
from app.core.create_v2 import FileHashes, create_torrent_v2, pad_lengths, tree_order
from app.core.errors import MetainfoError
from app.core.merkle import FileHasher

log = logging.getLogger(__name__)

READ_CHUNK = 1 << 20  # memory stays at one chunk whatever the piece length


@dataclass(frozen=True)
class ContentFile:
    spec: FileSpec   # where the file sits in the torrent
    source: Path     # where it is on disk


@dataclass(frozen=True)
class Content:
    name: str
    files: tuple[ContentFile, ...]  # in torrent order

    @property
    def total_length(self) -> int:
        return sum(f.spec.length for f in self.files)


def make_torrent(path: str | os.PathLike, options: CreateOptions,
                 exclude: Iterable[str | os.PathLike] = ()) -> CreatedTorrent:
    """Scan and hash the file or directory `path` and return the encoded torrent.
    Paths in `exclude` (such as the .torrent being written) are left out."""
    content = scan_content(path, exclude)
    piece_length = choose_piece_length(content.total_length, options.piece_length)
    if options.version != "v1":
        return _make_torrent_v2(content, piece_length, options)
    hashes = hash_pieces(((f.source, f.spec.length) for f in content.files), piece_length)
    executable = {f.spec.path for f in content.files if _is_executable(f.source)}
    return create_torrent(content.name, [f.spec for f in content.files], piece_length,
                          hashes, options, executable)


def scan_content(path: str | os.PathLike, exclude: Iterable[str | os.PathLike] = ()) -> Content:
    """The files to share, sorted by path. A directory is walked without following
    symlinked directories (they could loop); symlinked files count only if they
    point inside the tree; anything but regular files is skipped."""
    root = Path(os.path.abspath(path))
    if not root.name:
        raise MetainfoError(f"cannot share {root}: it has no name to give the torrent")
    if not root.is_dir():
        size = root.stat().st_size  # raises FileNotFoundError for a missing path
        if not root.is_file():
            raise MetainfoError(f"{root} is neither a regular file nor a directory")
        return Content(root.name, (ContentFile(FileSpec((), size), root),))
    skipped = {Path(os.path.realpath(p)) for p in exclude}
    found = dict(_walk_files(root, skipped))
    if not found:
        raise MetainfoError(f"{root} is an empty directory: nothing to share")
    specs = sorted_files((parts, size) for parts, (size, _) in found.items())
    return Content(root.name, tuple(ContentFile(s, found[s.path][1]) for s in specs))


def _walk_files(root: Path, skipped: set[Path]) -> Iterable[tuple[tuple[str, ...], tuple[int, Path]]]:
    real_root = Path(os.path.realpath(root))
    for directory, dirnames, filenames in os.walk(root, onerror=_raise):
        for name in dirnames:
            if os.path.islink(os.path.join(directory, name)):
                log.warning("skipping symlinked directory %s", os.path.join(directory, name))
        for name in filenames:
            source = Path(directory, name)
            size = _shareable_size(source, real_root, skipped)
            if size is not None:
                yield source.relative_to(root).parts, (size, source)


def _shareable_size(source: Path, real_root: Path, skipped: set[Path]) -> int | None:
    """The file's size, or None when it must be left out (and why, in the log)."""
    target = Path(os.path.realpath(source))
    if target in skipped:
        return None
    if source.is_symlink() and not target.is_relative_to(real_root):
        log.warning("skipping %s: its symlink leads out of the shared tree", source)
        return None
    try:
        status = source.stat()
    except FileNotFoundError:
        log.warning("skipping %s: broken symlink or removed while scanning", source)
        return None
    if not stat.S_ISREG(status.st_mode):
        log.warning("skipping %s: not a regular file", source)
        return None
    return status.st_size


def _raise(error: OSError) -> None:
    raise error  # os.walk ignores unreadable directories unless told otherwise


def read_in_pieces(path: Path, length: int, piece_length: int, filled: int = 0) -> Iterator[bytes]:
    """A file's `length` bytes in reads that never cross a piece boundary (`filled`: the
    bytes of the current piece before this file). The file must keep the size it was
    scanned with: one that shrank or grew meanwhile is an error, not a wrong hash."""
    with open(path, "rb") as handle:
        remaining = length
        while remaining:  # every pass consumes at least one byte, or raises
            chunk = handle.read(min(READ_CHUNK, piece_length - filled, remaining))
            if not chunk:
                raise MetainfoError(f"{path} shrank while it was being hashed")
            remaining -= len(chunk)
            filled = (filled + len(chunk)) % piece_length
            yield chunk
        if handle.read(1):
            raise MetainfoError(f"{path} grew while it was being hashed")


def hash_pieces(sources: Iterable[tuple[Path, int]], piece_length: int) -> list[bytes]:
    """SHA-1 of each piece of the files concatenated in order. Pieces run across file
    boundaries; each file must still have the size it was scanned with."""
    hashes: list[bytes] = []
    piece, filled = hashlib.sha1(), 0
    for path, length in sources:
        for chunk in read_in_pieces(path, length, piece_length, filled):
            piece.update(chunk)
            filled += len(chunk)
            if filled == piece_length:
                hashes.append(piece.digest())
                piece, filled = hashlib.sha1(), 0
    if filled:
        hashes.append(piece.digest())
    return hashes


def _make_torrent_v2(content: Content, piece_length: int, options: CreateOptions) -> CreatedTorrent:
    """A v2 or hybrid torrent: each file hashed once, for its merkle tree and, in a
    hybrid, for the SHA-1 pieces it fills (with its pad file's zeros)."""
    hybrid = options.version == "hybrid"
    sources = {f.spec.path: f.source for f in content.files}
    ordered = tree_order([f.spec for f in content.files])
    v1_pieces: list[bytes] = []
    hashes: dict[tuple[str, ...], FileHashes] = {}
    for spec, pad in zip(ordered, pad_lengths(ordered, piece_length)):
        if spec.length:
            hashes[spec.path] = hash_file_v2(sources[spec.path], spec.length, piece_length,
                                             v1_pieces if hybrid else None, pad)
    executable = {spec.path for spec in ordered if _is_executable(sources[spec.path])}
    return create_torrent_v2(content.name, ordered, piece_length, hashes, options,
                             v1_pieces=v1_pieces if hybrid else None, executable=executable)


def _is_executable(path: Path) -> bool:
    """libtorrent marks a file "x" when its owner may execute it (stat follows symlinks)."""
    return bool(path.stat().st_mode & stat.S_IXUSR)


def hash_file_v2(path: Path, length: int, piece_length: int, v1_pieces: list[bytes] | None = None,
                 pad: int = 0) -> FileHashes:
    """A non-empty file's merkle root and piece layer, streamed. With `v1_pieces`, also
    append the SHA-1 of each of its pieces (the file starts a piece; its last piece
    is completed by `pad` zero bytes, the pad file after it, if any)."""
    tree = FileHasher(piece_length)
    piece, filled = hashlib.sha1(), 0
    for chunk in read_in_pieces(path, length, piece_length):
        tree.update(chunk)
        if v1_pieces is not None:
            piece.update(chunk)
            filled += len(chunk)
            if filled == piece_length:
                v1_pieces.append(piece.digest())
                piece, filled = hashlib.sha1(), 0
    if v1_pieces is not None and filled:
        if pad and filled + pad != piece_length:
            raise ValueError(f"a pad of {pad} does not complete a piece holding {filled} bytes")
        zeros = bytes(min(pad, READ_CHUNK))
        while pad:
            piece.update(zeros[:pad])
            pad -= min(pad, len(zeros))
        v1_pieces.append(piece.digest())
    root, layer = tree.finish()
    return FileHashes(root, tuple(layer))


def write_torrent(data: bytes, output: str | os.PathLike) -> None:
    """Write the file atomically: a reader never sees half a torrent."""
    target = Path(output)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "xb") as handle:  # "x": never clobber someone else's file
            handle.write(data)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
