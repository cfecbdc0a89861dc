"""Start and stop libtorrent peers (lt_peer.py) as subprocesses, each on its own port."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from .net import HOST, free_port
from .torrents import TorrentSpec

LT_PEER = Path(__file__).with_name("lt_peer.py")


class LtPeer:
    """A running lt_peer.py process. Stop it with stop() (SIGTERM) or kill() (SIGKILL)."""

    def __init__(self, argv: list[str], workdir: Path, port: int, ready_file: Path):
        self.port = port
        self.workdir = workdir
        self.ready_file = ready_file
        self.log_path = workdir / "lt_peer.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115  (the child's stderr; closed with the peer)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._log)
        self.info: dict = {}

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready_file.exists():
                self.info = json.loads(self.ready_file.read_text())
                return self.info
            if self.proc.poll() is not None:
                raise RuntimeError(f"lt_peer exited with {self.proc.returncode} before it was "
                                   f"ready:\n{self.log_text()}")
            time.sleep(0.05)
        self.kill()
        raise TimeoutError(f"lt_peer not ready after {timeout}s:\n{self.log_text()}")

    def wait_exit(self, timeout: float) -> int:
        """For leechers: wait until the process exits by itself; return its exit code."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TimeoutError(f"lt_peer still running after {timeout}s:\n{self.log_text()}") from None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signum)  # our own child, by PID
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self._signal(signal.SIGKILL)
        self._reap(5)

    def stop(self, timeout: float = 5.0) -> None:
        self._signal(signal.SIGTERM)
        if not self._reap(timeout):
            self.kill()

    def _reap(self, timeout: float) -> bool:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()
        return True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def copy_payload(spec: TorrentSpec, dest_root: Path) -> Path:
    """Copy the torrent's files into dest_root (same layout); return dest_root."""
    for parts, _ in spec.files:
        target = dest_root.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(spec.data_root.joinpath(*parts), target)
    return dest_root


def _join(pieces) -> str:
    return ",".join(str(int(i)) for i in pieces)


def start_seeder(spec: TorrentSpec, workdir: Path, *, port: int | None = None,
                 have=None, corrupt=None, announce: bool = True, upload_rate: int = 0,
                 wait: bool = True, timeout: float = 60.0, encryption: str = "default") -> LtPeer:
    """A libtorrent seeder of `spec` on its own copy of the data.

    have: the pieces it holds (default: all; a partial seeder is in upload mode).
    corrupt: pieces it serves with every byte flipped.
    announce: announce to the torrent's tracker and wait for a successful reply.
    upload_rate: bytes/s limit (0 = unlimited), to make a download last long enough.
    encryption: libtorrent's protocol-encryption settings (lt_peer.py's --encryption).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    save_path = copy_payload(spec, workdir / "data")
    port = port or free_port()
    ready = workdir / "ready.json"
    argv = [sys.executable, str(LT_PEER), "seed", "--torrent", str(spec.torrent_path),
            "--save-path", str(save_path), "--port", str(port), "--ready-file", str(ready),
            "--start-timeout", str(timeout)]
    if have is not None:
        argv += ["--have", _join(have)]
    if corrupt:
        argv += ["--corrupt", _join(corrupt)]
    if not announce:
        argv.append("--no-announce")
    if upload_rate:
        argv += ["--upload-rate", str(upload_rate)]
    if encryption != "default":
        argv += ["--encryption", encryption]
    peer = LtPeer(argv, workdir, port, ready)
    if wait:
        peer.wait_ready(timeout + 5)
    return peer


def start_leecher(workdir: Path, *, torrent: Path | None = None, magnet: str | None = None,
                  peers=(), port: int | None = None, timeout: float = 60.0) -> LtPeer:
    """A libtorrent downloader; use wait_exit() and then read workdir/'download'."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    ready = workdir / "ready.json"
    argv = [sys.executable, str(LT_PEER), "leech", "--save-path", str(workdir / "download"),
            "--port", str(port), "--ready-file", str(ready), "--timeout", str(timeout)]
    argv += ["--torrent", str(torrent)] if torrent else ["--magnet", magnet]
    for peer in peers:
        argv += ["--peer", peer]
    return LtPeer(argv, workdir, port, ready)
