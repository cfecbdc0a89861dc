"""The base stages, in course order: decode, info, peers, handshake, download_piece, download."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import click

from app import client
from app.cli.common import (
    cli,
    configure_logging,
    echo_lines,
    first_tracker,
    info_lines,
    logging_options,
    peer_argument,
    piece_map_option,
    run_download,
    seed_after_option,
    swarm_options,
    to_json_value,
    tracker_timeout_option,
)
from app.cli.tracing import trace_options
from app.cli.transfer_options import download_options
from app.core import bencode
from app.core.metainfo import default_output


@cli.command()
@click.argument("value")
def decode(value: str) -> None:
    """Decode a bencoded VALUE and print it as JSON."""
    decoded = bencode.decode(os.fsencode(value))
    click.echo(json.dumps(to_json_value(decoded), ensure_ascii=False))


@cli.command()
@click.argument("torrent", type=click.Path(dir_okay=False))
def info(torrent: str) -> None:
    """Show a .torrent file's tracker, length, info hash and piece hashes."""
    parsed = client.load_torrent(torrent)
    echo_lines(info_lines(parsed.announce or first_tracker(parsed.trackers), parsed.info))


@cli.command()
@click.argument("torrent", type=click.Path(dir_okay=False))
@tracker_timeout_option
@trace_options
@logging_options
def peers(torrent: str, tracker_timeout: float, **logging_args: Any) -> None:
    """Ask the torrent's trackers, tier by tier, for peers; print one ip:port per line."""
    configure_logging(**logging_args)
    parsed = client.load_torrent(torrent)
    found = asyncio.run(client.find_peers(client.Source.of_torrent(parsed), timeout=tracker_timeout))
    echo_lines([str(p) for p in found])


@cli.command()
@click.argument("torrent", type=click.Path(dir_okay=False))
@click.argument("peer", metavar="IP:PORT")
@trace_options
@logging_options
def handshake(torrent: str, peer: str, **logging_args: Any) -> None:
    """Handshake with one peer and print its peer id."""
    configure_logging(**logging_args)
    parsed = client.load_torrent(torrent)
    peer_id = asyncio.run(client.handshake(parsed.info.info_hash, peer_argument(peer)))
    click.echo(f"Peer ID: {peer_id.hex()}")


@cli.command("download_piece")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Where to write the piece.")
@click.argument("torrent", type=click.Path(dir_okay=False))
@click.argument("index", type=int)
@swarm_options
@piece_map_option
def download_piece(output: str, torrent: str, index: int, **options: Any) -> None:
    """Download one verified piece of TORRENT to OUTPUT."""
    parsed = client.load_torrent(torrent)
    run_download(parsed.info, output, client.Source.of_torrent(parsed, options.pop("peers")), index, options)


@cli.command()
@click.option("-o", "--output", type=click.Path(),
              help="Output file (single-file) or directory (multi-file). Default: the torrent's name.")
@click.argument("torrent", type=click.Path(dir_okay=False))
@swarm_options
@piece_map_option
@seed_after_option
@download_options
def download(output: str | None, torrent: str, **options: Any) -> None:
    """Download the whole torrent; a rerun resumes from what is verified on disk."""
    parsed = client.load_torrent(torrent)
    run_download(parsed.info, output or default_output(parsed.info),
                  client.Source.of_torrent(parsed, options.pop("peers")), None, options)
