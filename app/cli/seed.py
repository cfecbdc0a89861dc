"""Giving back: `seed` serves a torrent's verified data to other peers."""

from __future__ import annotations

from typing import Any

import click

from app import client
from app.cli.common import human_bytes, run_async, setup_logging, swarm_options
from app.cli.dht_options import dht_config
from app.cli.transfer_options import upload_limit_option
from app.io.swarm import SwarmConfig


@click.command()
@click.argument("torrent", type=click.Path(dir_okay=False))
@click.argument("path", type=click.Path())
@swarm_options
@upload_limit_option
def seed(torrent: str, path: str, **options: Any) -> None:
    """Seed TORRENT from PATH until Ctrl-C.

    PATH means what it means for `download -o`: the file itself for a
    single-file torrent, the directory holding <name>/ for a multi-file one.
    The data is verified first; only pieces that verify are served."""
    parsed = client.load_torrent(torrent)
    source = client.Source.of_torrent(parsed, options.pop("peers"))
    setup_logging(options)
    config = SwarmConfig(max_peers=options["max_peers"], port=options["port"],
                         announce_timeout=options["tracker_timeout"], fast_extension=options["fast_extension"],
                         max_upload_rate=options["max_upload_limit"])
    click.echo(f"Seeding {parsed.info.name} on port {options['port']} (Ctrl-C stops)", err=True)
    result = run_async(client.seed_async(parsed.info, path, source, config, dht_config(options, options["port"])))
    click.echo(f"Stopped; uploaded {human_bytes(result.uploaded)}", err=True)
