"""The click group and the entry point.

Commands are loaded lazily (click's "LazyGroup" pattern): COMMANDS names the
module and function of each one, and a command's module is imported only when
that command runs. So `decode` imports click and the bencode decoder, not the
swarm, and `--help` imports no command at all: its list comes from the table.
tests/unit/test_cli_startup.py checks that the table's help agrees with each
command's docstring, and that a light command leaves the engine unimported.
"""

from __future__ import annotations

import importlib
import sys

import click

from app.cli.tracing import expand_trace_args
from app.core.errors import TorrentError

# name -> ("module:function", the first sentence of its docstring, as --help lists it)
COMMANDS: dict[str, tuple[str, str]] = {
    "decode": ("app.cli.stages:decode", "Decode a bencoded VALUE and print it as JSON."),
    "info": ("app.cli.stages:info", "Show a .torrent file's tracker, length, info hash and piece hashes."),
    "peers": ("app.cli.stages:peers", "Ask the torrent's trackers, tier by tier, for peers; "
                                      "print one ip:port per line."),
    "handshake": ("app.cli.stages:handshake", "Handshake with one peer and print its peer id."),
    "download_piece": ("app.cli.stages:download_piece", "Download one verified piece of TORRENT to OUTPUT."),
    "download": ("app.cli.stages:download", "Download the whole torrent; a rerun resumes from what is "
                                            "verified on disk."),
    "magnet_parse": ("app.cli.magnet:magnet_parse", "Show a magnet link's tracker and info hash (no network)."),
    "magnet_handshake": ("app.cli.magnet:magnet_handshake", "Handshake (with extensions) with a peer of a "
                                                            "magnet link."),
    "magnet_info": ("app.cli.magnet:magnet_info", "Fetch a magnet link's metadata from peers and show it "
                                                  "like `info`."),
    "magnet_download_piece": ("app.cli.magnet:magnet_download_piece", "Download one verified piece of a "
                                                                      "magnet link's torrent."),
    "magnet_download": ("app.cli.magnet:magnet_download", "Download a magnet link's whole torrent."),
    "seed": ("app.cli.seed:seed", "Seed TORRENT from PATH until Ctrl-C."),
    "create": ("app.cli.share:create", "Make a .torrent of the file or directory PATH; print its info hash "
                                       "and magnet link."),
    "tracker": ("app.cli.share:tracker", "Run a small in-memory HTTP tracker for offline teaching and demos."),
    "demo": ("app.cli.demo:demo", "Run a whole swarm on this machine: a generated payload, a torrent made by "
                                  "`create`, the embedded tracker, SEEDERS `seed` processes and one download, "
                                  "then verify it and print a summary."),
    "files": ("app.cli.files:files", "List the torrent's files, one per line: 1-based index, size in bytes, path."),
    "verify": ("app.cli.files:verify_command", "Hash the data at PATH and print, per file, whether it is "
                                               "complete (no network)."),
    "stream": ("app.cli.stream:stream", "Write one file's bytes to stdout in order, as each verified piece "
                                        "arrives."),
    "dht_ping": ("app.cli.dht:dht_ping", "Ping a DHT node and print its node id (hex)."),
    "dht_get_peers": ("app.cli.dht:dht_get_peers", "Find a torrent's peers in the DHT; print one ip:port "
                                                   "per line."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use, from COMMANDS."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, function = COMMANDS[cmd_name][0].split(":")
        command = getattr(importlib.import_module(module), function)
        assert isinstance(command, click.Command), f"{module}:{function} is not a click command"
        return command

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as exc:   # "Did you mean ...?" from the table
            raise click.exceptions.NoSuchCommand(exc.command_name, possibilities=COMMANDS, ctx=ctx) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The `--help` list, from the table, shortened as click shortens a docstring."""
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [(name, click.Command(name, help=text).get_short_help_str(limit))
                for name, (_, text) in sorted(COMMANDS.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """A BitTorrent toolkit: every protocol stage as its own command."""


def main() -> None:
    """Run the CLI; every failure becomes one `Error:` line on stderr and exit code 1."""
    try:
        cli.main(expand_trace_args(sys.argv[1:]), prog_name="your_bittorrent.sh", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        _fail("interrupted", 130)
    except click.ClickException as exc:
        _fail(f"{exc.format_message()} (see --help)", 2)
    except KeyboardInterrupt:
        _fail("interrupted; verified pieces are kept on disk", 130)
    except TorrentError as exc:
        _fail(str(exc))
    except TimeoutError:
        _fail("timed out")
    except OSError as exc:
        _fail(_os_error_text(exc))
    except Exception as exc:  # a bug, not bad input: still one line, details at -vv
        import logging
        logging.getLogger("app").debug("unexpected error", exc_info=True)
        _fail(f"unexpected {type(exc).__name__}: {exc} (a bug; -vv shows where)")
    sys.stdout.flush()


def _os_error_text(exc: OSError) -> str:
    if exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    return exc.strerror or str(exc) or type(exc).__name__


def _fail(message: str, code: int = 1) -> None:
    sys.stdout.flush()
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)
