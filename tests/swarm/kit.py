"""Helpers of the swarm scenarios (on top of tests/support).

- OurSeeder: support.seeder's (`your_bittorrent.sh seed` in the background, stopped by
  SIGINT, by PID), plus the upload total it reports.
- run_cli_tty: a CLI run whose stderr is a pseudo-terminal, so the closing summary
  ("Downloaded X in Y s (...) from N peers; K pieces were already on disk") is printed.
- torrents with tracker tiers, a .torrent copy with another announce URL, magnet links.
- checks of a downloaded tree against the torrent, and of which pieces verify on disk.
- raw peer-wire probing of our seeder (bad requests).
Everything talks to 127.0.0.1 only and every wait is bounded.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import pty
import re
import struct
import subprocess
import tempfile
import termios
import threading
import time
from pathlib import Path
from urllib.parse import quote

import libtorrent as lt

import support.seeder
from support.bencoding import bdecode, bencode
from support.cli import LAUNCHER, CliResult
from support.torrents import TorrentSpec, describe_torrent, write_payload
from support.wire import PeerConnection, WireError

KIB = 1024
MIB = 1024 * KIB


# --- our own seeder ----------------------------------------------------------------------

class OurSeeder(support.seeder.OurSeeder):
    """support's OurSeeder, plus what it says it uploaded."""

    def uploaded(self) -> float:
        """Bytes it says it uploaded (`Stopped; uploaded 1.2 MiB`), after stop()."""
        match = re.search(r"Stopped; uploaded ([\d.]+ [KMG]?i?B)", self.stop().stderr)
        assert match, "no 'Stopped; uploaded' line\n" + self.stop().describe()
        return parse_size(match[1])


_UNITS = {"B": 1, "KiB": KIB, "MiB": MIB, "GiB": 1024 * MIB}


def parse_size(text: str) -> float:
    number, unit = text.split()
    return float(number) * _UNITS[unit]


# --- a CLI run with a terminal on stderr -------------------------------------------------

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_cli_tty(*args, timeout: float = 30.0) -> CliResult:
    """Run the CLI with stderr on a pty (stdout a pipe), from a scratch cwd; kill on timeout.
    The returned stderr has escape sequences removed and carriage returns as newlines."""
    argv = [str(LAUNCHER), *map(str, args)]
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    chunks: list[bytes] = []
    with tempfile.TemporaryDirectory(prefix="cli-tty-") as cwd:
        started = time.monotonic()
        proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=slave, start_new_session=True)
        os.close(slave)

        def pump() -> None:
            while True:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO once the child side is closed
                    return
                if not data:
                    return
                chunks.append(data)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        timed_out = False
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.kill()  # our own child, by PID
            out, _ = proc.communicate(timeout=10)
        reader.join(5)
        os.close(master)
    err = ANSI.sub("", b"".join(chunks).decode("utf-8", "replace")).replace("\r", "\n")
    return CliResult(tuple(map(str, args)), proc.returncode, out.decode("utf-8", "replace"),
                     err, time.monotonic() - started, timed_out)


SUMMARY = re.compile(r"Downloaded ([\d.]+ [KMG]?i?B) in ([\d.]+) s \(.*?\) from (\d+) peers"
                     r"(?:; (\d+) pieces were already on disk)?")


def summary(result: CliResult) -> dict:
    """The closing summary of a download run under run_cli_tty."""
    match = SUMMARY.search(result.stderr)
    assert match, "no 'Downloaded ... from N peers' summary on the terminal\n" + result.describe()
    return {"downloaded": parse_size(match[1]), "seconds": float(match[2]),
            "peers": int(match[3]), "resumed": int(match[4] or 0)}


# --- torrents and magnet links ------------------------------------------------------------

def make_tiered(root: Path, name: str, size: int, *, piece_length: int, seed: int,
                tiers: list[list[str]]) -> TorrentSpec:
    """A single-file torrent whose announce-list is `tiers` (BEP 12), made with libtorrent."""
    data_root = root / "data"
    write_payload(data_root / name, size, seed)
    creator = lt.create_torrent(lt.list_files(str(data_root / name)), piece_length,
                                lt.create_torrent.v1_only)
    for tier, urls in enumerate(tiers):
        for url in urls:
            creator.add_tracker(url, tier)
    lt.set_piece_hashes(creator, str(data_root))
    path = root / f"{name}.torrent"
    path.write_bytes(lt.bencode(creator.generate()))
    return describe_torrent(path, data_root)


def announce_lists(torrent: Path) -> list[list[str]]:
    meta = bdecode(torrent.read_bytes())
    return [[u.decode() for u in tier] for tier in meta.get(b"announce-list", [])]


def retarget(spec: TorrentSpec, announce: str, dest: Path) -> TorrentSpec:
    """A copy of spec's .torrent with only `announce` (same info dict, same info hash)."""
    meta = bdecode(spec.torrent_path.read_bytes())
    meta.pop(b"announce-list", None)
    meta[b"announce"] = announce.encode()
    dest.write_bytes(bencode(meta))
    copy = describe_torrent(dest, spec.data_root)
    assert copy.info_hash == spec.info_hash
    return copy


def magnet(info_hash: str, *, name: str | None = None, trackers=(), peers=()) -> str:
    """magnet:?xt=urn:btih:HASH[&dn=NAME][&tr=URL...][&x.pe=IP:PORT...]"""
    link = f"magnet:?xt=urn:btih:{info_hash}"
    if name:
        link += "&dn=" + quote(name, safe="")
    for url in trackers:
        scheme, sep, rest = url.partition("://")
        link += "&tr=" + quote(scheme + sep, safe="") + quote(rest, safe=":")
    for peer in peers:
        link += "&x.pe=" + peer
    return link


# --- what is on disk ------------------------------------------------------------------

def tree(root: Path) -> dict[str, bytes]:
    """Every regular file under root (relative POSIX path -> bytes); directories implied."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            raise AssertionError(f"symlink in the download: {path}")
        if path.is_file():
            out[path.relative_to(root).as_posix()] = path.read_bytes()
    return out


def expected_tree(spec: TorrentSpec) -> dict[str, bytes]:
    return {"/".join(parts): spec.data_root.joinpath(*parts).read_bytes()
            for parts, _ in spec.files}


def assert_tree(out_dir: Path, spec: TorrentSpec, why: str = "") -> None:
    """out_dir holds exactly <name>/... of the torrent: same files, same bytes, nothing else."""
    got, want = tree(out_dir), expected_tree(spec)
    assert sorted(got) == sorted(want), f"files differ: got {sorted(got)}, want {sorted(want)}\n{why}"
    for rel, data in want.items():
        if got[rel] != data:
            diff = next(i for i, (a, b) in enumerate(zip(got[rel], data)) if a != b) \
                if len(got[rel]) == len(data) else None
            raise AssertionError(f"{rel}: {len(got[rel])} bytes, want {len(data)}; "
                                 f"first difference at {diff}\n{why}")


def payload_on_disk(spec: TorrentSpec, out: Path) -> bytes:
    """The torrent's bytes as found under `out` (the file for single-file, the directory
    holding <name>/ for multi-file); a missing or short file counts as zeros."""
    parts_out = []
    for parts, length in spec.files:
        path = out if not spec.multi_file else out.joinpath(*parts)
        data = path.read_bytes() if path.is_file() else b""
        parts_out.append(data[:length].ljust(length, b"\0"))
    return b"".join(parts_out)


def verified_pieces(spec: TorrentSpec, out: Path) -> set[int]:
    data = payload_on_disk(spec, out)
    return {i for i in range(spec.num_pieces)
            if hashlib.sha1(data[i * spec.piece_length:i * spec.piece_length
                                 + spec.piece_size(i)]).hexdigest() == spec.piece_hashes[i]}


# --- raw peer-wire probing -----------------------------------------------------------------

REQUEST, PIECE, INTERESTED, UNCHOKE = 6, 7, 2, 1


def request(conn: PeerConnection, index: int, begin: int, length: int) -> None:
    conn.send(REQUEST, struct.pack(">III", index, begin, length))


def read_for(conn: PeerConnection, seconds: float) -> tuple[list[int | None], bool]:
    """Read messages for up to `seconds`: (message ids seen, whether the peer closed)."""
    seen: list[int | None] = []
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return seen, False
        conn.sock.settimeout(left)
        try:
            msg_id, _ = conn.read_message()
        except TimeoutError:
            return seen, False
        except (WireError, ConnectionError):
            return seen, True
        seen.append(msg_id)


def wait_unchoked(conn: PeerConnection, seconds: float = 5.0) -> None:
    """Say interested and read until unchoke (bounded)."""
    conn.send(INTERESTED)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        conn.sock.settimeout(max(0.05, deadline - time.monotonic()))
        msg_id, _ = conn.read_message()
        if msg_id == UNCHOKE:
            return
    raise TimeoutError("our seeder did not unchoke an interested peer")


def fetch_piece(conn: PeerConnection, index: int, size: int, seconds: float = 10.0) -> bytes:
    """Request every block of one piece on an already unchoked connection; return it."""
    for begin in range(0, size, 16 * KIB):
        request(conn, index, begin, min(16 * KIB, size - begin))
    blocks: dict[int, bytes] = {}
    deadline = time.monotonic() + seconds
    while sum(map(len, blocks.values())) < size:
        conn.sock.settimeout(max(0.05, deadline - time.monotonic()))
        msg_id, payload = conn.read_message()
        if msg_id == PIECE and struct.unpack(">I", payload[:4])[0] == index:
            blocks[struct.unpack(">I", payload[4:8])[0]] = payload[8:]
    return b"".join(blocks[b] for b in sorted(blocks))
