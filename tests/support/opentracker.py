"""Debian's opentracker on 127.0.0.1, whitelist-only, started and stopped by PID.

Facts of the Debian binary (checked by hand): run as root it chroots into `tracker.rootdir`
and switches to user nobody, so the whitelist path in the config is relative to that root
and the directory and file must be readable by nobody. SIGHUP re-reads the whitelist.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .bencoding import bdecode
from .net import HOST, free_port, port_accepts, wait_for

WHITELIST = "whitelist.txt"


class OpenTrackerMissing(RuntimeError):
    pass


class OpenTracker:
    def __init__(self, workdir: Path, port: int | None = None):
        binary = shutil.which("opentracker")
        if binary is None:
            raise OpenTrackerMissing(
                "opentracker is not on PATH: tests/run.sh installs Debian's package")
        self.binary = binary
        self.workdir = workdir
        self.port = port or free_port()
        self.hashes: list[str] = []
        self.proc: subprocess.Popen | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(workdir, 0o755)  # it reads the whitelist as user nobody inside a chroot
        self._write_whitelist()
        self.config = workdir / "opentracker.conf"
        self.config.write_text(
            f"listen.tcp {HOST}:{self.port}\n"
            f"listen.udp {HOST}:{self.port}\n"
            f"tracker.rootdir {workdir}\n"
            f"access.whitelist /{WHITELIST}\n")
        self.log_path = workdir / "opentracker.log"

    @property
    def announce_url(self) -> str:
        return f"http://{HOST}:{self.port}/announce"

    @property
    def udp_url(self) -> str:
        return f"udp://{HOST}:{self.port}/announce"

    def _write_whitelist(self) -> None:
        path = self.workdir / WHITELIST
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(h + "\n" for h in self.hashes))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)

    def start(self, timeout: float = 10.0) -> OpenTracker:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([self.binary, "-f", str(self.config)],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         cwd=self.workdir)
        try:
            wait_for(lambda: self.proc.poll() is not None or port_accepts(self.port),
                     timeout, what="opentracker to listen")
        except TimeoutError:
            self.stop()
            raise
        if self.proc.poll() is not None:
            raise RuntimeError(f"opentracker exited with {self.proc.returncode}: "
                               f"{self.log_path.read_text(errors='replace')}")
        for info_hash in self.hashes:
            self._wait_authorized(info_hash, timeout)
        return self

    def whitelist(self, *info_hashes: str, timeout: float = 10.0) -> None:
        """Allow these 40-hex info hashes; returns once the tracker accepts them."""
        new = [h.lower() for h in info_hashes if h.lower() not in self.hashes]
        if not new:
            return
        self.hashes.extend(new)
        self._write_whitelist()
        if self.proc is not None:
            for info_hash in new:
                self._wait_authorized(info_hash, timeout)

    def announce(self, info_hash: str, *, port: int, left: int, event: str | None = None,
                 peer_id: bytes | None = None) -> dict:
        """One HTTP announce, decoded (a failure reason is returned, not raised)."""
        query = {"info_hash": bytes.fromhex(info_hash),
                 "peer_id": peer_id or b"-TS0001-" + os.urandom(6).hex().encode(),
                 "port": port, "uploaded": 0, "downloaded": 0, "left": left, "compact": 1}
        if event:
            query["event"] = event
        # %20, never '+': opentracker does not decode '+' as a space (chihaya does)
        url = self.announce_url + "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
        with urllib.request.urlopen(url, timeout=5) as reply:
            return bdecode(reply.read())

    def peers(self, info_hash: str) -> list[str]:
        """The peers the tracker lists now (as seen by a probe on port 1, removed after)."""
        peer_id = b"-TS0001-probe-" + os.urandom(3).hex().encode()
        reply = self.announce(info_hash, port=1, left=1, peer_id=peer_id)
        self.announce(info_hash, port=1, left=1, peer_id=peer_id, event="stopped")
        raw = reply.get(b"peers", b"")
        found = [f"{raw[i]}.{raw[i+1]}.{raw[i+2]}.{raw[i+3]}:{int.from_bytes(raw[i+4:i+6], 'big')}"
                 for i in range(0, len(raw), 6)]
        return [p for p in found if p != f"{HOST}:1"]

    def _wait_authorized(self, info_hash: str, timeout: float) -> None:
        """SIGHUP until a real announce for `info_hash` is accepted.

        Only a real announce proves it: opentracker answers event=stopped without looking
        at the whitelist. A SIGHUP sent while it is still starting up can be lost, so it is
        repeated. The probe peer (port 1) is removed again with event=stopped.
        """
        peer_id = b"-TS0001-probe-" + os.urandom(3).hex().encode()

        def authorized():
            try:
                reply = self.announce(info_hash, port=1, left=1, peer_id=peer_id)
            except (OSError, urllib.error.URLError):
                return False
            return b"failure reason" not in reply

        deadline = time.monotonic() + timeout
        while True:
            os.kill(self.proc.pid, signal.SIGHUP)  # our own child, by PID
            try:
                wait_for(authorized, min(1.0, max(0.1, deadline - time.monotonic())), 0.05,
                         what=f"opentracker to whitelist {info_hash}")
                break
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise
        self.announce(info_hash, port=1, left=1, peer_id=peer_id, event="stopped")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM to our own child, by PID
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
