"""`verify`: hash what is on disk and say, per file, whether it is complete. No network.

Files are only ever opened read-only. A file that is absent counts as holding
no bytes, except that bytes parked in the hidden part-file by a --select-file
download still count, so the selected files of such a download verify.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from app.core.metainfo import FileEntry, Info
from app.core.piece_check import PieceCheck
from app.core.pieces import FileSpan, read_stream
from app.core.selection import pieces_of_file
from app.io.part_file import PartFile, part_file_path


@dataclass(frozen=True)
class FileCheck:
    index: int          # 1-based, as `files` prints it
    path: str           # relative to the output, as `files` prints it
    length: int
    exists: bool
    good_pieces: int
    pieces: int

    @property
    def complete(self) -> bool:
        return self.exists and self.good_pieces == self.pieces


def display_path(info: Info, entry: FileEntry) -> str:
    return "/".join((info.name, *entry.path)) if info.multi_file else info.name


def verify(info: Info, output: Path) -> list[FileCheck]:
    reader = _Reader(info, Path(output))
    try:
        check = PieceCheck(info)
        good = {i for i in range(info.piece_count) if check.matches(i, reader.read(i))}
    finally:
        reader.close()
    checks = []
    for number, entry in enumerate(info.files, start=1):
        pieces = pieces_of_file(info, entry)
        path = reader.path_of(entry)
        exists = path.is_file() and os.path.getsize(path) == entry.length
        checks.append(FileCheck(number, display_path(info, entry), entry.length, exists,
                                sum(p in good for p in pieces), len(pieces)))
    return checks


class _Reader:
    def __init__(self, info: Info, output: Path) -> None:
        self.info = info
        self.output = output
        self.part = PartFile(part_file_path(info, output))
        self._fds: dict[FileEntry, int | None] = {}

    def path_of(self, entry: FileEntry) -> Path:
        return self.output.joinpath(self.info.name, *entry.path) if self.info.multi_file else self.output

    def _fd(self, entry: FileEntry) -> int | None:
        if entry not in self._fds:
            try:
                self._fds[entry] = os.open(self.path_of(entry), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            except OSError:
                self._fds[entry] = None
        return self._fds[entry]

    def read(self, index: int) -> bytes:
        start = index * self.info.piece_length
        return read_stream(self.info.files, start, self.info.piece_size(index), self.info.file_offsets,
                           lambda span: self._read_span(start, span))

    def _read_span(self, start: int, span: FileSpan) -> bytes:
        fd = self._fd(span.file)
        if fd is None:
            return self.part.read(start + span.piece_offset, span.length)
        return os.pread(fd, span.length, span.file_offset)

    def close(self) -> None:
        for fd in self._fds.values():
            if fd is not None:
                os.close(fd)
        self.part.close()
