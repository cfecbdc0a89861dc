"""Our own seeder: `your_bittorrent.sh seed --port P [extra] TORRENT PATH` in the background,
stopped with a signal (SIGINT unless told) sent by PID to the process we started."""
from __future__ import annotations

import signal
from pathlib import Path

from .cli import CliResult, start_cli
from .net import HOST, free_port, port_accepts, wait_for


class OurSeeder:
    """Started (and listening) on construction; stop() or the end of `with` stops it."""

    def __init__(self, torrent: Path, path: Path, *extra, port: int | None = None):
        self.port = port or free_port()
        self.result: CliResult | None = None
        self.run = start_cli("seed", "--port", self.port, *extra, torrent, path)
        try:
            wait_for(lambda: self.run.proc.poll() is not None or port_accepts(self.port), 20,
                     what="our seeder to listen")
        except TimeoutError:
            self.stop()
            raise
        if self.run.proc.poll() is not None:
            raise AssertionError("our seeder exited at once\n" + self.stop().describe())

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.run.proc.pid

    def stop(self, signum: int = signal.SIGINT) -> CliResult:
        """Stop it (once) and return how the run ended."""
        if self.result is None:
            if self.run.proc.poll() is None:
                self.run.proc.send_signal(signum)  # the process we started, by PID
            self.result = self.run.finish(timeout=10)
        return self.result

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
