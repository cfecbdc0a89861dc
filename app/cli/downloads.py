"""What the download commands share: a magnet's metadata, the engine's settings
from the options, the progress display, the run.

This module imports the engine (app.client, app.io.swarm), so the commands
import it inside their bodies: only a download pays for it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from app import client
from app.cli.common import make_display, run_async, setup_logging
from app.cli.dht_options import dht_config
from app.core.magnet import parse_magnet
from app.core.metainfo import Info, default_output
from app.core.selection import parse_spec, pieces_for_files
from app.io.swarm import SwarmConfig


def download_torrent(path: str, output: str | None, index: int | None, options: dict) -> None:
    """`download_piece` (index given) and `download` (index None) of a .torrent file."""
    torrent = client.load_torrent(path)
    source = client.Source.of_torrent(torrent, options.pop("peers"))
    quiet = setup_logging(options)
    download_with_progress(torrent.info, output or default_output(torrent.info), source, index, options, quiet)


def download_magnet(link: str, output: str | None, index: int | None, options: dict) -> None:
    """The same for a magnet link, once its metadata is fetched from peers."""
    magnet = parse_magnet(link)
    source = client.Source.of_magnet(magnet, options.pop("peers"))
    quiet = setup_logging(options)
    info = run_async(client.magnet_metadata(source, timeout=options["tracker_timeout"],
                                            dht=dht_config(options, options["port"]), piece_layers=True))
    download_with_progress(info, output or default_output(info, magnet.display_name), source, index, options, quiet)


def download_with_progress(info: Info, output: str, source: client.Source, index: int | None,
                           options: dict, quiet: bool) -> None:
    whole = index is None
    config = SwarmConfig(max_peers=options["max_peers"], port=options["port"], listen=whole,
                         announce_timeout=options["tracker_timeout"],
                         seed=options.get("seed_after"), fast_extension=options["fast_extension"])
    config = transfer_config(config, options)
    files = selected_files(info, options)
    display, watch = make_display(options.pop("piece_map", False), quiet)
    result = run_async(client.download_async(info, output, source, piece=index, started=watch,
                                             config=config, progress=display, files=files,
                                             dht=dht_config(options, options["port"])))
    display.finish(result, selected_bytes(info, files) if index is None else info.piece_size(index))


def transfer_config(config: SwarmConfig, options: dict[str, Any]) -> SwarmConfig:
    return dataclasses.replace(config, sequential=bool(options.get("sequential")),
                               max_download_rate=options.get("max_download_limit") or 0,
                               max_upload_rate=options.get("max_upload_limit") or 0)


def selected_files(info: Info, options: dict[str, Any]) -> frozenset[int] | None:
    """The --select-file choice as 0-based indices (None: every file). SelectionError if bad."""
    spec = options.get("select_file")
    return None if spec is None else parse_spec(spec, len(info.files))


def selected_bytes(info: Info, files: frozenset[int] | None) -> int:
    if files is None:
        return info.total_length
    return sum(info.piece_size(i) for i in pieces_for_files(info, files))
