"""`demo`: the whole protocol end to end on 127.0.0.1, with nothing to set up."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import click

from app.cli.common import human_bytes, logging_options, make_display, run_async, setup_logging
from app.cli.tracing import trace_options
from app.core.errors import TorrentError
from app.demo import run_demo


@click.command()
@click.option("--size", default=64, show_default=True, type=click.IntRange(1, 65536),
              help="Payload size in MiB.")
@click.option("--seeders", default=3, show_default=True, type=click.IntRange(1, 20))
@click.option("--keep", type=click.Path(file_okay=False),
              help="Work in this directory and keep it (payload, torrent, logs, download).")
@click.option("--piece-map/--no-piece-map", default=True, show_default=True,
              help="A live map of the pieces and peers instead of the progress bar (terminal only).")
@trace_options
@logging_options
def demo(size: int, seeders: int, keep: str | None, piece_map: bool, **options: Any) -> None:
    """Run a whole swarm on this machine: a generated payload, a torrent made by
    `create`, the embedded tracker, SEEDERS `seed` processes and one download,
    then verify it and print a summary."""
    quiet = setup_logging(options)
    workdir = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="bt-demo-"))
    say = (lambda text: None) if quiet else (lambda text: click.echo(f"demo: {text}", err=True))
    display, watch = make_display(piece_map, quiet)
    try:
        result = run_async(run_demo(workdir, size << 20, seeders, progress=display, say=say, started=watch))
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    display.finish(result.download, result.size)
    if not result.verified:
        raise TorrentError("the downloaded file does not match the payload")
    d = result.download
    rate = result.size / d.seconds if d.seconds else 0.0
    click.echo(f"Verified {human_bytes(result.size)} from {d.peers_used} of {result.seeders} seeders "
               f"in {d.seconds:.2f} s ({human_bytes(rate)}/s)")
