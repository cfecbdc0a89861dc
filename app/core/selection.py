"""File selection (aria2c's --select-file): which files, which pieces, which bytes.

A SPEC such as `1,3-5` names files by their 1-based index in the torrent. The
pieces a selection needs are every piece that holds a byte of a selected
file; a piece that straddles a selected and an unselected file is still
fetched whole (only whole pieces can be verified), and the bytes that belong
to unselected files are parked in the part-file (app.io.part_file).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from app.core.errors import TorrentError
from app.core.metainfo import FileEntry, Info
from app.core.pieces import FileSpan, file_spans


class SelectionError(TorrentError):
    """A --select-file SPEC that does not name files of this torrent."""


def parse_spec(spec: str, file_count: int) -> frozenset[int]:
    """`1,3-5` -> the 0-based file indices {0, 2, 3, 4}; every index must exist."""
    chosen: set[int] = set()
    text = spec.strip()
    if not text:
        raise SelectionError("--select-file: empty SPEC (use indices like 1,3-5; see `files`)")
    for item in text.split(","):
        part = item.strip()
        low_text, dash, high_text = part.partition("-")
        try:
            low = int(low_text)
            high = int(high_text) if dash else low
        except ValueError:
            raise SelectionError(f"--select-file: {part!r} is not an index or a range like 3-5") from None
        if low < 1 or high < low:
            raise SelectionError(f"--select-file: {part!r} is not a valid range (indices start at 1)")
        if high > file_count:
            raise SelectionError(f"--select-file: index {high} is out of range; "
                                 f"the torrent has {file_count} file{'s' if file_count != 1 else ''}")
        chosen.update(range(low - 1, high))
    return frozenset(chosen)


def pieces_of_file(info: Info, entry: FileEntry) -> range:
    """The pieces holding any byte of the file (none for an empty file)."""
    if entry.length == 0:
        return range(0)
    first = entry.offset // info.piece_length
    last = (entry.offset + entry.length - 1) // info.piece_length
    return range(first, last + 1)


def pieces_for_files(info: Info, selected: Iterable[int]) -> set[int]:
    """Every piece a selection of files (0-based indices) needs."""
    wanted: set[int] = set()
    for i in selected:
        wanted.update(pieces_of_file(info, info.files[i]))
    return wanted


def selected_entries(info: Info, selected: Iterable[int]) -> frozenset[FileEntry]:
    return frozenset(info.files[i] for i in selected)


def split_spans(info: Info, index: int,
                selected: Collection[FileEntry]) -> tuple[list[FileSpan], list[FileSpan]]:
    """Piece `index` cut at file boundaries: (spans of selected files, spans of the others).
    The second list is what the part-file holds for this piece."""
    inside: list[FileSpan] = []
    outside: list[FileSpan] = []
    for span in file_spans(info.files, index * info.piece_length, info.piece_size(index), info.file_offsets):
        (inside if span.file in selected else outside).append(span)
    return inside, outside


def boundary_pieces(info: Info, selected: Iterable[int]) -> list[int]:
    """Wanted pieces that also hold bytes of unselected files, in order."""
    chosen = frozenset(selected)
    entries = selected_entries(info, chosen)
    return [i for i in sorted(pieces_for_files(info, chosen)) if split_spans(info, i, entries)[1]]


def file_status(info: Info, good_pieces: set[int], present: Sequence[bool]) -> list[bool]:
    """Per file: complete when it exists and every piece holding its bytes verified."""
    return [present[i] and all(p in good_pieces for p in pieces_of_file(info, f))
            for i, f in enumerate(info.files)]


def sequential_pick(start: int, missing: Collection[int], peer_has: Sequence[int],
                    availability: Sequence[int], window: int) -> int | None:
    """--sequential: the next piece in index order the peer has, except that among
    the first `window` such pieces the rarest goes first, so a swarm where everyone
    streams still spreads rare pieces. Ties go to the lowest index."""
    candidates: list[int] = []
    for index in range(start, len(peer_has)):
        if index in missing and peer_has[index]:
            candidates.append(index)
            if len(candidates) >= window:
                break
    if not candidates:
        return None
    return min(candidates, key=lambda i: (availability[i], i))
