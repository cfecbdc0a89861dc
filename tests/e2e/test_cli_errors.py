"""The error contract on bad usage and bad local input: exit != 0, one `Error: ` line,
no traceback; and every command answers --help."""
import pytest

from support.checks import assert_error, assert_ok
from support.cli import run_cli

COMMANDS = ["decode", "info", "peers", "handshake", "download_piece", "download",
            "magnet_parse", "magnet_handshake", "magnet_info", "magnet_download_piece",
            "magnet_download"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help(command):
    result = run_cli(command, "--help")
    assert_ok(result)
    assert "Usage" in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_missing_arguments(command):
    assert_error(run_cli(command))


def test_unknown_command():
    assert_error(run_cli("frobnicate", "x"))


def test_no_command_at_all():
    result = run_cli()
    assert "Traceback" not in result.stderr, result.describe()
    assert not result.timed_out


def test_output_in_a_missing_directory(single_swarm, tmp_path):
    out = tmp_path / "no" / "such" / "dir" / "f.bin"
    (tmp_path / "no").write_text("a file where a directory is expected")
    result = run_cli("download_piece", "-o", out, single_swarm.spec.torrent_path, 0,
                     timeout=20)
    assert_error(result)


def test_runs_from_any_directory_with_relative_paths(tmp_path):
    """The grader's cwd is not the repo: relative paths are taken from the caller's cwd."""
    (tmp_path / "v.txt").write_text("x")
    torrent = tmp_path / "t.torrent"
    torrent.write_bytes(b"d4:infod6:lengthi1e4:name1:x12:piece lengthi16384e6:pieces20:"
                        + b"\x01" * 20 + b"ee")
    result = run_cli("info", "t.torrent", cwd=tmp_path)
    assert_ok(result)
    assert "Length: 1\n" in result.stdout
