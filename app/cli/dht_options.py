"""The DHT options shared by the download commands, seed and the dht_* stages.

--dht-bootstrap HOST:PORT (repeatable) replaces the public routers; without
it the environment variable BITTORRENT_DHT_BOOTSTRAP (addresses separated by
spaces or commas, or `none`) is read, which is how the test suite keeps every
run on loopback.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from app.io.dht import DhtConfig

BOOTSTRAP_ENV = "BITTORRENT_DHT_BOOTSTRAP"


def _check_bootstrap(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    from app.io.dht_state import parse_host_port
    for value in values:
        try:
            parse_host_port(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    return values


def bootstrap_option(command: Callable) -> Callable:
    return click.option("--dht-bootstrap", "dht_bootstrap", multiple=True, metavar="HOST:PORT",
                        callback=_check_bootstrap,
                        help="A DHT node to start from (repeatable). Default: the public routers, "
                             f"or ${BOOTSTRAP_ENV}.")(command)


def dht_options(command: Callable) -> Callable:
    command = click.option("--dht-read-only", is_flag=True,
                           help="Use the DHT without answering others (BEP 43).")(command)
    command = click.option("--dht/--no-dht", "dht", default=True, show_default=True,
                           help="Find peers in the DHT beside the trackers (never for private torrents).")(command)
    return bootstrap_option(command)


def bootstrap_addresses(given: tuple[str, ...]) -> tuple[tuple[str, int], ...] | None:
    """The command line's addresses, else the environment's; None means the public routers."""
    from app.io.dht_state import parse_host_port
    if given:
        return tuple(parse_host_port(v) for v in given)
    text = os.environ.get(BOOTSTRAP_ENV)
    if text is None:
        return None
    words = text.replace(",", " ").split()
    if words in ([], ["none"]):
        return ()
    try:
        return tuple(parse_host_port(w) for w in words)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=BOOTSTRAP_ENV) from None


def dht_config(options: dict, port: int = 6881) -> DhtConfig | None:
    """The DhtConfig the options ask for (None with --no-dht). Reads, never removes, the keys."""
    if not options.get("dht", True):
        return None
    from app.io.dht import DhtConfig
    return DhtConfig(port=port, bootstrap=bootstrap_addresses(tuple(options.get("dht_bootstrap") or ())),
                     read_only=bool(options.get("dht_read_only")))
