"""`stream`: one file of a torrent to stdout, in order, while it downloads."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from app import client
from app.cli.common import ProgressDisplay, run_async, setup_logging, swarm_options
from app.cli.dht_options import dht_config
from app.cli.transfer_options import download_limit_option
from app.core.magnet import parse_magnet
from app.core.metainfo import Info
from app.core.selection import SelectionError
from app.io.stream_out import StreamWriter
from app.io.swarm import Swarm, SwarmConfig, SwarmResult


@click.command()
@click.argument("torrent_or_magnet", metavar="TORRENT_OR_MAGNET")
@click.option("--file", "number", default=1, show_default=True, type=click.IntRange(min=1),
              help="Which file (its index in `files`).")
@click.option("-o", "--output", default="-", show_default=True,
              help="Where the bytes go: - for stdout, or a file.")
@click.option("--save-dir", type=click.Path(file_okay=False),
              help="Keep the downloaded data here, so a later run resumes "
                   "(default: a temporary directory, removed at the end).")
@swarm_options
@download_limit_option
def stream(torrent_or_magnet: str, number: int, output: str, save_dir: str | None, **options: Any) -> None:
    """Write one file's bytes to stdout in order, as each verified piece arrives.

    Pieces are fetched in order (--sequential), and only verified bytes are written,
    so `stream x.torrent --file 2 | mpv -` plays while it downloads. Progress and logs
    go to stderr. When the reader closes the pipe, the download stops quietly (exit 0)."""
    peers = options.pop("peers")
    quiet = setup_logging(options)
    if torrent_or_magnet.startswith("magnet:"):
        source = client.Source.of_magnet(parse_magnet(torrent_or_magnet), peers)
        info = run_async(client.magnet_metadata(source, options["tracker_timeout"],
                                                  dht_config(options, options["port"]), piece_layers=True))
    else:
        parsed = client.load_torrent(torrent_or_magnet)
        source, info = client.Source.of_torrent(parsed, peers), parsed.info
    if number > len(info.files):
        raise SelectionError(f"--file {number}: the torrent has {len(info.files)} file(s); see `files`")
    config = SwarmConfig(max_peers=options["max_peers"], port=options["port"], listen=True,
                         announce_timeout=options["tracker_timeout"], fast_extension=options["fast_extension"],
                         sequential=True, max_download_rate=options["max_download_limit"])
    out_fd = 1 if output == "-" else os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with tempfile.TemporaryDirectory(prefix="bt-stream-") as scratch:
        base = Path(save_dir or scratch)
        display = ProgressDisplay(enabled=not quiet)
        result, gone = run_async(_stream(info, base, number - 1, source, config, out_fd, display,
                                           options))
    if gone:   # the reader left: nothing more can be written, and that is not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out_fd)
        return
    display.finish(result, info.files[number - 1].length)
    if out_fd != 1:
        os.close(out_fd)
    sys.stdout.flush()


async def _stream(info: Info, base: Path, index: int, source: client.Source, config: SwarmConfig,
                  out_fd: int, display: ProgressDisplay, options: dict[str, Any]) -> tuple[SwarmResult, bool]:
    entry = info.files[index]
    output = base if info.multi_file else base / info.name
    path = output.joinpath(info.name, *entry.path) if info.multi_file else output
    loop = asyncio.get_running_loop()
    engine: list[Swarm] = []

    def stop() -> None:
        for swarm in engine:
            swarm.stop()

    def reader_gone() -> None:   # from the writer's thread
        loop.call_soon_threadsafe(stop)

    writer = StreamWriter(info, entry, path, out_fd, reader_gone)

    def progress(p: client.Progress) -> None:
        display(p)
        if engine:
            writer.advance(engine[0].picker.done)

    try:
        result = await client.download_async(info, output, source, config=config, progress=progress,
                                             files=frozenset({index}), started=engine.append,
                                             dht=dht_config(options, options["port"]))
        if not writer.reader_gone and engine:
            writer.advance(engine[0].picker.done)
    finally:
        await asyncio.to_thread(writer.finish)
    return result, writer.reader_gone
