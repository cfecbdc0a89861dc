"""Looking at a torrent's files: `files` lists them, `verify` checks them on disk.

Neither needs the network for a .torrent file; `files` imports the engine
(app.client) only for a magnet link, whose metadata comes from peers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from app.cli.common import (
    configure_logging,
    echo_lines,
    logging_options,
    peer_option,
    run_async,
    tracker_timeout_option,
)
from app.core.errors import TorrentError
from app.io.torrent_file import load_torrent
from app.io.verify import display_path, verify

if TYPE_CHECKING:
    from app.core.metainfo import Info
    from app.core.tracker import PeerAddress


def load_info(torrent_or_magnet: str, peers: tuple[PeerAddress, ...] = (), timeout: float = 10.0) -> Info:
    """A .torrent file's info, or a magnet link's, fetched from peers."""
    if torrent_or_magnet.startswith("magnet:"):
        from app import client
        from app.core.magnet import parse_magnet
        source = client.Source.of_magnet(parse_magnet(torrent_or_magnet), peers)
        return run_async(client.magnet_metadata(source, timeout))
    return load_torrent(torrent_or_magnet).info


@click.command()
@click.argument("torrent_or_magnet", metavar="TORRENT_OR_MAGNET")
@peer_option
@tracker_timeout_option
@logging_options
def files(torrent_or_magnet: str, peers: tuple[PeerAddress, ...], tracker_timeout: float,
          **logging_args: Any) -> None:
    """List the torrent's files, one per line: 1-based index, size in bytes, path.

    The index is what --select-file takes. A magnet link's file list comes from
    its metadata, fetched from peers."""
    configure_logging(**logging_args)
    info = load_info(torrent_or_magnet, peers, tracker_timeout)
    echo_lines([f"{i} {f.length} {display_path(info, f)}" for i, f in enumerate(info.files, start=1)])


@click.command("verify")
@click.argument("torrent", type=click.Path(dir_okay=False))
@click.argument("path", type=click.Path())
@logging_options
def verify_command(torrent: str, path: str, **logging_args: Any) -> None:
    """Hash the data at PATH and print, per file, whether it is complete (no network).

    PATH means what it means for `download -o`: the file of a single-file
    torrent, the directory holding <name>/ of a multi-file one. Each line is
    the file's index, `complete`, `incomplete (good/total pieces)` or
    `missing`, and its path. Exits 1 if any file is not complete."""
    configure_logging(**logging_args)
    info = load_torrent(torrent).info
    checks = verify(info, Path(path))
    lines = []
    for check in checks:
        state = ("complete" if check.complete else
                 "missing" if not check.exists else
                 f"incomplete ({check.good_pieces}/{check.pieces} pieces)")
        lines.append(f"{check.index} {state} {check.path}")
    echo_lines(lines)
    bad = sum(not c.complete for c in checks)
    if bad:
        raise TorrentError(f"{bad} of {len(checks)} files are not complete")
