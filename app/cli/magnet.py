"""The magnet-link stages (BEP 9): parse, handshake, info, download_piece, download.

`magnet_parse` needs no network, so the engine (app.client) is imported inside
the commands that use it, not at the top.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from app.cli.common import (
    configure_logging,
    echo_lines,
    info_lines,
    logging_options,
    peer_option,
    piece_map_option,
    run_async,
    seed_after_option,
    swarm_options,
    tracker_timeout_option,
)
from app.cli.dht_options import dht_config, dht_options
from app.cli.tracing import trace_options
from app.cli.transfer_options import download_options
from app.core.magnet import parse_magnet

if TYPE_CHECKING:
    from app.core.tracker import PeerAddress


@click.command("magnet_parse")
@click.argument("link")
def magnet_parse(link: str) -> None:
    """Show a magnet link's tracker and info hash (no network).

    `Info Hash:` is the v1 hash (btih); a v2 link's SHA-256 (btmh) is `Info Hash v2:`."""
    magnet = parse_magnet(link)
    lines = [f"Tracker URL: {magnet.trackers[0] if magnet.trackers else ''}"]
    if magnet.has_v1_hash:   # btih; a btmh-only link has no SHA-1 info hash
        lines.append(f"Info Hash: {magnet.info_hash.hex()}")
    if magnet.info_hash_v2 is not None:
        lines.append(f"Info Hash v2: {magnet.info_hash_v2.hex()}")
    lines += [f"Tracker URL: {t}" for t in magnet.trackers[1:]]
    if magnet.display_name:
        lines.append(f"Name: {magnet.display_name}")
    echo_lines(lines)


@click.command("magnet_handshake")
@click.argument("link")
@peer_option
@tracker_timeout_option
@trace_options
@logging_options
def magnet_handshake(link: str, peers: tuple[PeerAddress, ...], tracker_timeout: float, **logging_args: Any) -> None:
    """Handshake (with extensions) with a peer of a magnet link."""
    from app import client
    configure_logging(**logging_args)
    source = client.Source.of_magnet(parse_magnet(link), peers)
    peer_id, ut_metadata = run_async(client.magnet_handshake(source, tracker_timeout))
    click.echo(f"Peer ID: {peer_id.hex()}")
    click.echo(f"Peer Metadata Extension ID: {ut_metadata if ut_metadata is not None else 'none'}")


@click.command("magnet_info")
@click.argument("link")
@peer_option
@dht_options
@tracker_timeout_option
@trace_options
@logging_options
def magnet_info(link: str, peers: tuple[PeerAddress, ...], tracker_timeout: float, **logging_args: Any) -> None:
    """Fetch a magnet link's metadata from peers and show it like `info`."""
    from app import client
    dht = dht_config({k: logging_args.pop(k) for k in ("dht", "dht_bootstrap", "dht_read_only")})
    configure_logging(**logging_args)
    magnet = parse_magnet(link)
    info = run_async(client.magnet_metadata(client.Source.of_magnet(magnet, peers), tracker_timeout, dht))
    echo_lines(info_lines(magnet.trackers[0] if magnet.trackers else None, info))


@click.command("magnet_download_piece")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Where to write the piece.")
@click.argument("link")
@click.argument("index", type=int)
@swarm_options
@piece_map_option
def magnet_download_piece(output: str, link: str, index: int, **options: Any) -> None:
    """Download one verified piece of a magnet link's torrent."""
    from app.cli.downloads import download_magnet
    download_magnet(link, output, index, options)


@click.command("magnet_download")
@click.option("-o", "--output", type=click.Path(), help="Output path. Default: the link's dn= name.")
@click.argument("link")
@swarm_options
@piece_map_option
@seed_after_option
@download_options
def magnet_download(output: str | None, link: str, **options: Any) -> None:
    """Download a magnet link's whole torrent."""
    from app.cli.downloads import download_magnet
    download_magnet(link, output, None, options)
