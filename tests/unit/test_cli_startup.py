"""Start-up: each command imports only what it needs (app/cli/group.py loads them lazily).

The grader starts a new process for every stage, so `decode` must not pay for the
swarm. These tests check what is imported, never how long it takes; each run is a
fresh interpreter, since this one has imported everything already.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from app.cli import cli
from app.cli.group import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
TORRENT = str(ROOT / "samples" / "codercat.gif.torrent")
MAGNET = "magnet:?xt=urn:btih:ad42ce8109f54c99613ce38f9b4d87e70f24a165&dn=magnet1.gif"
ENGINE = {"app.client", "app.io.swarm", "app.io.peer", "app.io.dht", "app.io.trace", "asyncio", "logging"}
UNRELATED_TO_DOWNLOAD = {"app.demo", "app.io.tracker_server", "app.io.create", "app.core.create",
                         "app.io.stream_out", "app.io.verify", "app.cli.piece_map"}

# Runs the real entry point (app.cli.main), then reports the modules it imported.
SCRIPT = """
import json, sys
sys.argv = ["your_bittorrent.sh", *json.loads(sys.argv[1])]
from app.cli import main
try:
    main()
finally:
    sys.stderr.write("\\nMODULES " + json.dumps(sorted(sys.modules)) + "\\n")
"""


def run(*args: str) -> tuple[int, str, set[str]]:
    """Exit code, stdout and the imported modules of one run of the CLI."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(args)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=60)
    modules = re.search(r"^MODULES (.*)$", done.stderr, re.M)
    assert modules, done.stderr
    return done.returncode, done.stdout, set(json.loads(modules[1]))


@pytest.mark.parametrize("args, stdout", [
    (("decode", "5:hello"), '"hello"\n'),
    (("info", TORRENT), "Tracker URL: http://bittorrent-test-tracker.codecrafters.io/announce\n"),
    (("magnet_parse", MAGNET), "Tracker URL: \nInfo Hash: ad42ce8109f54c99613ce38f9b4d87e70f24a165\n"),
    (("--help",), "Usage: your_bittorrent.sh [OPTIONS] COMMAND [ARGS]...\n"),
    (("download", "--help"), "Usage: your_bittorrent.sh download [OPTIONS] TORRENT\n"),
], ids=["decode", "info", "magnet_parse", "help", "download-help"])
def test_commands_without_network_do_not_import_the_engine(args, stdout):
    code, out, modules = run(*args)
    assert code == 0
    assert out.startswith(stdout)
    assert modules & ENGINE == set()


def test_group_help_imports_no_command_module():
    _, _, modules = run("--help")
    assert {m for m in modules if m.startswith("app.cli.")} == {"app.cli.group", "app.cli.tracing"}


def test_download_imports_the_engine_but_not_unrelated_subsystems():
    # A bad --select-file fails after the download path is imported, before any network.
    code, _, modules = run("download", "--no-dht", "--select-file", "zz", "-o", "unused", TORRENT)
    assert code == 1
    assert {"app.client", "app.io.swarm"} <= modules
    assert modules & UNRELATED_TO_DOWNLOAD == set()


def readme_commands() -> list[str]:
    """The command names in the first column of the README's Commands table."""
    section = (ROOT / "README.md").read_text().split("## Commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(\w+)", section, re.M)


def test_every_readme_command_is_in_the_table_and_loads_with_help():
    names = readme_commands()
    assert sorted(names) == sorted(COMMANDS)
    ctx = click.Context(cli, info_name="your_bittorrent.sh")
    for name in names:
        command = cli.get_command(ctx, name)
        assert isinstance(command, click.Command), name
        assert command.name == name
        assert command.help and command.get_short_help_str(), name


def test_the_tables_help_is_what_the_commands_docstrings_give():
    """`--help` lists the commands from COMMANDS: it must read as if they were all imported."""
    ctx = click.Context(cli, info_name="your_bittorrent.sh")
    eager = click.Group(cli.name, help=cli.help, context_settings=cli.context_settings,
                        commands={name: cli.get_command(ctx, name) for name in COMMANDS})
    assert cli.get_help(ctx) == eager.get_help(click.Context(eager, info_name="your_bittorrent.sh"))


def test_an_unknown_command_suggests_the_close_ones():
    with pytest.raises(click.UsageError) as caught:
        cli.main(["decod"], standalone_mode=False)
    assert caught.value.format_message() == "No such command 'decod'. (Did you mean one of: 'decode', 'demo'?)"
