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


def run_cli(*args, timeout: float = 10.0, cwd: str | os.PathLike | None = None,
            stdin_data: bytes = b"") -> CliResult:
    """Run ./your_bittorrent.sh ARGS from a cwd that is not the repo.

    Like the grader: own process group, stdin closed at once, a per-run timeout after which
    the whole group is killed (the grader kills only the child, but a test must not leak).
    """
    argv = [str(LAUNCHER), *map(str, args)]
    own_tmp = None
    if cwd is None:
        own_tmp = tempfile.TemporaryDirectory(prefix="cli-cwd-")
        cwd = own_tmp.name
    started = time.monotonic()
    proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    timed_out = False
    try:
        out, err = proc.communicate(stdin_data, timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate(timeout=10)
    finally:
        if own_tmp is not None:
            own_tmp.cleanup()
    return CliResult(tuple(map(str, args)), proc.returncode, out.decode("utf-8", "replace"),
                     err.decode("utf-8", "replace"), time.monotonic() - started, timed_out)
