"""Options that shape a transfer, with aria2c's names: --select-file, --sequential,
--max-download-limit, --max-upload-limit. What they mean for the engine is in
app/cli/downloads.py."""

from __future__ import annotations

from collections.abc import Callable

import click

RATE_HELP = "RATE in bytes/s with K/M suffixes (binary: 500K, 2M); 0 means unlimited."


def _rate(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int:
    if value is None:
        return 0
    from app.core.rate import parse_rate
    try:
        return parse_rate(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def upload_limit_option(command: Callable) -> Callable:
    return click.option("--max-upload-limit", "max_upload_limit", metavar="RATE", callback=_rate,
                        help="Most upload bandwidth, also while seeding. " + RATE_HELP)(command)


def download_limit_option(command: Callable) -> Callable:
    return click.option("--max-download-limit", "max_download_limit", metavar="RATE", callback=_rate,
                        help="Most download bandwidth, averaged over seconds. " + RATE_HELP)(command)


def sequential_option(command: Callable) -> Callable:
    return click.option("--sequential", is_flag=True,
                        help="Fetch pieces in order (a few ahead still rarest first), "
                             "so the start of the data is usable early.")(command)


def select_file_option(command: Callable) -> Callable:
    return click.option("--select-file", "select_file", metavar="SPEC",
                        help="Download only these files: 1-based indices and ranges as `files` "
                             "numbers them, e.g. 1,3-5. Bytes of other files that share a piece "
                             "go to a hidden .parts file in the output directory.")(command)


def download_options(command: Callable) -> Callable:
    """The four, for `download` and `magnet_download`."""
    for option in (upload_limit_option, download_limit_option, sequential_option, select_file_option):
        command = option(command)
    return command
