"""`create` and `tracker` end to end, against libtorrent (a missing libtorrent fails, never skips).

- torrents our `create` writes load in libtorrent, and their info hash equals the one
  libtorrent computes for the same files, piece length and tracker (v1-only mode, the file
  list given in our sorted order: libtorrent itself keeps the directory's listing order);
- torrents libtorrent makes load in our `info`;
- our `tracker` command answers our `peers` command, libtorrent seeders and leechers,
  refuses bad announces, forgets stopped peers, and exits 0 on Ctrl-C.
Everything runs on 127.0.0.1; every wait is bounded.
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import libtorrent as lt
import pytest

from support.bencoding import bdecode
from support.checks import assert_same_files
from support.cli import LAUNCHER, run_cli
from support.net import wait_for
from support.peers import start_leecher, start_seeder
from support.torrents import describe_torrent, make_multi_file, make_single_file, write_payload

KIB = 1024
MIB = 1024 * KIB


# --- helpers --------------------------------------------------------------------------------

def create(path: Path, out: Path, *args: str, timeout: float = 60.0) -> dict[str, str]:
    """Run `create`; return its `Label: value` stdout lines as a dict."""
    result = run_cli("create", "-o", out, *args, path, timeout=timeout)
    assert result.returncode == 0, result.describe()
    fields = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert sorted(fields) == ["Info Hash", "Magnet"], result.describe()
    return fields


def libtorrent_info_hash(root: Path, piece_length: int, trackers=(), private: bool = False) -> str:
    """libtorrent's v1 info hash for the file or directory `root`, files in sorted path order."""
    entries = sorted(lt.list_files(str(root)), key=lambda e: e.filename.split("/"))
    creator = lt.create_torrent(entries, piece_length, lt.create_torrent.v1_only)
    for tier, url in enumerate(trackers):
        creator.add_tracker(url, tier)
    creator.set_priv(private)
    lt.set_piece_hashes(creator, str(root.parent))
    return str(lt.torrent_info(lt.bencode(creator.generate())).info_hashes().v1)


def loaded_in_libtorrent(torrent: Path) -> lt.torrent_info:
    return lt.torrent_info(torrent.read_bytes())


def libtorrent_trackers(torrent: Path) -> list[tuple[str, int]]:
    params = lt.load_torrent_buffer(torrent.read_bytes())
    return list(zip(params.trackers, params.tracker_tiers))


def write_tree(root: Path, sizes: dict[str, int], seed: int) -> None:
    """Files written in an unsorted order, so the directory listing is not sorted either."""
    for n, (rel, size) in enumerate(sizes.items()):
        write_payload(root / rel, size, seed * 100 + n)


class CliTracker:
    """`your_bittorrent.sh tracker --port 0` as a subprocess of this test, stopped by PID."""

    def __init__(self, *args: str, timeout: float = 30.0):
        self.proc = subprocess.Popen([str(LAUNCHER), "tracker", "--port", "0", *args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        line = self._first_line(timeout)
        if not line.startswith("Tracker URL: http://127.0.0.1:"):
            self.stop()
            raise AssertionError(f"unexpected first line from the tracker: {line!r}")
        self.announce_url = line.split(": ", 1)[1]

    def _first_line(self, timeout: float) -> str:
        lines: list[bytes] = []
        reader = threading.Thread(target=lambda: lines.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not lines:
            self.kill()
            raise TimeoutError(f"tracker printed no URL within {timeout}s")
        return lines[0].decode().strip()

    def interrupt(self, timeout: float = 10.0) -> tuple[int, str]:
        """Ctrl-C: SIGINT to our own child; its exit code and stderr."""
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        return self.proc.returncode, err.decode()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()   # our own child, by PID
            try:
                self.proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def announce(self, info_hash: str, port: int, *, left: int = 1, event: str = "",
                 extra: str = "") -> dict:
        """A raw non-compact HTTP announce, independent of the app's tracker client."""
        query = (f"info_hash={urllib.parse.quote(bytes.fromhex(info_hash), safe='')}"
                 f"&peer_id=-TE0001-{port:012d}&port={port}&uploaded=0&downloaded=0"
                 f"&left={left}&compact=0" + (f"&event={event}" if event else "") + extra)
        return self.get(query)

    def get(self, query: str) -> dict:
        with urllib.request.urlopen(f"{self.announce_url}?{query}", timeout=10) as reply:
            assert reply.status == 200
            return bdecode(reply.read())

    def peers(self, info_hash: str) -> list[str]:
        """Who the tracker knows, as seen by a throwaway peer that then leaves again."""
        reply = self.announce(info_hash, 9, left=1)
        self.announce(info_hash, 9, event="stopped")
        return sorted(f"{p[b'ip'].decode()}:{p[b'port']}" for p in reply[b"peers"])


@pytest.fixture
def cli_tracker():
    tracker = CliTracker("--interval", "5")
    yield tracker
    tracker.stop()


# --- create vs libtorrent ---------------------------------------------------------------------------

@pytest.mark.parametrize("size, piece_length", [(1, 16 * KIB), (16 * KIB, 16 * KIB),
                                                (2_400_123, 64 * KIB), (5 * 256 * KIB, 256 * KIB)])
def test_single_file_info_hash_equals_libtorrents(tmp_path, size, piece_length):
    payload = tmp_path / "data" / "payload.bin"
    write_payload(payload, size, seed=size)
    tracker = "http://127.0.0.1:6969/announce"
    out = tmp_path / "ours.torrent"
    printed = create(payload, out, "--tracker", tracker, "--piece-length", str(piece_length))

    ours = loaded_in_libtorrent(out)
    expected = libtorrent_info_hash(payload, piece_length, [tracker])
    assert str(ours.info_hashes().v1) == expected == printed["Info Hash"]
    assert (ours.total_size(), ours.piece_length(), ours.name()) == (size, piece_length, "payload.bin")
    assert libtorrent_trackers(out) == [(tracker, 0)]
    assert printed["Magnet"] == (f"magnet:?xt=urn:btih:{expected}&dn=payload.bin"
                                 f"&tr={urllib.parse.quote(tracker, safe='')}")
    lt_magnet = lt.parse_magnet_uri(printed["Magnet"])
    assert str(lt_magnet.info_hashes.v1) == expected and lt_magnet.name == "payload.bin"


def test_multi_file_info_hash_equals_libtorrents(tmp_path):
    root = tmp_path / "data" / "album"
    write_tree(root, {"zeta.bin": 70_001, "sub/b.bin": 150_000, "a-b/x.txt": 1_234, "A.txt": 16_384,
                      "empty.txt": 0, "sub/deeper/c.bin": 33_333}, seed=3)
    trackers = ["http://127.0.0.1:6969/announce", "udp://127.0.0.1:6969"]
    out = tmp_path / "album.torrent"
    printed = create(root, out, "--tracker", trackers[0], "--tracker", trackers[1],
                     "--piece-length", "32K")

    ours = loaded_in_libtorrent(out)
    expected = libtorrent_info_hash(root, 32 * KIB, trackers)
    assert str(ours.info_hashes().v1) == expected == printed["Info Hash"]
    files = ours.layout()
    assert [files.file_path(i) for i in range(files.num_files())] == [
        os.path.join("album", p) for p in
        ["A.txt", "a-b/x.txt", "empty.txt", "sub/b.bin", "sub/deeper/c.bin", "zeta.bin"]]
    assert libtorrent_trackers(out) == [(trackers[0], 0), (trackers[1], 1)]


def test_executable_files_are_marked_as_libtorrent_marks_them(tmp_path):
    """BEP 47's attr "x" in a v1 file list and in a single file's info dict: the info
    hashes equal libtorrent's, which marks files their owner may execute."""
    root = tmp_path / "data" / "tools"
    write_tree(root, {"run.sh": 20_000, "lib/tool": 5, "notes.txt": 3}, seed=4)
    (root / "run.sh").chmod(0o755)
    (root / "lib" / "tool").chmod(0o700)
    out = tmp_path / "tools.torrent"
    printed = create(root, out, "--piece-length", "16K")
    assert printed["Info Hash"] == libtorrent_info_hash(root, 16 * KIB)
    files = bdecode(out.read_bytes())[b"info"][b"files"]
    assert {b"/".join(f[b"path"]) for f in files if f.get(b"attr") == b"x"} == {b"lib/tool", b"run.sh"}
    single = tmp_path / "data" / "tool"
    write_payload(single, 30_000, seed=9)
    single.chmod(0o755)
    printed = create(single, tmp_path / "tool.torrent", "--piece-length", "16K")
    assert printed["Info Hash"] == libtorrent_info_hash(single, 16 * KIB)
    assert bdecode((tmp_path / "tool.torrent").read_bytes())[b"info"][b"attr"] == b"x"


def test_automatic_piece_length_gives_1000_to_2000_pieces_and_libtorrents_hash(tmp_path):
    payload = tmp_path / "data" / "big.bin"
    write_payload(payload, 40 * MIB + 17, seed=5)
    out = tmp_path / "big.torrent"
    printed = create(payload, out)
    ours = loaded_in_libtorrent(out)
    assert ours.piece_length() == 32 * KIB          # the smallest power of two giving <= 2000
    assert 1000 <= ours.num_pieces() <= 2000
    assert printed["Info Hash"] == libtorrent_info_hash(payload, ours.piece_length())


def test_private_flag_reaches_libtorrent_and_the_info_hash(tmp_path):
    payload = tmp_path / "data" / "p.bin"
    write_payload(payload, 100_000, seed=6)
    printed = create(payload, tmp_path / "p.torrent", "--private", "--piece-length", "16K",
                     "--comment", "made by a test")
    ours = loaded_in_libtorrent(tmp_path / "p.torrent")
    assert ours.priv() and ours.comment() == "made by a test"
    assert printed["Info Hash"] == libtorrent_info_hash(payload, 16 * KIB, private=True)
    assert printed["Info Hash"] != libtorrent_info_hash(payload, 16 * KIB, private=False)


def test_create_is_deterministic_and_refuses_to_overwrite(tmp_path):
    root = tmp_path / "data" / "d"
    write_tree(root, {"b": 5000, "a": 7000}, seed=7)
    first, second = tmp_path / "1.torrent", tmp_path / "2.torrent"
    create(root, first, "--piece-length", "16K")
    create(root, second, "--piece-length", "16K")
    assert first.read_bytes() == second.read_bytes()
    again = run_cli("create", "-o", first, root)
    assert again.returncode != 0 and "exists" in again.stderr and again.stdout == ""
    assert first.read_bytes() == second.read_bytes()
    assert create(root, first, "--force", "--piece-length", "16K")["Info Hash"] == \
        hashlib.sha1(describe_torrent(second, root.parent).metadata).hexdigest()


@pytest.mark.parametrize("args, message", [
    (["--piece-length", "3000"], "power of two"),
    (["--tracker", "not a url"], "tracker URL"),
])
def test_create_reports_bad_options(tmp_path, args, message):
    write_payload(tmp_path / "f", 10, seed=1)
    result = run_cli("create", "-o", tmp_path / "x.torrent", *args, tmp_path / "f")
    assert result.returncode == 2 and message in result.stderr and result.stdout == "", result.describe()
    assert not (tmp_path / "x.torrent").exists()


def test_create_refuses_an_empty_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cli("create", "-o", tmp_path / "x.torrent", tmp_path / "empty")
    assert result.returncode == 1 and "empty directory" in result.stderr, result.describe()


# --- libtorrent's torrents in our info ------------------------------------------------------------

def info_output_of(spec) -> list[str]:
    result = run_cli("info", spec.torrent_path)
    assert result.returncode == 0, result.describe()
    return result.stdout.splitlines()


def test_libtorrents_single_file_torrent_loads_in_our_info(tmp_path):
    spec = make_single_file(tmp_path, "one.bin", 700_001, piece_length=64 * KIB, seed=8,
                            announce="http://127.0.0.1:6969/announce")
    lines = info_output_of(spec)
    assert lines[:5] == ["Tracker URL: http://127.0.0.1:6969/announce", f"Length: {spec.total_length}",
                         f"Info Hash: {spec.info_hash}", f"Piece Length: {spec.piece_length}",
                         "Piece Hashes:"]
    assert lines[5:5 + spec.num_pieces] == spec.piece_hashes


def test_libtorrents_multi_file_torrent_loads_in_our_info(tmp_path):
    spec = make_multi_file(tmp_path, "album", {"a.bin": 150_001, "sub/b.bin": 70_000, "c.txt": 1_234},
                           piece_length=32 * KIB, seed=9, announce="http://127.0.0.1:6969/announce")
    lines = info_output_of(spec)
    assert f"Info Hash: {spec.info_hash}" in lines
    assert lines[5:5 + spec.num_pieces] == spec.piece_hashes
    listed = lines[lines.index("Files:") + 1:]
    assert listed == [f"{length} {'/'.join(parts[1:])}" for parts, length in spec.files]


# --- the tracker ----------------------------------------------------------------------------------

def test_tracker_help_says_it_is_for_teaching_and_points_at_real_trackers():
    result = run_cli("tracker", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "opentracker" in text and "Real swarms use real trackers" in text
    assert "offline teaching and demos" in text


def test_tracker_exits_0_on_ctrl_c():
    tracker = CliTracker()
    code, err = tracker.interrupt()
    assert code == 0, err
    assert "Tracker stopped." in err and "Error" not in err


def test_bad_announces_get_a_failure_reason(cli_tracker):
    assert b"missing info_hash" in cli_tracker.get("peer_id=x&port=1")[b"failure reason"]
    short = cli_tracker.get("info_hash=abc&peer_id=" + "p" * 20 + "&port=1")
    assert b"info_hash must be 20 bytes" in short[b"failure reason"]
    bad_port = cli_tracker.announce("11" * 20, 6000, extra="&port=x")  # the first port wins
    assert b"failure reason" not in bad_port
    reply = cli_tracker.get("info_hash=" + "%11" * 20 + "&peer_id=" + "p" * 20 + "&port=x")
    assert b"port must be" in reply[b"failure reason"]


def test_stopped_removes_and_the_peer_never_sees_itself(cli_tracker):
    info_hash = "22" * 20
    assert cli_tracker.announce(info_hash, 7001)[b"peers"] == []
    reply = cli_tracker.announce(info_hash, 7002, left=0, event="started")
    assert reply[b"peers"] == [{b"ip": b"127.0.0.1", b"port": 7001, b"peer id": b"-TE0001-000000007001"}]
    assert (reply[b"complete"], reply[b"incomplete"]) == (1, 1)
    cli_tracker.announce(info_hash, 7001, event="stopped")
    assert cli_tracker.peers(info_hash) == ["127.0.0.1:7002"]


def test_libtorrent_seeder_announces_and_our_peers_command_finds_it(cli_tracker, tmp_path):
    spec = make_single_file(tmp_path, "shared.bin", 300_000, piece_length=32 * KIB, seed=10,
                            announce=cli_tracker.announce_url)
    seeder = start_seeder(spec, tmp_path / "seeder")   # waits for libtorrent's tracker reply
    try:
        assert cli_tracker.peers(spec.info_hash) == [seeder.address]
        result = run_cli("peers", spec.torrent_path, timeout=20)
        assert result.returncode == 0, result.describe()
        assert result.stdout.splitlines() == [seeder.address]
        # lt_peer forces a second announce right after its first reply; a SIGTERM that
        # races it makes libtorrent send that one and skip `stopped`, so let it go out
        time.sleep(1.5)
    finally:
        seeder.stop()
    # libtorrent sends event=stopped when it shuts down; the tracker forgets it at once
    wait_for(lambda: seeder.address not in cli_tracker.peers(spec.info_hash), timeout=10,
             what="the stopped seeder to leave the tracker")


def test_our_torrent_through_our_tracker_to_libtorrent_and_our_client(cli_tracker, tmp_path):
    """The whole give-back loop: `create` a torrent naming our tracker, a libtorrent seeder
    serves it, a libtorrent leecher and our `download` find the seeder via the tracker alone."""
    data_root = tmp_path / "data"
    write_tree(data_root / "gift", {"readme.txt": 5_000, "media/clip.bin": 400_000}, seed=11)
    torrent = tmp_path / "gift.torrent"
    create(data_root / "gift", torrent, "--tracker", cli_tracker.announce_url, "--piece-length", "16K")
    spec = describe_torrent(torrent, data_root)
    seeder = start_seeder(spec, tmp_path / "seeder")
    try:
        leecher = start_leecher(tmp_path / "leecher", torrent=torrent, timeout=30)  # no --peer
        assert leecher.wait_exit(40) == 0, leecher.log_text()
        got = tmp_path / "leecher" / "download" / "gift" / "media" / "clip.bin"
        assert got.read_bytes() == (data_root / "gift" / "media" / "clip.bin").read_bytes()

        result = run_cli("download", "-o", tmp_path / "ours", torrent, timeout=60)
        assert result.returncode == 0, result.describe()
        assert_same_files(spec, tmp_path / "ours")
    finally:
        seeder.stop()
