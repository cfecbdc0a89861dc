"""Storage for a download of some of a torrent's files (--select-file).

Selected files are created and written as usual (app.io.storage); the bytes
of unselected files inside wanted pieces go to the part-file. On resume a
piece is read back from the same places. When the selection changed since
the last run, a piece may not verify where it is now expected: then it is
read from where the previous selection put it (a newly selected file's bytes
from the part-file, a deselected file's bytes from its file), and if that
copy verifies it is rewritten in the current layout instead of fetched again.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from app.core.metainfo import Info
from app.core.piece_check import PieceCheck
from app.core.pieces import FileSpan, PieceBuffer, read_stream
from app.core.selection import pieces_for_files, selected_entries
from app.io.direct_io import is_aligned_buffer
from app.io.part_file import PartFile, part_file_path
from app.io.storage import TorrentStorage


class SelectiveStorage(TorrentStorage):
    def __init__(self, info: Info, output: Path, selected: frozenset[int]) -> None:
        super().__init__(info, output)
        self.selected = selected_entries(info, selected)
        self.wanted = pieces_for_files(info, selected)
        self.active_files = tuple(f for f in info.files if f in self.selected)
        self.part = PartFile(part_file_path(info, Path(output)))
        self._good: set[int] = set()   # wanted pieces known to be on disk

    def open(self, create: bool = True) -> None:
        if self.active_files:
            super().open(create)

    def write_piece(self, index: int, data: bytes | PieceBuffer | memoryview) -> None:
        view = memoryview(data)
        aligned = is_aligned_buffer(data)
        start = index * self.info.piece_length
        for span in self._spans(start, len(view)):
            chunk = view[span.piece_offset:span.piece_offset + span.length]
            if span.file in self.selected:
                self._write_span(span, [(chunk, span.piece_offset)], aligned)
            else:
                self.part.write(start + span.piece_offset, chunk)
        self._good.add(index)

    def write_pieces(self, first: int, buffers: Sequence[bytes | PieceBuffer | memoryview]) -> None:
        """A piece at a time: unselected bytes go to the part-file, not in one write."""
        for k, data in enumerate(buffers):
            self.write_piece(first + k, data)

    def read_block(self, index: int, begin: int, length: int) -> bytes:
        start = index * self.info.piece_length + begin
        with self._io_lock:   # see TorrentStorage
            return read_stream(self.info.files, start, length, self.info.file_offsets,
                               lambda s: os.pread(self._fd(s.file), s.length, s.file_offset)
                               if s.file in self.selected else self.part.read(start + s.piece_offset, s.length))

    def verified_pieces(self) -> set[int]:
        """The wanted pieces whose bytes verify, from the current layout or the previous one."""
        good = set()
        have_part = self.part.exists()
        check = PieceCheck(self.info)
        for index in sorted(self.wanted):
            size = self.info.piece_size(index)
            start = index * self.info.piece_length
            spans = list(self._spans(start, size))
            if not have_part and all(s.file in self._fresh for s in spans if s.file in self.selected):
                continue   # nothing of this piece can be on disk yet
            if check.matches(index, self.read_piece(index)):
                good.add(index)
                continue
            moved = self._read_moved(start, spans)
            if moved is not None and check.matches(index, moved):
                self.write_piece(index, moved)
                good.add(index)
        self._good |= good
        return good

    def _read_moved(self, start: int, spans: list[FileSpan]) -> bytes | None:
        """The piece as a previous selection stored it, or None if nothing moved."""
        parts, moved = [], False
        for span in spans:
            if span.file in self.selected and span.file in self._fresh:
                parts.append(self.part.read(start + span.piece_offset, span.length))
                moved = True
            elif span.file not in self.selected and (old := self._read_unselected(span)) is not None:
                parts.append(old)
                moved = True
            elif span.file in self.selected:
                parts.append(os.pread(self._fd(span.file), span.length, span.file_offset))
            else:
                parts.append(self.part.read(start + span.piece_offset, span.length))
        return b"".join(parts) if moved else None

    def _read_unselected(self, span: FileSpan) -> bytes | None:
        """A deselected file left on disk by an earlier run (read-only; never created)."""
        path = self.file_path(span.file)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return None
        try:
            data = os.pread(fd, span.length, span.file_offset)
        finally:
            os.close(fd)
        return data if len(data) == span.length else None

    def close(self) -> None:
        """Once every file is selected and complete, the part-file holds nothing needed."""
        super().close()
        self.part.close()
        if len(self.selected) == len(self.info.files) and self._good >= self.wanted:
            self.part.path.unlink(missing_ok=True)
