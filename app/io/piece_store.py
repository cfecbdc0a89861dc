"""The piece check and storage pipeline: a complete piece is hashed and, only
if it matches, written to disk, by one worker thread beside the event loop.

hashlib and pwrite both release the GIL, so the work overlaps with the
network; more threads would only fight over the GIL on two cores. Pieces
are checked in the order they complete.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol


class Storage(Protocol):
    def open(self, create: bool = True) -> None: ...
    def write_piece(self, index: int, data: bytes | bytearray) -> None: ...
    def read_block(self, index: int, begin: int, length: int) -> bytes: ...
    def verified_pieces(self) -> set[int]: ...
    def close(self) -> None: ...


class PieceStore:
    def __init__(self, storage: Storage, piece_hashes: Sequence[bytes]) -> None:
        self.storage = storage
        self._hashes = piece_hashes
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="disk")

    def open(self, create: bool) -> set[int]:
        """Open the files and return the pieces already verified on disk (resume)."""
        self.storage.open(create=create)
        return self.storage.verified_pieces()

    async def check_and_store(self, index: int, data: bytearray) -> bool:
        """True if the piece matched its hash and is now on disk. OSError if the disk failed."""
        return await asyncio.get_running_loop().run_in_executor(self._worker, self._check_and_write, index, data)

    def _check_and_write(self, index: int, data: bytearray) -> bool:
        if hashlib.sha1(data).digest() != self._hashes[index]:
            return False
        self.storage.write_piece(index, data)
        return True

    def read_block(self, index: int, begin: int, length: int) -> bytes:
        """For uploads: verified data comes from the page cache, so a read is cheaper
        than a hop to the worker thread."""
        return self.storage.read_block(index, begin, length)

    def close(self) -> None:
        self._worker.shutdown(wait=True)
        self.storage.close()
