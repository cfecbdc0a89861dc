"""Where verified pieces go on disk, and how a rerun finds what is already there.

Pieces are written in place with pwritev soon after they verify (adjacent
pieces together, see app.core.write_batch), and a crash or kill loses none
that reached the disk: the next run hashes the files and keeps every piece
that still matches. Nothing unverified is ever written. Aligned spans of
aligned piece buffers skip the page cache (O_DIRECT, see app.io.direct_io).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from app.core.errors import MetainfoError
from app.core.metainfo import FileEntry, Info
from app.core.piece_check import PieceCheck
from app.core.pieces import FileSpan, PieceBuffer, buffer_slices, file_spans, read_stream
from app.io.direct_io import O_DIRECT, direct_write_fits, is_aligned_buffer, write_vectors


class StorageError(OSError):
    """A file could not be created, written or read."""


class TorrentStorage:
    """The torrent's files, for random-access reads and writes.

    Files are opened on first use and at most MAX_OPEN_FILES stay open, so a
    torrent of thousands of files neither pays for thousands of opens at the
    start nor runs out of file descriptors.
    """

    MAX_OPEN_FILES = 64

    def __init__(self, info: Info, output: Path) -> None:
        self.info = info
        self.output = Path(output)
        # (file, direct) -> fd, least recently used first; direct: opened with O_DIRECT
        self._fds: OrderedDict[tuple[FileEntry, bool], int] = OrderedDict()
        self._direct = O_DIRECT != 0   # until the file system refuses it
        # Pieces are written by the piece store's writer thread while uploads read on the
        # event loop. The lock guards the table of open files; with more files than may
        # stay open, it is also held across each read and write, so that one thread never
        # closes (and the next open reuses) a descriptor the other is using.
        self._lock = threading.RLock()
        self._io_lock: contextlib.AbstractContextManager[object] = (
            self._lock if 2 * len(info.files) > self.MAX_OPEN_FILES else contextlib.nullcontext())  # 2: direct fds
        self._fresh: set[FileEntry] = set()   # absent or empty before this run: nothing to verify
        self._sized: set[FileEntry] = set()   # already cut or grown to their length this run
        self._create = True
        self._made_dirs: set[Path] = set()   # made (or found) this run: one mkdir per directory
        self.active_files: tuple[FileEntry, ...] = info.files   # the files this run creates and checks

    def file_path(self, entry: FileEntry) -> Path:
        if not self.info.multi_file:
            return self.output
        return self.output.joinpath(self.info.name, *entry.path)

    def open(self, create: bool = True) -> None:
        """Check every path before any byte is written: no symlink on the way, the
        directories can be made, and (when not creating) the files exist.
        Zero-length files are created now, as nothing will ever be written to them."""
        self._create = create
        checked: set[Path] = set()   # directories already walked (a torrent's files share them)
        for entry in self.active_files:
            path = self.file_path(entry)
            self._check_no_symlinks(path, checked)
            try:
                size = os.stat(path).st_size
            except FileNotFoundError:
                if not create:
                    raise StorageError(errno.ENOENT, f"cannot open {path}: no such file") from None
                size = 0
            except OSError as exc:
                raise StorageError(exc.errno, f"cannot open {path}: {exc.strerror}") from exc
            if size == 0:
                self._fresh.add(entry)
            if create and (size > entry.length or entry.length == 0 or entry is self.active_files[0]):
                # Cut a longer leftover now (a resume may write nothing), make zero-length
                # files (nothing will be written to them), and prove the output writable.
                self._fd(entry)

    def _fd(self, entry: FileEntry, direct: bool = False) -> int:
        with self._lock:
            return self._open_fd(entry, direct)

    def _open_fd(self, entry: FileEntry, direct: bool) -> int:
        key = (entry, direct)
        fd = self._fds.get(key)
        if fd is not None:
            self._fds.move_to_end(key)
            return fd
        path = self.file_path(entry)
        flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | (os.O_CREAT if self._create else 0)
        if direct:
            flags |= O_DIRECT
        try:
            if self._create and path.parent not in self._made_dirs:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._made_dirs.add(path.parent)
            fd = os.open(path, flags, 0o755 if entry.executable else 0o644)   # (new files only; umask applies)
            if self._create and entry not in self._sized:
                if os.fstat(fd).st_size != entry.length:  # sparse when growing; a longer leftover is cut
                    os.ftruncate(fd, entry.length)
                self._sized.add(entry)
        except OSError as exc:
            if direct and exc.errno == errno.EINVAL:   # this file system takes no O_DIRECT
                self._direct = False
                return self._open_fd(entry, False)
            raise StorageError(exc.errno, f"cannot open {path}: {exc.strerror}") from exc
        self._fds[key] = fd
        if len(self._fds) > self.MAX_OPEN_FILES:
            os.close(self._fds.popitem(last=False)[1])
        return fd

    def _check_no_symlinks(self, path: Path, checked: set[Path]) -> None:
        """No part of the path below the output may be a symlink (it could point outside).
        Directories in `checked` were walked already, up to the base; they are skipped."""
        base = self.output if self.info.multi_file else self.output.parent
        current = path
        while current != base and current != current.parent and current not in checked:
            try:
                if stat.S_ISLNK(os.lstat(current).st_mode):
                    raise MetainfoError(f"refusing to write through symlink {current}")
            except FileNotFoundError:
                pass
            if current != path:
                checked.add(current)
            current = current.parent

    def _spans(self, start: int, length: int):
        return file_spans(self.info.files, start, length, self.info.file_offsets)

    def write_piece(self, index: int, data: bytes | PieceBuffer | memoryview) -> None:
        self.write_pieces(index, [data])

    def write_pieces(self, first: int, buffers: Sequence[bytes | PieceBuffer | memoryview]) -> None:
        """Adjacent pieces from `first` on (each but the last a whole piece long): one
        vectored write per file they touch."""
        views = [memoryview(b) for b in buffers]
        aligned = all(is_aligned_buffer(b) for b in buffers)
        lengths = [len(v) for v in views]
        for span in self._spans(first * self.info.piece_length, sum(lengths)):
            parts = [(views[k][lo:hi], lo) for k, lo, hi in buffer_slices(lengths, span.piece_offset, span.length)]
            self._write_span(span, parts, aligned)

    def _write_span(self, span: FileSpan, parts: list[tuple[memoryview, int]], aligned: bool = False) -> None:
        """One file's part of a run of pieces, given as (view, its offset in its buffer);
        directly when `aligned` (the buffers start on a page) and every part fits
        O_DIRECT's rules, buffered otherwise."""
        direct = (aligned and self._direct
                  and all(direct_write_fits(at, span.file_offset, len(view)) for view, at in parts))
        views = [view for view, _ in parts]
        try:
            with self._io_lock:
                try:
                    write_vectors(self._fd(span.file, direct), views, span.file_offset)
                except OSError as exc:
                    if not (direct and exc.errno == errno.EINVAL):
                        raise
                    self._direct = False   # refused after all (a stricter device): buffered from now on
                    write_vectors(self._fd(span.file), views, span.file_offset)
        except OSError as exc:
            raise StorageError(exc.errno, f"cannot write {self.file_path(span.file)}: {exc.strerror}") from exc

    def read_piece(self, index: int) -> bytes:
        return self.read_block(index, 0, self.info.piece_size(index))

    def read_block(self, index: int, begin: int, length: int) -> bytes:
        with self._io_lock:
            return read_stream(self.info.files, index * self.info.piece_length + begin, length,
                               self.info.file_offsets, lambda s: os.pread(self._fd(s.file), s.length, s.file_offset))

    def verified_pieces(self) -> set[int]:
        """Hash what is on disk; return the pieces that match (resume)."""
        good = set()
        check = PieceCheck(self.info)
        for index in range(self.info.piece_count):
            size = self.info.piece_size(index)
            spans = list(self._spans(index * self.info.piece_length, size))
            if all(span.file in self._fresh for span in spans):
                continue  # files that were absent or empty hold no data yet
            data = self.read_piece(index)
            if len(data) == size and check.matches(index, data):
                good.add(index)
        return good

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()


class SinglePieceStorage:
    """For download_piece: the one wanted piece becomes the whole output file, `size`
    bytes long: padding blocks that were not fetched (v2, hybrid) are written as zeros."""

    def __init__(self, output: Path, size: int = 0) -> None:
        self.output = Path(output)
        self.size = size

    def open(self, create: bool = True) -> None:
        self.output.parent.mkdir(parents=True, exist_ok=True)

    def write_piece(self, index: int, data: bytes | PieceBuffer | memoryview) -> None:
        try:
            self.output.write_bytes(bytes(data) + bytes(max(0, self.size - len(data))))
        except OSError as exc:
            raise StorageError(exc.errno, f"cannot write {self.output}: {exc.strerror}") from exc

    def write_pieces(self, first: int, buffers: Sequence[bytes | PieceBuffer | memoryview]) -> None:
        for k, data in enumerate(buffers):   # one piece is ever wanted: a list of one
            self.write_piece(first + k, data)

    def read_block(self, index: int, begin: int, length: int) -> bytes:
        with open(self.output, "rb") as f:
            f.seek(begin)
            return f.read(length)

    def verified_pieces(self) -> set[int]:
        return set()

    def close(self) -> None:
        pass
