"""Shared assertions and small tools for the hostile-input tests."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from support.bencoding import bencode
from support.cli import CliResult


def stderr_lines(result: CliResult) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def assert_clean_failure(result: CliResult, *, strict: bool = True, stdout_empty: bool = True,
                         max_seconds: float | None = None) -> str:
    """The failure contract: exit != 0, no traceback, an `Error: ` line on stderr.

    strict: stderr must be that ONE line and nothing else (commands run without -v, or -q).
    Otherwise (log output allowed, e.g. -v) exactly one line starts with `Error: ` and it is
    the last one. Returns the Error line.
    """
    why = result.describe()
    assert not result.timed_out, f"the CLI did not stop by itself\n{why}"
    assert result.returncode != 0, f"expected a non-zero exit\n{why}"
    assert "Traceback" not in result.stderr, f"a Python traceback leaked\n{why}"
    lines = stderr_lines(result)
    errors = [line for line in lines if line.startswith("Error: ")]
    if strict:
        assert len(lines) == 1 and len(errors) == 1, \
            f"stderr must be exactly one `Error: ` line\n{why}"
    else:
        assert len(errors) == 1 and lines[-1] == errors[0], \
            f"stderr must end with exactly one `Error: ` line\n{why}"
    assert len(errors[0]) > len("Error: ") + 3, f"the Error line says nothing\n{why}"
    if stdout_empty:
        assert result.stdout == "", f"nothing may reach stdout on failure\n{why}"
    if max_seconds is not None:
        assert result.elapsed < max_seconds, \
            f"took {result.elapsed:.1f}s, more than {max_seconds}s\n{why}"
    return errors[0]


def assert_success(result: CliResult, *, max_seconds: float | None = None) -> None:
    why = result.describe()
    assert not result.timed_out, f"the CLI did not stop by itself\n{why}"
    assert result.returncode == 0, f"expected exit 0\n{why}"
    assert "Traceback" not in result.stderr, f"a Python traceback leaked\n{why}"
    if max_seconds is not None:
        assert result.elapsed < max_seconds, \
            f"took {result.elapsed:.1f}s, more than {max_seconds}s\n{why}"


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def assert_same_bytes(path: Path, expected: bytes, context: str = "") -> None:
    assert path.exists(), f"{path} was not written\n{context}"
    got = path.read_bytes()
    assert len(got) == len(expected) and sha1(got) == sha1(expected), (
        f"{path}: {len(got)} bytes sha1 {sha1(got)}, expected {len(expected)} bytes "
        f"sha1 {sha1(expected)}\n{context}")


def write_torrent(path: Path, meta) -> Path:
    """Write a metainfo value; bytes are written as they are (for broken files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(meta if isinstance(meta, bytes) else bencode(meta))
    return path


def fake_info(length: int = 40_000, piece_length: int = 16_384, name: str = "x.bin") -> dict:
    """A valid single-file info dict with made-up hashes (nothing is behind it)."""
    count = -(-length // piece_length)
    return {"length": length, "name": name, "piece length": piece_length,
            "pieces": bytes(range(20)) * count}


def tree_listing(root: Path) -> list[str]:
    """Every path under root (not following symlinks), for 'nothing was written' checks."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


class TmpfsMount:
    """A small tmpfs mounted at `path` (needs root and mount(8)); unmounted by umount()."""

    def __init__(self, path: Path, size: str, read_only: bool = False):
        self.path = path
        self.size = size
        self.read_only = read_only
        self.mounted = False

    def mount(self) -> TmpfsMount:
        for tool in ("mount", "umount"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool}(8) is not installed: this test needs it (FAIL, "
                                   "not skip)")
        if os.geteuid() != 0:
            raise RuntimeError("mounting a tmpfs needs root: this test must run as root")
        self.path.mkdir(parents=True, exist_ok=True)
        options = f"size={self.size}" + (",ro" if self.read_only else "")
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(self.path)],
                              capture_output=True, text=True, timeout=20)
        if proc.returncode != 0:
            raise RuntimeError(f"cannot mount a tmpfs at {self.path}: {proc.stderr.strip()}")
        self.mounted = True
        return self

    def umount(self) -> None:
        if self.mounted:
            proc = subprocess.run(["umount", str(self.path)], capture_output=True, text=True,
                                  timeout=20)
            if proc.returncode != 0:  # busy? retry lazily so nothing stays mounted
                subprocess.run(["umount", "-l", str(self.path)], capture_output=True,
                               timeout=20)
            self.mounted = False

