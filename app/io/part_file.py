"""The hidden part-file: bytes of unselected files that share a piece with a selected one.

Only whole pieces can be verified, so a piece straddling a wanted and an
unwanted file is fetched whole; the unwanted bytes must be kept (to verify
the piece again on resume, and to upload it) without creating a file the
user did not ask for. They go here, like libtorrent's `.parts` file.

Layout: a sparse file in which each byte sits at its offset in the torrent's
byte stream. Nothing maps pieces to slots, so there is no index to corrupt,
and the layout does not depend on the selection: a later run with another
selection finds the bytes where it expects them. The holes cost no disk.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from app.core.metainfo import Info
from app.io.direct_io import write_all


def part_file_path(info: Info, output: Path) -> Path:
    """`.<info hash>.parts` beside the data: in the output directory (multi-file)
    or beside the output file (single-file)."""
    base = output if info.multi_file else output.parent
    return base / f".{info.info_hash.hex()}.parts"


class PartFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def exists(self) -> bool:
        return self.path.is_file()

    def _open(self, create: bool) -> int | None:
        if self._fd is None:
            flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | (os.O_CREAT if create else 0)
            try:
                if create:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, flags, 0o644)
            except FileNotFoundError:
                if create:
                    raise
                return None
        return self._fd

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Store bytes at their stream offset."""
        fd = self._open(create=True)
        assert fd is not None
        try:
            write_all(fd, memoryview(data), offset)
        except OSError as exc:
            raise OSError(exc.errno or errno.EIO, f"cannot write {self.path}: {exc.strerror}") from exc

    def read(self, offset: int, length: int) -> bytes:
        """The bytes at a stream offset; zeros where nothing was ever written."""
        fd = self._open(create=False)
        if fd is None:
            return bytes(length)
        data = os.pread(fd, length, offset)
        return data + bytes(length - len(data))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
