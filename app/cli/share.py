"""Giving back: `create` makes a .torrent, `tracker` runs a small tracker for demos.

Each command imports its own engine part in its body (app.io.create, app.io.tracker_server).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from app.cli.common import configure_logging, echo_lines, logging_options, run_async
from app.cli.tracing import trace_options
from app.core.create import CreateOptions, check_piece_length, tracker_tiers
from app.core.errors import MetainfoError

CREATED_BY = "py-bittorrent-toolkit"
TRACKER_SCHEMES = ("http", "https", "udp")
_SIZE = re.compile(r"(\d+)\s*([kKmM]?)(?:i?B)?")


class PieceLength(click.ParamType):
    """Bytes, or with a binary suffix: 262144, 256K, 256KiB, 1M."""
    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        match = _SIZE.fullmatch(str(value).strip())
        if not match:
            self.fail(f"{value!r} is not a size such as 262144, 256K or 1M", param, ctx)
        size = int(match[1]) * {"": 1, "k": 1024, "m": 1024 * 1024}[match[2].lower()]
        try:
            return check_piece_length(size)
        except MetainfoError as exc:
            self.fail(str(exc), param, ctx)


def _check_trackers(_ctx: click.Context, _param: click.Parameter,
                    values: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    tiers = tracker_tiers(values)
    for url in (u for tier in tiers for u in tier):
        parts = urlsplit(url)
        if parts.scheme.lower() not in TRACKER_SCHEMES or not parts.netloc:
            raise click.BadParameter(f"{url!r} is not an http(s):// or udp:// tracker URL")
    return tiers


def _check_web_seeds(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    for url in values:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise click.BadParameter(f"{url!r} is not an http:// or https:// URL")
    return values


@click.command()
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Where to write the .torrent file.")
@click.option("--tracker", "trackers", multiple=True, metavar="URL[,URL...]", callback=_check_trackers,
              help="Announce URL (repeatable). Each option is one tier; commas put several "
                   "trackers in the same tier. The first one becomes `announce`.")
@click.option("--piece-length", type=PieceLength(),
              help="Piece size, a power of two from 16K to 256M. Default: chosen for ~1000-2000 pieces.")
@click.option("--private", is_flag=True, help="Private torrent (BEP 27): peers come from the trackers only.")
@click.option("--comment", help="Free-text comment stored in the torrent.")
@click.option("--web-seed", "web_seeds", multiple=True, metavar="URL", callback=_check_web_seeds,
              help="An HTTP(S) mirror of the data (BEP 19 url-list; repeatable). For a directory, "
                   "the URL of the directory that holds <name>/.")
@click.option("--date", "with_date", is_flag=True,
              help="Record the creation date (then the file differs run to run; the info hash does not).")
@click.option("--v2", "v2_only", is_flag=True,
              help="A BitTorrent v2 torrent (BEP 52: per-file SHA-256 merkle trees), for v2 clients only.")
@click.option("--hybrid", is_flag=True,
              help="A hybrid torrent: v1 and v2 at once (BEP 52, with BEP 47 pad files), for every client.")
@click.option("-f", "--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@click.argument("path", type=click.Path(exists=True))
@logging_options
def create(output: str, trackers: tuple[tuple[str, ...], ...], piece_length: int | None,
           private: bool, comment: str | None, web_seeds: tuple[str, ...], with_date: bool,
           v2_only: bool, hybrid: bool, force: bool, path: str,
           **logging_args: Any) -> None:
    """Make a .torrent of the file or directory PATH; print its info hash and magnet link.

    Files are listed in sorted order and no date is recorded unless --date is
    given, so the same content and options always give the same info hash.
    A v1 torrent unless --v2 or --hybrid is given; those lay files out as
    libtorrent does, so they get the info hashes libtorrent would give them.
    """
    from app.io.create import make_torrent, write_torrent
    configure_logging(**logging_args)
    if v2_only and hybrid:
        raise click.BadParameter("choose one of --v2 and --hybrid (a hybrid is v2 as well)",
                                 param_hint="--v2")
    if Path(output).exists() and not force:
        raise click.BadParameter(f"{output} exists; add --force to overwrite it", param_hint="-o")
    options = CreateOptions(trackers=trackers, piece_length=piece_length, private=private,
                            comment=comment, created_by=CREATED_BY, web_seeds=web_seeds,
                            creation_date=int(time.time()) if with_date else None,
                            version="v2" if v2_only else "hybrid" if hybrid else "v1")
    created = make_torrent(path, options, exclude=[output])
    write_torrent(created.data, output)
    # As `info` prints them: `Info Hash:` is the v1 (SHA-1) hash, which a v2-only torrent
    # lacks; `Info Hash v2:` the SHA-256 one (its first 40 hex digits name it on the wire).
    v2_only = created.info_hash_v2 is not None and created.info_hash == created.info_hash_v2[:20]
    lines = [] if v2_only else [f"Info Hash: {created.info_hash.hex()}"]
    if created.info_hash_v2 is not None:
        lines.append(f"Info Hash v2: {created.info_hash_v2.hex()}")
    echo_lines([*lines, f"Magnet: {created.magnet}"])


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=6969, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0 picks a free one).")
@click.option("--interval", default=60, show_default=True, type=click.IntRange(1, 86400),
              help="Seconds clients should wait between announces.")
@trace_options
@logging_options
def tracker(host: str, port: int, interval: int, **logging_args: Any) -> None:
    """Run a small in-memory HTTP tracker for offline teaching and demos.

    Real swarms use real trackers (opentracker and the like), which are faster,
    hardened and scale; this one exists so a lesson or demo can run a whole
    swarm on one machine without the Internet. It prints its announce URL,
    serves /announce (compact and non-compact replies), forgets peers that stop
    announcing, and runs until Ctrl-C.
    """
    configure_logging(**logging_args)
    try:
        run_async(_serve_until_stopped(host, port, interval))
    except KeyboardInterrupt:
        pass  # Ctrl-C is how this command is meant to end
    click.echo("Tracker stopped.", err=True)


async def _serve_until_stopped(host: str, port: int, interval: int) -> None:
    import asyncio
    import signal

    from app.io.tracker_server import start_tracker
    server = await start_tracker(host, port, interval=interval)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    click.echo(f"Tracker URL: {server.announce_url}")
    click.echo("Serving announces; press Ctrl-C to stop.", err=True)
    try:
        await stop.wait()
    finally:
        await server.close()
