"""Assertions on CLI results shared by the end-to-end tests."""
from __future__ import annotations

import re
from pathlib import Path

from .cli import CliResult

PEER_ID_LINE = re.compile(r"^Peer ID: ([0-9a-f]{40})$", re.M)


def assert_ok(result: CliResult, *, within: float | None = None) -> None:
    """Exit 0 (the grader checks it first), and in time when `within` is given."""
    assert not result.timed_out, "timed out\n" + result.describe()
    assert result.returncode == 0, result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    if within is not None:
        assert result.elapsed < within, f"took {result.elapsed:.1f}s > {within}s\n" \
                                        + result.describe()


def assert_error(result: CliResult, *, quiet: bool = False) -> str:
    """The error contract: exit != 0 (not killed), exactly one `Error: ` line, no traceback.

    quiet: the command needed no network, so stderr must be that one line and nothing else.
    Returns the error line.
    """
    assert not result.timed_out, "timed out\n" + result.describe()
    assert result.returncode > 0, result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1, f"want exactly one 'Error: ' line\n{result.describe()}"
    assert len(errors[0]) > len("Error: "), result.describe()
    if quiet:
        assert lines == errors, f"stderr should be only the error line\n{result.describe()}"
    return errors[0]


def fields(stdout: str) -> dict[str, str]:
    """`Label: value` lines of stdout as a dict (first occurrence wins)."""
    out: dict[str, str] = {}
    for line in stdout.splitlines():
        label, sep, value = line.partition(": ")
        if sep and label not in out:
            out[label] = value
    return out


def peer_ids(stdout: str) -> list[str]:
    return PEER_ID_LINE.findall(stdout)


def assert_same_files(spec, out_dir: Path) -> None:
    """Every file of the torrent `spec` (a TorrentSpec) is at out_dir/<name>/<path...> with
    the bytes of its source under spec.data_root."""
    for parts, _ in spec.files:
        got = out_dir.joinpath(*parts)
        assert got.read_bytes() == spec.data_root.joinpath(*parts).read_bytes(), got
