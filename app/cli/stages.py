"""The base stages, in course order: decode, info, peers, handshake, download_piece, download.

Each command imports what only it needs in its body (the torrent file reader,
the engine), so `decode` and `info` start without the network code.
"""

from __future__ import annotations

import json
import os
from typing import Any

import click

from app.cli.common import (
    configure_logging,
    echo_lines,
    first_tracker,
    info_lines,
    logging_options,
    peer_argument,
    piece_map_option,
    run_async,
    seed_after_option,
    swarm_options,
    to_json_value,
    tracker_timeout_option,
)
from app.cli.tracing import trace_options
from app.cli.transfer_options import download_options
from app.core import bencode


@click.command()
@click.argument("value")
def decode(value: str) -> None:
    """Decode a bencoded VALUE and print it as JSON."""
    decoded = bencode.decode(os.fsencode(value))
    click.echo(json.dumps(to_json_value(decoded), ensure_ascii=False))


@click.command()
@click.argument("torrent", type=click.Path(dir_okay=False))
def info(torrent: str) -> None:
    """Show a .torrent file's tracker, length, info hash and piece hashes."""
    from app.io.torrent_file import load_torrent
    parsed = load_torrent(torrent)
    echo_lines(info_lines(parsed.announce or first_tracker(parsed.trackers), parsed.info))


@click.command()
@click.argument("torrent", type=click.Path(dir_okay=False))
@tracker_timeout_option
@trace_options
@logging_options
def peers(torrent: str, tracker_timeout: float, **logging_args: Any) -> None:
    """Ask the torrent's trackers, tier by tier, for peers; print one ip:port per line."""
    from app import client
    configure_logging(**logging_args)
    parsed = client.load_torrent(torrent)
    found = run_async(client.find_peers(client.Source.of_torrent(parsed), timeout=tracker_timeout))
    echo_lines([str(p) for p in found])


@click.command()
@click.argument("torrent", type=click.Path(dir_okay=False))
@click.argument("peer", metavar="IP:PORT")
@trace_options
@logging_options
def handshake(torrent: str, peer: str, **logging_args: Any) -> None:
    """Handshake with one peer and print its peer id."""
    from app import client
    configure_logging(**logging_args)
    parsed = client.load_torrent(torrent)
    peer_id = run_async(client.handshake(parsed.info.info_hash, peer_argument(peer)))
    click.echo(f"Peer ID: {peer_id.hex()}")


@click.command("download_piece")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Where to write the piece.")
@click.argument("torrent", type=click.Path(dir_okay=False))
@click.argument("index", type=int)
@swarm_options
@piece_map_option
def download_piece(output: str, torrent: str, index: int, **options: Any) -> None:
    """Download one verified piece of TORRENT to OUTPUT."""
    from app.cli.downloads import download_torrent
    download_torrent(torrent, output, index, options)


@click.command()
@click.option("-o", "--output", type=click.Path(),
              help="Output file (single-file) or directory (multi-file). Default: the torrent's name.")
@click.argument("torrent", type=click.Path(dir_okay=False))
@swarm_options
@piece_map_option
@seed_after_option
@download_options
def download(output: str | None, torrent: str, **options: Any) -> None:
    """Download the whole torrent; a rerun resumes from what is verified on disk."""
    from app.cli.downloads import download_torrent
    download_torrent(torrent, output, None, options)
