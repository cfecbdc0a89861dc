"""Reading a .torrent file: its bytes from disk, parsed by app.core.metainfo.

On its own so that `info`, `files` and `verify` can load a torrent without
importing the engine (app.client re-exports it as client.load_torrent).
"""

from __future__ import annotations

from pathlib import Path

from app.core.errors import MetainfoError
from app.core.metainfo import Torrent, parse_torrent


def load_torrent(path: str | Path) -> Torrent:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise MetainfoError(f"cannot read {path}: {exc.strerror}") from exc
    return parse_torrent(data)
