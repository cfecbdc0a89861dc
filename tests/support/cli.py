"""Run the project's CLI the way the grader does: a subprocess started from another cwd."""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = REPO_ROOT / "your_bittorrent.sh"


@dataclasses.dataclass
class CliResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    elapsed: float
    timed_out: bool = False

    def describe(self) -> str:
        return (f"your_bittorrent.sh {' '.join(self.args)}\n"
                f"  exit={self.returncode} timed_out={self.timed_out} elapsed={self.elapsed:.2f}s\n"
                f"  stdout={self.stdout!r}\n  stderr(tail)={self.stderr[-2000:]!r}")


class RunningCli:
    """A CLI run in the background (for tests that act while it runs); finish() collects it."""

    def __init__(self, args, cwd: str | os.PathLike | None = None):
        self.args = tuple(map(str, args))
        self._own_tmp = None
        if cwd is None:
            self._own_tmp = tempfile.TemporaryDirectory(prefix="cli-cwd-")
            cwd = self._own_tmp.name
        self.started = time.monotonic()
        self.proc = subprocess.Popen([str(LAUNCHER), *self.args], cwd=cwd,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)

    def finish(self, timeout: float, stdin_data: bytes = b"") -> CliResult:
        """Wait up to `timeout` s from now; on expiry kill the run's process group."""
        timed_out = False
        try:
            out, err = self.proc.communicate(stdin_data, timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the group this run started
            except ProcessLookupError:
                pass
            out, err = self.proc.communicate(timeout=10)
        finally:
            if self._own_tmp is not None:
                self._own_tmp.cleanup()
        return CliResult(self.args, self.proc.returncode, out.decode("utf-8", "replace"),
                         err.decode("utf-8", "replace"), time.monotonic() - self.started,
                         timed_out)


def start_cli(*args, cwd: str | os.PathLike | None = None) -> RunningCli:
    return RunningCli(args, cwd)


def run_cli(*args, timeout: float = 10.0, cwd: str | os.PathLike | None = None,
            stdin_data: bytes = b"") -> CliResult:
    """Run ./your_bittorrent.sh ARGS from a cwd that is not the repo.

    Like the grader: own process group, stdin closed at once, a per-run timeout after which
    the whole group is killed (the grader kills only the child, but a test must not leak).
    """
    return RunningCli(args, cwd).finish(timeout, stdin_data)
