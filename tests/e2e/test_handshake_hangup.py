"""A peer that accepts and hangs up before its handshake: a clean `Error:` line.

Regression: the short read raised asyncio.IncompleteReadError, an EOFError,
which click turns into "Aborted", so the user was told they pressed Ctrl-C.
"""
import socket
import threading

from support.checks import assert_error
from support.cli import run_cli
from support.torrents import random_hashes, write_raw_torrent


def test_peer_that_hangs_up_before_its_handshake(tmp_path):
    spec = write_raw_torrent(tmp_path / "t.torrent", announce="http://127.0.0.1:1/announce",
                             name="x.iso", piece_length=262144,
                             piece_hashes=random_hashes(2, seed=9), length=2 * 262144)
    server = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def hang_up_once() -> None:
        conn, _ = server.accept()
        accepted.append(True)
        conn.close()

    thread = threading.Thread(target=hang_up_once, daemon=True)
    thread.start()
    try:
        result = run_cli("handshake", spec.torrent_path, f"127.0.0.1:{server.getsockname()[1]}")
    finally:
        server.close()
        thread.join(timeout=5)
    assert accepted, "the client never connected"
    assert_error(result)
    assert "interrupted" not in result.stderr, result.describe()
    assert result.returncode == 1, result.describe()
