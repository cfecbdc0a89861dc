"""The DHT stages (BEP 5): dht_ping and dht_get_peers.

A DHT node is a UDP service that answers four queries: ping, find_node,
get_peers and announce_peer. `dht_ping` sends the first and prints the id the
node answers with. `dht_get_peers` walks the DHT towards an info hash, asking
the nodes nearest to it (three at a time) until the closest ones have
answered, and prints the peers they store, one ip:port per line, like `peers`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import click

from app.cli.common import configure_logging, echo_lines, logging_options, run_async
from app.cli.dht_options import bootstrap_addresses, bootstrap_option
from app.cli.tracing import trace_options
from app.core.errors import NoPeersError, TorrentError
from app.core.magnet import parse_magnet
from app.core.tracker import PeerAddress
from app.io.dht import DhtConfig, DhtNode, resolve_async
from app.io.dht_state import parse_host_port


def _info_hash(text: str) -> bytes:
    if text.startswith("magnet:"):
        return parse_magnet(text).info_hash
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) != 20:
        raise click.BadParameter("expected a 40-hex info hash or a magnet link", param_hint="INFO_HASH_OR_MAGNET")
    return value


async def _ping(host: str, port: int, timeout: float) -> bytes:
    addresses = await resolve_async([(host, port)], timeout)
    if not addresses:
        raise TorrentError(f"cannot resolve {host}")
    config = DhtConfig(port=0, bootstrap=(), state_path=None, query_timeout=timeout)
    async with DhtNode(config) as node:
        try:
            return await node.ping(addresses[0])
        except TimeoutError:
            raise TorrentError(f"no answer from {host}:{port} within {timeout:.0f} s") from None


@click.command("dht_ping")
@click.argument("address", metavar="HOST:PORT")
@click.option("--timeout", default=5.0, show_default=True, type=click.FloatRange(0.1, 60), help="Seconds to wait.")
@trace_options
@logging_options
def dht_ping(address: str, timeout: float, **logging_args: Any) -> None:
    """Ping a DHT node and print its node id (hex)."""
    configure_logging(**logging_args)
    try:
        host, port = parse_host_port(address)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="HOST:PORT") from None
    node_id = run_async(_ping(host, port, timeout))
    click.echo(node_id.hex())


async def _get_peers(info_hash: bytes, config: DhtConfig, timeout: float) -> list[PeerAddress]:
    async with DhtNode(config) as node:
        try:
            async with asyncio.timeout(timeout):
                result = await node.get_peers(info_hash)
        except TimeoutError:
            raise TorrentError(f"the DHT lookup took longer than {timeout:.0f} s") from None
    return result.peers


@click.command("dht_get_peers")
@click.argument("target", metavar="INFO_HASH_OR_MAGNET")
@bootstrap_option
@click.option("--port", default=0, type=click.IntRange(0, 65535), help="UDP port (default: any free one).")
@click.option("--timeout", default=20.0, show_default=True, type=click.FloatRange(0.5, 600),
              help="Seconds the whole lookup may take.")
@trace_options
@logging_options
def dht_get_peers(target: str, dht_bootstrap: tuple[str, ...], port: int, timeout: float,
                  **logging_args: Any) -> None:
    """Find a torrent's peers in the DHT; print one ip:port per line."""
    configure_logging(**logging_args)
    info_hash = _info_hash(target)
    config = dataclasses.replace(DhtConfig(port=port, bootstrap=bootstrap_addresses(dht_bootstrap)), read_only=True)
    peers = run_async(_get_peers(info_hash, config, timeout))
    if not peers:
        raise NoPeersError("the DHT knows no peers for this torrent")
    echo_lines([str(p) for p in peers])
