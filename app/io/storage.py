"""Where verified pieces go on disk, and how a rerun finds what is already there.

Pieces are written in place with pwrite as soon as they verify, so a crash
or kill never loses one: the next run hashes the files and keeps every piece
that still matches. Nothing unverified is ever written.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from app.core.errors import MetainfoError
from app.core.metainfo import FileEntry, Info
from app.core.pieces import file_spans


class StorageError(OSError):
    """A file could not be created, written or read."""


def data_root(info: Info, output: Path) -> Path:
    """A single-file torrent's `output` is the file; a multi-file one's is DIR/<name>."""
    return output if not info.multi_file else output / info.name


class TorrentStorage:
    """The torrent's files, opened for random-access reads and writes."""

    def __init__(self, info: Info, output: Path) -> None:
        self.info = info
        self.output = Path(output)
        self._fds: dict[FileEntry, int] = {}
        self._fresh: set[FileEntry] = set()   # created empty by this run: nothing to verify

    def file_path(self, entry: FileEntry) -> Path:
        if not self.info.multi_file:
            return self.output
        return self.output.joinpath(self.info.name, *entry.path)

    def open(self, create: bool = True) -> None:
        """Open (and create, sized but sparse) every file, refusing symlinks on the way."""
        for entry in self.info.files:
            path = self.file_path(entry)
            self._check_no_symlinks(path)
            flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | (os.O_CREAT if create else 0)
            try:
                if create:
                    path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, flags, 0o644)
                size = os.fstat(fd).st_size
                if size == 0:
                    self._fresh.add(entry)
                if create and size != entry.length:  # sparse when growing; a longer leftover is cut
                    os.ftruncate(fd, entry.length)
            except OSError as exc:
                self.close()
                raise StorageError(exc.errno, f"cannot open {path}: {exc.strerror}") from exc
            self._fds[entry] = fd

    def _check_no_symlinks(self, path: Path) -> None:
        """No part of the path below the output may be a symlink (it could point outside)."""
        base = self.output if self.info.multi_file else self.output.parent
        current = path
        while current != base and current != current.parent:
            try:
                if stat.S_ISLNK(os.lstat(current).st_mode):
                    raise MetainfoError(f"refusing to write through symlink {current}")
            except FileNotFoundError:
                pass
            current = current.parent

    def write_piece(self, index: int, data: bytes) -> None:
        start = index * self.info.piece_length
        view = memoryview(data)
        for span in file_spans(self.info.files, start, len(data)):
            chunk = view[span.piece_offset:span.piece_offset + span.length]
            try:
                written = os.pwrite(self._fds[span.file], chunk, span.file_offset)
                while written < len(chunk):
                    written += os.pwrite(self._fds[span.file], chunk[written:], span.file_offset + written)
            except OSError as exc:
                raise StorageError(exc.errno, f"cannot write {self.file_path(span.file)}: {exc.strerror}") from exc

    def read_piece(self, index: int) -> bytes:
        return self.read_block(index, 0, self.info.piece_size(index))

    def read_block(self, index: int, begin: int, length: int) -> bytes:
        start = index * self.info.piece_length + begin
        parts = [os.pread(self._fds[s.file], s.length, s.file_offset)
                 for s in file_spans(self.info.files, start, length)]
        return b"".join(parts)

    def verified_pieces(self) -> set[int]:
        """Hash what is on disk; return the pieces that match (resume)."""
        good = set()
        for index, expected in enumerate(self.info.piece_hashes):
            start, size = index * self.info.piece_length, self.info.piece_size(index)
            if all(span.file in self._fresh for span in file_spans(self.info.files, start, size)):
                continue  # a file this run created holds no data yet
            data = self.read_piece(index)
            if len(data) == self.info.piece_size(index) and hashlib.sha1(data).digest() == expected:
                good.add(index)
        return good

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


class SinglePieceStorage:
    """For download_piece: the one wanted piece becomes the whole output file."""

    def __init__(self, output: Path) -> None:
        self.output = Path(output)

    def open(self, create: bool = True) -> None:
        self.output.parent.mkdir(parents=True, exist_ok=True)

    def write_piece(self, index: int, data: bytes) -> None:
        try:
            self.output.write_bytes(data)
        except OSError as exc:
            raise StorageError(exc.errno, f"cannot write {self.output}: {exc.strerror}") from exc

    def read_block(self, index: int, begin: int, length: int) -> bytes:
        with open(self.output, "rb") as f:
            f.seek(begin)
            return f.read(length)

    def verified_pieces(self) -> set[int]:
        return set()

    def close(self) -> None:
        pass
