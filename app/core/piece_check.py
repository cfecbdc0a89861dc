"""Whether a piece's bytes are the torrent's: SHA-1 for v1, merkle for v2, both for hybrids.

A piece may arrive shorter than its size on the wire: blocks that hold only the
padding between aligned files (BEP 47, BEP 52) are never fetched, and count as
zeros. A v2 piece lies within one file; its node in that file's piece layer (or,
for a file of one piece, the file's pieces root) must match.

A hybrid fetched by magnet from v1-only peers may have no piece layers (only v2
peers can send them): its pieces are then checked by SHA-1 alone where a layer
is missing, as libtorrent does. A .torrent always brings its layers (the parser
refuses one without them), so this is the magnet case only.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right

from app.core.merkle import piece_hash, small_file_root
from app.core.metainfo import FileEntry, Info
from app.core.pieces import PieceBuffer

Bytes = bytes | memoryview | PieceBuffer


class PieceCheck:
    def __init__(self, info: Info) -> None:
        self.info = info
        self._v1 = bool(info.piece_hashes)
        self._v2 = info.meta_version >= 2
        self._files = [f for f in info.files if f.length]   # empty files hold no piece
        self._starts = [f.offset for f in self._files]

    def matches(self, index: int, data: Bytes) -> bool:
        if self._v1:
            if not self._sha1_matches(index, data):
                return False
            if not self.can_check(index):
                return True   # a hybrid without this file's piece layer (see the module notes)
        return not self._v2 or self._merkle_matches(index, data)

    def can_check(self, index: int) -> bool:
        """False for a v2 piece of a file whose piece layer we do not have yet."""
        if not self._v2:
            return True
        entry = self.file_of(index)
        return entry is not None and (entry.length <= self.info.piece_length
                                      or entry.pieces_root in self.info.piece_layers)

    def file_of(self, index: int) -> FileEntry | None:
        """The file a v2 piece belongs to (files start on piece boundaries)."""
        start = index * self.info.piece_length
        i = bisect_right(self._starts, start) - 1
        if i < 0:
            return None
        entry = self._files[i]
        return entry if start < entry.offset + entry.length else None

    def _sha1_matches(self, index: int, data: Bytes) -> bool:
        digest = hashlib.sha1(data)
        short = self.info.piece_size(index) - len(data)
        if short > 0:
            digest.update(bytes(short))   # padding blocks we did not fetch
        return digest.digest() == self.info.piece_hashes[index]

    def _merkle_matches(self, index: int, data: Bytes) -> bool:
        entry = self.file_of(index)
        if entry is None or entry.pieces_root is None:
            return False
        piece_length = self.info.piece_length
        start = index * piece_length - entry.offset
        size = min(piece_length, entry.length - start)
        if len(data) < size:
            return False
        content = memoryview(data)[:size]
        if entry.length <= piece_length:
            return small_file_root(content) == entry.pieces_root
        layer = self.info.piece_layers.get(entry.pieces_root)
        return layer is not None and piece_hash(content, piece_length) == layer[start // piece_length]
