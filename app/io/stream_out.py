"""`stream`: one file's bytes to a pipe, in order, as soon as the verified prefix grows.

The engine downloads the file's pieces in order (--sequential) into storage;
after each piece of the file verifies (and so is on disk), the part of the
file it completes is read back and written out, on a thread of its own, so
a slow reader (a video player) never blocks the event loop. Only verified
bytes are ever written. A reader that goes away (EPIPE) ends the download
quietly: that is how `| head -c 100` or closing the player says "enough".
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path

from app.core.metainfo import FileEntry, Info
from app.core.selection import pieces_of_file

CHUNK = 1 << 20


class StreamWriter:
    def __init__(self, info: Info, entry: FileEntry, path: Path, out_fd: int,
                 on_closed: Callable[[], None]) -> None:
        self.info = info
        self.entry = entry
        self.path = path                 # the file on disk, as the storage writes it
        self.out_fd = out_fd
        self.on_closed = on_closed       # called from the thread when the reader went away
        self.reader_gone = False
        self.written = 0                 # bytes of the file handed to the thread
        self.error: OSError | None = None
        self._pieces = pieces_of_file(info, entry)
        self._next = 0                   # position in self._pieces of the first piece not yet out
        self._jobs: queue.Queue[tuple[int, int] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="stream", daemon=True)
        self._thread.start()

    def advance(self, done: set[int]) -> None:
        """Hand out the part of the file that the verified prefix of its pieces covers."""
        while self._next < len(self._pieces) and self._pieces[self._next] in done:
            self._next += 1
        if self._next == len(self._pieces):
            end = self.entry.length
        else:
            end = max(0, self._pieces[self._next] * self.info.piece_length - self.entry.offset)
        if end > self.written:
            self._jobs.put((self.written, end - self.written))
            self.written = end

    def finish(self) -> None:
        """Wait until everything handed out is written (or the reader is gone)."""
        self._jobs.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        fd = None
        try:
            while (job := self._jobs.get()) is not None:
                if self.reader_gone:
                    continue
                if fd is None:
                    fd = os.open(self.path, os.O_RDONLY)
                self._copy(fd, *job)
        except BrokenPipeError:
            self.reader_gone = True
            self.on_closed()
            self._discard_rest()
        except OSError as exc:   # the disk or the output file: reported by finish()
            self.error = exc
            self.on_closed()
            self._discard_rest()
        finally:
            if fd is not None:
                os.close(fd)

    def _discard_rest(self) -> None:
        while self._jobs.get() is not None:
            pass

    def _copy(self, fd: int, offset: int, length: int) -> None:
        while length > 0:
            data = os.pread(fd, min(CHUNK, length), offset)
            if not data:
                raise OSError(f"{self.path} is shorter than expected")
            view = memoryview(data)
            while view:
                view = view[os.write(self.out_fd, view):]
            offset += len(data)
            length -= len(data)
