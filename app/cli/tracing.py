"""`--trace` and `--trace=all`: the options that turn on the wire trace (app.io.trace,
imported only when one of them is given)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import click

# click cannot give an option an optional value without it swallowing the next
# argument (`--trace file.torrent`), so `--trace=all` is read as this hidden flag.
ALL_FLAG = "--trace-all"


def expand_trace_args(argv: Sequence[str]) -> list[str]:
    return [ALL_FLAG if arg == "--trace=all" else arg for arg in argv]


def _enable(show_all: bool) -> Callable[[click.Context, click.Parameter, bool], None]:
    def callback(_ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if not value:
            return
        from app.io import trace
        if trace.ACTIVE is None or show_all:
            trace.enable(show_all=show_all)
    return callback


def trace_options(command: Callable) -> Callable:
    """Add --trace (and --trace=all) to a command that talks to the network."""
    command = click.option(ALL_FLAG, is_flag=True, expose_value=False, hidden=True,
                           callback=_enable(show_all=True))(command)
    return click.option("--trace", is_flag=True, expose_value=False, callback=_enable(show_all=False),
                        help="Print every protocol message on stderr: handshakes, messages with their fields, "
                             "tracker announces. Block messages: the first few per peer, then a count "
                             "(--trace=all shows every one).")(command)
