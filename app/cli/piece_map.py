"""`--piece-map`: a live grid of the torrent's pieces, and the peers beside it.

Each cell is one piece (or a few, for big torrents): missing, requested (in
flight or being hash-checked), verified, or failed its hash check. Beside the
grid each peer shows its download and upload rates and the choke flags, so
rarest-first (scattered cells filling in), the endgame (the last cells asked
of several peers) and a failing peer (red cells, then the peer gone) can be
seen as they happen.

It is redrawn once per engine tick (0.5 s) from state the engine keeps anyway,
reading it, never changing it; and only when stderr is a terminal.
`render` is pure, for the tests; `PieceMapDisplay` reads the engine and draws.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from app.cli.common import human_bytes

if TYPE_CHECKING:
    from app.io.swarm import Progress, Swarm, SwarmResult

MISSING, REQUESTED, VERIFIED, FAILED = 0, 1, 2, 3
GLYPHS = {MISSING: "·", REQUESTED: "▒", VERIFIED: "█", FAILED: "✗"}
COLOURS = {MISSING: "\x1b[2m", REQUESTED: "\x1b[33m", VERIFIED: "\x1b[32m", FAILED: "\x1b[31m"}
RESET = "\x1b[0m"
COLUMNS = 40          # cells per grid row
MAX_ROWS = 12         # beyond COLUMNS * MAX_ROWS pieces, a cell stands for several
PEERS_SHOWN = 10


@dataclass(frozen=True)
class PeerRow:
    address: str
    down: float           # bytes/s
    up: float
    peer_choking: bool    # they choke us: we may not request
    am_choking: bool      # we choke them
    requests: int         # our requests outstanding with them


def cell_state(states: Sequence[int]) -> int:
    """One cell for several pieces: a failure shows; otherwise activity; verified only when all are."""
    if FAILED in states:
        return FAILED
    if REQUESTED in states:
        return REQUESTED
    if states and all(s == VERIFIED for s in states):
        return VERIFIED
    return MISSING


def grid(states: Sequence[int], columns: int = COLUMNS, max_rows: int = MAX_ROWS) -> list[list[int]]:
    """Piece states folded into at most max_rows rows of `columns` cells."""
    per_cell = max(1, -(-len(states) // (columns * max_rows)))
    cells = [cell_state(states[i:i + per_cell]) for i in range(0, len(states), per_cell)]
    return [cells[i:i + columns] for i in range(0, len(cells), columns)] or [[]]


def render(states: Sequence[int], peers: Sequence[PeerRow], header: str, *, colour: bool = True,
           columns: int = COLUMNS, max_rows: int = MAX_ROWS, width: int = 200) -> list[str]:
    """The frame as lines: a header, then grid rows with peers to their right. No line is
    wider than `width` (a wrapped line would break the redraw in place)."""
    rows = grid(states, columns, max_rows)
    legend = "  ".join(f"{GLYPHS[s]} {name}" for s, name in
                       ((MISSING, "missing"), (REQUESTED, "requested"), (VERIFIED, "verified"), (FAILED, "failed")))
    right = [f"{'peer':<22} {'down':>10} {'up':>10}  choke  reqs"]
    for p in sorted(peers, key=lambda p: -p.down)[:PEERS_SHOWN]:
        flags = ("C" if p.peer_choking else "u") + ("c" if p.am_choking else "u")
        right.append(f"{p.address:<22} {human_bytes(p.down) + '/s':>10} {human_bytes(p.up) + '/s':>10}"
                     f"  {flags:^5}  {p.requests:>4}")
    if len(peers) > PEERS_SHOWN:
        right.append(f"... and {len(peers) - PEERS_SHOWN} more peers")
    lines = [header[:width], legend[:width]]
    room = max(0, width - columns - 3)
    for i in range(max(len(rows), len(right))):
        cells = rows[i] if i < len(rows) else []
        text = _paint(cells) if colour else "".join(GLYPHS[c] for c in cells)
        pad = " " * (columns - len(cells))
        lines.append(f"{text}{pad}   {right[i][:room] if i < len(right) else ''}".rstrip())
    return lines


def _paint(cells: Sequence[int]) -> str:
    """Glyphs with one colour code per run of equal cells, not one per cell."""
    out, previous = [], None
    for c in cells:
        if c != previous:
            out.append(COLOURS[c])
            previous = c
        out.append(GLYPHS[c])
    return "".join(out) + (RESET if cells else "")


class PieceMapDisplay:
    """A progress callback that redraws the map in place on stderr (a terminal only)."""

    def __init__(self, enabled: bool, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled and self.stream.isatty()
        self.swarm: Swarm | None = None
        self.failed: set[int] = set()
        self._height = 0

    def watch(self, swarm: Swarm) -> None:
        """Called with the engine before it runs (client.download_async's `started`)."""
        self.swarm = swarm
        if not self.enabled:
            return
        picker = swarm.picker
        original = picker.failed

        def failed(index: int, data: bytes | bytearray) -> set:   # note hash failures as they happen
            self.failed.add(index)
            return original(index, data)
        setattr(picker, "failed", failed)   # noqa: B010  (an instance attribute, only while the map is on)

    def __call__(self, progress: Progress) -> None:
        if self.enabled and self.swarm is not None:
            self.draw(self._header(progress))

    def finish(self, result: SwarmResult, total: int) -> None:
        if not self.enabled or self.swarm is None:
            return
        self.draw(f"done: {human_bytes(result.downloaded)} in {result.seconds:.1f} s "
                  f"from {result.peers_used} peers")

    def states(self) -> list[int]:
        assert self.swarm is not None
        picker = self.swarm.picker
        states = [MISSING] * len(picker.piece_sizes)
        for i in picker.active:
            states[i] = REQUESTED
        for i in picker.verifying:
            states[i] = REQUESTED
        for i in self.failed:   # stays red while it is fetched again, until it verifies
            states[i] = FAILED
        for i in picker.done:
            states[i] = VERIFIED
        return [states[i] for i in sorted(picker.wanted)] if len(picker.wanted) < len(states) else states

    def peer_rows(self) -> list[PeerRow]:
        assert self.swarm is not None
        outstanding = self.swarm.picker.outstanding
        return [PeerRow(str(address), peer.rate, peer.up_rate, peer.session.peer_choking,
                        peer.session.am_choking, len(outstanding.get(address, ())))
                for address, peer in self.swarm.peers.items()]

    def draw(self, header: str) -> None:
        width = self._width()
        lines = render(self.states(), self.peer_rows(), header, columns=min(COLUMNS, width), width=width)
        up = f"\x1b[{self._height}F" if self._height else ""
        self.stream.write(up + "".join(f"\x1b[2K{line}\n" for line in lines)
                          + "\x1b[J")   # clear what a taller previous frame left below
        self.stream.flush()
        self._height = len(lines)

    def _width(self) -> int:
        """The terminal's width, less one; a pty that reports no size counts as 120."""
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            columns = 0
        return (columns or 120) - 1

    def _header(self, p: Progress) -> str:
        assert self.swarm is not None
        endgame = "  endgame" if self.swarm.picker.in_endgame and not self.swarm.picker.complete else ""
        return (f"pieces {p.pieces_done}/{p.pieces_total}  {human_bytes(p.done_bytes)} of "
                f"{human_bytes(p.total_bytes)}  {human_bytes(p.rate)}/s  {p.peers} peers  {p.state}{endgame}")
