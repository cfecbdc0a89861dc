"""BEP 47's attr "x": files the torrent marks executable are created with the execute
bits (as libtorrent creates them); the others, and files that already exist, keep
the usual mode."""
from __future__ import annotations

import hashlib
import os
import stat

from app.core.bencode import encode
from app.core.metainfo import parse_info
from app.io.selective_storage import SelectiveStorage
from app.io.storage import TorrentStorage
from tests.unit.test_direct_io import write_all_pieces

PIECE = 32 * 1024


def marked_info(files: list[tuple[str, int, bool]], payload: bytes):
    hashes = b"".join(hashlib.sha1(payload[i:i + PIECE]).digest() for i in range(0, len(payload), PIECE))
    entries = [{b"path": [name.encode()], b"length": size, **({b"attr": b"x"} if x else {})}
               for name, size, x in files]
    return parse_info(encode({b"name": b"tools", b"files": entries, b"piece length": PIECE, b"pieces": hashes}))


def executable(path) -> bool:
    return bool(os.stat(path).st_mode & stat.S_IXUSR)


def test_marked_files_are_created_executable(tmp_path):
    payload = os.urandom(3 * PIECE + 100)
    info = marked_info([("run.sh", PIECE + 50, True), ("notes", 2 * PIECE + 50, False), ("empty", 0, True)],
                       payload)
    storage = TorrentStorage(info, tmp_path)
    storage.open()
    write_all_pieces(storage, info, payload)
    storage.close()
    base = tmp_path / "tools"
    assert executable(base / "run.sh") and executable(base / "empty")
    assert not executable(base / "notes")
    assert (base / "run.sh").read_bytes() + (base / "notes").read_bytes() == payload


def test_a_selected_marked_file_is_executable_too(tmp_path):
    payload = os.urandom(2 * PIECE)
    info = marked_info([("a", PIECE, False), ("tool", PIECE, True)], payload)
    storage = SelectiveStorage(info, tmp_path, frozenset({1}))
    storage.open()
    storage.write_pieces(1, [payload[PIECE:]])
    storage.close()
    assert executable(tmp_path / "tools" / "tool") and not (tmp_path / "tools" / "a").exists()


def test_an_existing_file_keeps_its_mode(tmp_path):
    payload = os.urandom(PIECE)
    info = marked_info([("tool", PIECE, True), ("b", 0, False)], payload)
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "tool").write_bytes(b"")
    os.chmod(tmp_path / "tools" / "tool", 0o600)
    storage = TorrentStorage(info, tmp_path)
    storage.open()
    write_all_pieces(storage, info, payload)
    storage.close()
    assert stat.S_IMODE(os.stat(tmp_path / "tools" / "tool").st_mode) == 0o600
