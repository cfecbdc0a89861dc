#!/usr/bin/env python3
"""Download and seeding benchmark on a local swarm: this project vs libtorrent vs aria2c.

Builds a swarm on 127.0.0.1 (one opentracker, N libtorrent seeders, each in its
own process), makes a single-file and a multi-file torrent of random data,
and runs two scenarios:

- download: each client in turn downloads each torrent from the swarm;
- seed: libtorrent downloads the single-file torrent from exactly one seeder,
  ours (`your_bittorrent.sh seed`) or a libtorrent one, with the swarm's
  seeders stopped.

Every run's bytes are checked. Each figure is reported per run and as the
median (with min-max) over --repeat runs: wall time, throughput, CPU seconds
(and CPU seconds per GiB) and peak RSS of the process under test.

    .venv/bin/python bench/run.py --single-mib 64 --multi-mib 32 --files 200
    .venv/bin/python bench/run.py --json bench/out/full.json --profile py-spy
    .venv/bin/python bench/run.py --scenarios seed --profile-seed cprofile

Run with the project's venv python (it needs `libtorrent`). Every child
process is started here, is ended here by its PID, and also gets SIGTERM
from the kernel if this process dies (PR_SET_PDEATHSIG). Every wait is
bounded; a download that passes --timeout is killed and reported as such.

The same file is also the seeder and the libtorrent downloader: it runs
itself as `run.py _seed ...` and `run.py _ltget ...` in subprocesses.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import random
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
MiB = 1 << 20
GiB = 1 << 30
CHUNK = 4 * MiB
CLIENTS = ("ours", "libtorrent", "aria2")
SCENARIOS = ("download", "seed")
SEEDERS = ("ours", "libtorrent")     # the seeders compared in the seed scenario
CLIENT_ROOT = ROOT                   # the checkout whose app/ is benchmarked (--client-root)

warnings.filterwarnings("ignore", category=DeprecationWarning)


# --- process helpers -------------------------------------------------------------------

_libc = None


def _die_with_parent() -> None:
    """preexec_fn: the kernel sends SIGTERM to the child when this process dies."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        _libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def descendants(pid: int) -> list[int]:
    """PIDs of every living descendant of `pid` (children first found, deepest last)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_pid(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def stop_process(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM by PID, then SIGKILL by PID if it is still there after `grace` s."""
    if proc.poll() is not None:
        return
    kill_pid(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        for child in descendants(proc.pid):
            kill_pid(child)
        kill_pid(proc.pid)
        proc.wait(5)


def proc_cpu_seconds(pid: int) -> float:
    """utime+stime of a running process (all its threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_cpu_times(pid: int) -> tuple[float, float]:
    """(user, sys) CPU seconds of a running process (all its threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def proc_peak_rss_mib(pid: int) -> float:
    """VmHWM (peak resident set) of a running process, in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0       # kB
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def tcp_listening(port: int) -> bool:
    """Whether some socket listens on TCP `port` (IPv4 or IPv6), without connecting to it."""
    want = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 3 and cols[1].endswith(want) and cols[3] == "0A":   # 0A = LISTEN
                return True
    return False


def reap(proc: subprocess.Popen, timeout: float) -> dict:
    """Wait (at most `timeout` s) for `proc` with os.wait4; kill it and its children by PID after that.
    Returns end (monotonic), status, usage, timed_out."""
    box: dict = {}

    def waiter_main() -> None:
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except ChildProcessError:        # already reaped elsewhere: no rusage to give
            box.update(end=time.monotonic(), status=None, usage=None)
            return
        box.update(end=time.monotonic(), status=status, usage=usage)
    waiter = threading.Thread(target=waiter_main, daemon=True)
    waiter.start()
    waiter.join(timeout)
    timed_out = waiter.is_alive()
    if timed_out:
        for child in descendants(proc.pid):
            kill_pid(child)
        kill_pid(proc.pid)
        waiter.join(30)
    if box.get("status") is not None:
        proc.returncode = os.waitstatus_to_exitcode(box["status"])   # reaped by wait4, not by Popen
    box["timed_out"] = timed_out
    return box


def host_cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies over all cores, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(values[:8])
    idle = values[3] + values[4]
    return total - idle, total


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (small race, fine for a bench)."""
    for _ in range(50):
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port on 127.0.0.1")


def wait_tcp(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s") from None
            time.sleep(0.1)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- payloads ------------------------------------------------------------------------

@dataclass
class Payload:
    key: str                  # "single" or "multi"
    path: Path                # the file or top directory (its name is the torrent's name)
    files: dict[str, tuple[int, str]]   # path relative to path.parent -> (size, sha1 hex)
    size: int = 0
    torrent: Path | None = None
    info_hash: str = ""
    piece_length: int = 0
    pieces: int = 0


def write_random(path: Path, size: int) -> str:
    """Fill `path` with `size` random bytes; return their SHA-1."""
    digest = hashlib.sha1()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        left = size
        while left:
            block = os.urandom(min(CHUNK, left))
            out.write(block)
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


def multi_sizes(total: int, count: int, rng: random.Random) -> list[int]:
    """`count` sizes of widely varied magnitude (log-normal) adding up to `total`."""
    weights = [rng.lognormvariate(0.0, 2.0) for _ in range(count)]
    scale = sum(weights)
    sizes = [max(1, int(total * w / scale)) for w in weights]
    biggest = max(range(count), key=sizes.__getitem__)
    sizes[biggest] += total - sum(sizes)
    if sizes[biggest] < 1:
        raise ValueError(f"cannot split {total} bytes into {count} files")
    return sizes


def multi_name(i: int) -> str:
    if i % 7 == 0:
        return f"file{i:05d}.dat"                        # some at the top
    return f"dir{i % 16:02d}/sub{i % 3}/file{i:05d}.bin"  # most two levels down


def make_single(base: Path, mib: int) -> Payload:
    path = base / "single.bin"
    size = mib * MiB
    return Payload("single", path, {path.name: (size, write_random(path, size))}, size)


def make_multi(base: Path, mib: int, count: int, seed: int) -> Payload:
    top = base / "multi"
    files = {}
    for i, size in enumerate(multi_sizes(mib * MiB, count, random.Random(seed))):
        rel = multi_name(i)
        files[f"{top.name}/{rel}"] = (size, write_random(top / rel, size))
    return Payload("multi", top, files, mib * MiB)


def make_torrent(payload: Payload, out: Path, tracker_url: str, piece_kib: int) -> None:
    import libtorrent as lt
    fs = lt.file_storage()
    lt.add_files(fs, str(payload.path))
    ct = lt.create_torrent(fs, piece_kib * 1024, lt.create_torrent.v1_only)
    ct.add_tracker(tracker_url)
    ct.set_creator("bench/run.py")
    lt.set_piece_hashes(ct, str(payload.path.parent))
    out.write_bytes(lt.bencode(ct.generate()))
    info = lt.torrent_info(str(out))
    payload.torrent = out
    payload.info_hash = str(info.info_hashes().v1)
    payload.piece_length = info.piece_length()
    payload.pieces = info.num_pieces()


def trackerless_copy(payload: Payload, out: Path) -> Path:
    """The payload's torrent without announce URLs (same info dict, so same info hash): a
    downloader given it finds peers only where it is told to."""
    import libtorrent as lt
    meta = lt.bdecode(payload.torrent.read_bytes())
    meta.pop(b"announce", None)
    meta.pop(b"announce-list", None)
    out.write_bytes(lt.bencode(meta))
    got = str(lt.torrent_info(str(out)).info_hashes().v1)
    if got != payload.info_hash:
        raise RuntimeError(f"trackerless copy of {payload.torrent} has info hash {got}, not {payload.info_hash}")
    return out


def verify(payload: Payload, out_dir: Path) -> list[str]:
    """Problems found comparing `out_dir` (holding <name>) with the source; [] if none."""
    problems = []
    for rel, (size, sha1) in payload.files.items():
        path = out_dir / rel
        try:
            got = path.stat().st_size
        except OSError:
            problems.append(f"{rel}: missing")
            continue
        if got != size:
            problems.append(f"{rel}: size {got} != {size}")
            continue
        digest = hashlib.sha1()
        with open(path, "rb") as f:
            while block := f.read(CHUNK):
                digest.update(block)
        if digest.hexdigest() != sha1:
            problems.append(f"{rel}: SHA-1 differs")
    return problems


# --- tracker ------------------------------------------------------------------------

class Tracker:
    """opentracker on 127.0.0.1:PORT (HTTP and UDP), whitelist in its chroot dir."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.port = port
        self.dir = workdir / "tracker"
        self.dir.mkdir()
        self.dir.chmod(0o755)        # it drops to an unprivileged user inside this dir
        self.whitelist = self.dir / "whitelist.txt"
        self.whitelist.write_text("")
        self.whitelist.chmod(0o644)
        lines = [f"listen.tcp 127.0.0.1:{port}", f"listen.udp 127.0.0.1:{port}",
                 "access.whitelist whitelist.txt"]
        if os.geteuid() == 0:
            lines += [f"tracker.rootdir {self.dir}", "tracker.user nobody"]
        self.config = self.dir / "opentracker.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{port}/announce"

    def start(self) -> None:
        binary = shutil.which("opentracker")
        if not binary:
            raise RuntimeError("opentracker is not installed (apt-get install opentracker, or use bench/run.sh)")
        with open(self.dir / "opentracker.log", "wb") as logfile:
            self.proc = subprocess.Popen([binary, "-f", str(self.config)], cwd=self.dir, stdin=subprocess.DEVNULL,
                                         stdout=logfile, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        wait_tcp(self.port, 10)

    def _get(self, path: str, query: str) -> dict:
        import libtorrent as lt
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/{path}?{query}", timeout=5) as reply:
            return lt.bdecode(reply.read()) or {}

    def _announce(self, info_hash: str, event: str | None) -> dict:
        query = "info_hash=" + urllib.parse.quote_from_bytes(bytes.fromhex(info_hash))
        query += "&peer_id=-BN0001-benchcheck00&port=9&uploaded=0&downloaded=0&left=0&compact=1"
        if event:
            query += f"&event={event}"
        return self._get("announce", query)

    def authorize(self, info_hashes: list[str], timeout: float = 15.0) -> None:
        """Whitelist the hashes, SIGHUP, and wait until each is accepted."""
        self.whitelist.write_text("".join(h + "\n" for h in info_hashes))
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        for info_hash in info_hashes:
            while True:
                reply = self._announce(info_hash, None)
                if b"failure reason" not in reply:
                    self._announce(info_hash, "stopped")   # take the check's fake peer out again
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"opentracker still refuses {info_hash}: {reply}")
                time.sleep(0.2)

    def seeds(self, info_hash: str) -> int:
        files = self._get("scrape", "info_hash=" + urllib.parse.quote_from_bytes(bytes.fromhex(info_hash)))
        entry = (files.get(b"files") or {}).get(bytes.fromhex(info_hash)) or {}
        return int(entry.get(b"complete", 0))

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc)


# --- libtorrent subprocesses ----------------------------------------------------------

def lt_settings(port: int, preset: str = "default") -> dict:
    """Loopback-only settings per REAL-PEERS.md; `preset` picks libtorrent's base pack."""
    import libtorrent as lt
    settings = dict(lt.high_performance_seed() if preset == "seed" else lt.default_settings())
    settings.update({
        "listen_interfaces": f"127.0.0.1:{port}",
        "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "enable_outgoing_utp": False, "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True,
        "stop_tracker_timeout": 1,
        "alert_mask": int(lt.alert.category_t.error_notification | lt.alert.category_t.status_notification
                          | lt.alert.category_t.tracker_notification),
    })
    if preset == "seed":
        settings["listen_queue_size"] = max(64, settings.get("listen_queue_size", 0))
    return settings


def stdin_closed() -> bool:
    ready, _, _ = select.select([sys.stdin], [], [], 0.2)
    return bool(ready) and os.read(sys.stdin.fileno(), 4096) == b""


def seeder_main(argv: list[str]) -> int:
    """_seed --port P --lifetime S TORRENT SAVE_DIR [TORRENT SAVE_DIR ...]

    Checks its data, announces, prints `ready` once every torrent is seeding
    and announced as complete, then seeds until stdin closes or the lifetime ends."""
    import libtorrent as lt
    parser = argparse.ArgumentParser(prog="run.py _seed")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--lifetime", type=float, required=True)
    parser.add_argument("pairs", nargs="+")
    args = parser.parse_args(argv)
    session = lt.session(lt_settings(args.port, "seed"))
    handles = []
    for torrent, save in zip(args.pairs[::2], args.pairs[1::2]):
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(torrent)
        params.save_path = save
        handles.append(session.add_torrent(params))
    deadline = time.monotonic() + args.lifetime
    ready = False
    replied: set[str] = set()    # libtorrent's first announce comes after the check, with left=0
    while time.monotonic() < deadline:
        for alert in session.pop_alerts():
            if isinstance(alert, lt.tracker_reply_alert):
                replied.add(str(alert.handle.info_hashes().v1))
            elif alert.category() & lt.alert.category_t.error_notification:
                print(f"seeder {args.port}: {alert.message()}", file=sys.stderr, flush=True)
        if not ready and len(replied) == len(handles) \
                and all(h.status().state == lt.torrent_status.seeding for h in handles):
            ready = True
            print("ready", flush=True)
        if stdin_closed():
            break
    del session    # sends `stopped` to the tracker (bounded by stop_tracker_timeout)
    return 0


def ltget_main(argv: list[str]) -> int:
    """_ltget --port P --timeout S [--peer PORT ...] [--plain] TORRENT OUT_DIR: download with libtorrent,
    exit when done.

    With --peer it also connects to 127.0.0.1:PORT itself (again every second while it has
    no peer); give it a torrent without trackers to download from those peers only. --plain
    turns protocol encryption (MSE) off, so that it speaks the plain protocol from the first
    attempt. Prints one JSON line on stdout: when (time.monotonic(), a clock shared by every
    process) the first payload byte came and when the torrent finished."""
    import libtorrent as lt
    parser = argparse.ArgumentParser(prog="run.py _ltget")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--peer", type=int, action="append", default=[], help="a peer's port on 127.0.0.1")
    parser.add_argument("--plain", action="store_true", help="no protocol encryption")
    parser.add_argument("torrent")
    parser.add_argument("out")
    args = parser.parse_args(argv)
    settings = lt_settings(args.port)
    if args.plain:
        settings.update(out_enc_policy=int(lt.enc_policy.disabled), in_enc_policy=int(lt.enc_policy.disabled))
    session = lt.session(settings)
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(args.torrent)
    params.save_path = args.out
    handle = session.add_torrent(params)
    deadline = time.monotonic() + args.timeout
    dialed = 0.0
    first_byte_at = done_at = None
    while True:
        status = handle.status()
        if first_byte_at is None and status.total_payload_download > 0:
            first_byte_at = time.monotonic()
        if status.is_seeding:
            break
        if time.monotonic() > deadline:
            print(f"libtorrent: timed out at {status.progress:.1%}", file=sys.stderr)
            return 3
        if args.peer and status.num_peers == 0 and time.monotonic() - dialed > 1.0:
            for port in args.peer:
                handle.connect_peer(("127.0.0.1", port))
            dialed = time.monotonic()
        session.wait_for_alert(25 if first_byte_at is None else 100)
        for alert in session.pop_alerts():
            if isinstance(alert, lt.torrent_finished_alert):
                done_at = time.monotonic()
            elif alert.category() & lt.alert.category_t.error_notification:
                print(f"libtorrent: {alert.message()}", file=sys.stderr, flush=True)
    done_at = done_at or time.monotonic()
    print(json.dumps({"first_byte_at": first_byte_at or done_at, "done_at": done_at}), flush=True)
    session.remove_torrent(handle)   # closes (and unmaps) the files
    end = time.monotonic() + 5
    while time.monotonic() < end and not any(isinstance(a, lt.torrent_removed_alert) for a in session.pop_alerts()):
        session.wait_for_alert(100)
    del session
    return 0


class Seeder:
    """A libtorrent seeder process (`run.py _seed`) seeding every given payload."""

    def __init__(self, index: int | str, port: int, payloads: list[Payload], lifetime: float, workdir: Path) -> None:
        self.index, self.port = index, port
        pairs = []
        for p in payloads:
            pairs += [str(p.torrent), str(p.path.parent)]
        self.log_path = workdir / f"seeder{index}.log"
        with open(self.log_path, "wb") as logfile:
            self.proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "_seed", "--port", str(port),
                 "--lifetime", str(int(lifetime)), *pairs],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=logfile, preexec_fn=_die_with_parent)

    def wait_ready(self, deadline: float) -> None:
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"seeder {self.index} not seeding in time; see {self.log_path}")
            ready, _, _ = select.select([self.proc.stdout], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 256)
                if not chunk:
                    raise RuntimeError(f"seeder {self.index} exited: {self.log_path.read_text()[-2000:]}")
                line += chunk
        if b"ready" not in line:
            raise RuntimeError(f"seeder {self.index} said {line!r}")

    def stop(self) -> None:
        try:
            self.proc.stdin.close()       # the seeder's signal to leave
            self.proc.wait(8)
        except (subprocess.TimeoutExpired, OSError):
            pass
        stop_process(self.proc)


# --- running one client --------------------------------------------------------------

@dataclass
class Result:
    torrent: str
    client: str                   # download: the downloader under test; seed: the seeder under test
    scenario: str = "download"
    run: int = 0
    status: str = "ok"
    exit_code: int | None = None
    wall_s: float = 0.0           # of the downloader's process, start to exit
    mib_s: float = 0.0
    cpu_user_s: float = 0.0       # of the process under test (seed: during the transfer only)
    cpu_sys_s: float = 0.0
    cpu_s: float = 0.0
    cpu_s_per_gib: float = 0.0    # cpu_s per GiB of the torrent
    user_s_per_gib: float = 0.0
    cpu_pct: float = 0.0          # of one core, over the wall time
    rss_mib: float = 0.0          # peak RSS of the process under test
    seeders_cpu_s: float = 0.0    # download: all the swarm's seeder processes together, during this run
    downloader_cpu_s: float = 0.0     # seed: the libtorrent downloader
    seeder_total_cpu_s: float = 0.0   # seed: the seeder from its start (its check of the data included)
    first_byte_s: float = 0.0     # libtorrent downloader: from its start to the first payload byte
    transfer_mib_s: float = 0.0   # libtorrent downloader: from the first payload byte to the last
    host_busy_pct: float = 0.0    # all cores, during this run
    other_pct: float = 0.0        # all cores, used by none of the bench's processes (noise)
    load_before_pct: float = 0.0  # all cores busy just before the start (see --idle-below)
    error: str = ""
    command: list[str] = field(default_factory=list)

    def set_cpu(self, user: float, system: float, size: int) -> None:
        self.cpu_user_s, self.cpu_sys_s, self.cpu_s = user, system, user + system
        self.cpu_pct = 100.0 * self.cpu_s / self.wall_s if self.wall_s else 0.0
        self.cpu_s_per_gib = self.cpu_s * GiB / size
        self.user_s_per_gib = user * GiB / size


def run_measured(cmd: list[str], timeout: float, logs: Path, env: dict | None = None,
                 watch: list[int] = (), cwd: Path = ROOT) -> dict:
    """Run `cmd`; return wall s, exit code, rusage, timed out, stderr tail, CPU s of the `watch`ed
    PIDs during the run, host busy %."""
    watched0 = sum(proc_cpu_seconds(pid) for pid in watch)
    busy0, total0 = host_cpu_times()
    with open(logs.with_suffix(".out"), "wb") as out, open(logs.with_suffix(".err"), "wb") as err:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=cwd, env=env,
                                preexec_fn=_die_with_parent)
    box = reap(proc, timeout)
    busy1, total1 = host_cpu_times()
    tail = logs.with_suffix(".err").read_bytes()[-3000:].decode(errors="replace").strip()
    if not tail and proc.returncode != 0:   # aria2c reports on stdout
        tail = logs.with_suffix(".out").read_bytes()[-3000:].decode(errors="replace").strip()
    return {"start": start, "wall": box["end"] - start, "code": proc.returncode, "usage": box["usage"],
            "timed_out": box["timed_out"], "tail": tail,
            "watched_cpu": sum(proc_cpu_seconds(pid) for pid in watch) - watched0,
            "host_busy": 100.0 * (busy1 - busy0) / max(1, total1 - total0)}


@dataclass
class Launch:
    """How to start the `app` being benchmarked (see --client-root)."""
    prefix: list[str]          # the command before `download ...` / `seed ...`
    python: str                # the interpreter, for running it under a profiler
    env: dict | None           # None: this process's environment
    cwd: Path
    profile_env: dict = field(default_factory=dict)


def ours_launch(args) -> Launch:
    """A checkout with its own .venv runs through its your_bittorrent.sh; one without (a bare
    `git worktree`) runs `python -m app` with the bench's venv and PYTHONPATH at that checkout."""
    root = args.client_root
    profile_env = dict(os.environ, PYTHONPATH=str(root))
    own = root / ".venv" / "bin" / "python"
    if own.exists():
        return Launch([str(root / "your_bittorrent.sh")], str(own), None, root, profile_env)
    bench_python = ROOT / ".venv" / "bin" / "python"
    python = str(bench_python) if bench_python.exists() else sys.executable
    return Launch([python, "-m", "app"], python, profile_env, root, profile_env)


def ours_download_args(payload: Payload, out_dir: Path, port: int, args, seeders: list[Seeder]) -> list[str]:
    target = out_dir if payload.key == "multi" else out_dir / payload.path.name
    cli = ["download", "-o", str(target), str(payload.torrent), "-q", "--max-peers", str(args.max_peers),
           "--port", str(port)]
    if args.ours_direct:
        for s in seeders:
            cli += ["--peer", f"127.0.0.1:{s.port}"]
    return cli + list(args.ours_arg)


def client_command(client: str, payload: Payload, out_dir: Path, port: int, args, seeders: list[Seeder]) -> list[str]:
    if client == "ours":
        return ours_launch(args).prefix + ours_download_args(payload, out_dir, port, args, seeders)
    if client == "libtorrent":
        return [sys.executable, str(Path(__file__).resolve()), "_ltget", "--port", str(port),
                "--timeout", str(args.timeout), str(payload.torrent), str(out_dir)]
    if client == "aria2":
        return [shutil.which("aria2c") or "aria2c", "--no-conf=true", "--seed-time=0", "--enable-dht=false",
                "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
                "--disable-ipv6=true", f"--listen-port={port}", "--file-allocation=none",
                "--summary-interval=0", "--console-log-level=error", "--download-result=default",
                "--allow-overwrite=true", "--auto-file-renaming=false", f"--stop={int(args.timeout) + 5}",
                "-d", str(out_dir), str(payload.torrent)]
    raise ValueError(client)


def read_ltget_times(result: Result, run: dict, logs: Path, size: int) -> None:
    """first_byte_s and transfer_mib_s from the JSON line `_ltget` printed, if any."""
    try:
        times = json.loads(logs.with_suffix(".out").read_text().strip().splitlines()[-1])
        result.first_byte_s = times["first_byte_at"] - run["start"]
        span = times["done_at"] - times["first_byte_at"]
        result.transfer_mib_s = size / MiB / span if span > 0 else 0.0
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        pass


def check_outcome(result: Result, payload: Payload, out_dir: Path, timed_out: bool, code: int | None,
                  tail: str, timeout: float) -> None:
    """Set result.status (and .error) from how the downloader ended and what it wrote."""
    if timed_out:
        result.status = f"timeout>{timeout:.0f}s"
        result.error = tail
    elif code != 0:
        result.status = f"exit {code}"
        result.error = tail
    else:
        problems = verify(payload, out_dir)
        if problems:
            result.status = f"BAD ({len(problems)} files)"
            result.error = "; ".join(problems[:5]) + (f" ... {tail}" if tail else "")
        elif tail:
            result.error = tail           # succeeded but said something on stderr


def benchmark_one(client: str, payload: Payload, args, workdir: Path, seeders: list[Seeder],
                  tracker: Tracker, run_no: int) -> Result:
    result = Result(payload.key, client, run=run_no)
    if client == "aria2" and not shutil.which("aria2c"):
        result.status = "skipped"
        result.error = "aria2c not installed"
        return result
    wait_for_seeds(tracker, payload, len(seeders))
    result.load_before_pct = wait_idle(args.idle_below, args.idle_wait)
    out_dir = workdir / f"dl-{payload.key}-{client}-{run_no}"
    out_dir.mkdir()
    cmd = client_command(client, payload, out_dir, free_port(), args, seeders)
    result.command = cmd
    log(f"{payload.key}: {client} (run {run_no + 1}) ...")
    launch = ours_launch(args)
    logs = workdir / f"log-{payload.key}-{client}-{run_no}"
    run = run_measured(cmd, args.timeout, logs, env=launch.env if client == "ours" else None,
                       watch=[s.proc.pid for s in seeders], cwd=launch.cwd if client == "ours" else ROOT)
    if client == "libtorrent":
        read_ltget_times(result, run, logs, payload.size)
    wall, code, usage, timed_out, tail = run["wall"], run["code"], run["usage"], run["timed_out"], run["tail"]
    result.seeders_cpu_s, result.host_busy_pct = run["watched_cpu"], run["host_busy"]
    result.wall_s, result.exit_code = wall, code
    result.set_cpu(usage.ru_utime, usage.ru_stime, payload.size)
    result.rss_mib = usage.ru_maxrss / 1024.0           # KiB on Linux
    result.mib_s = payload.size / MiB / wall if wall else 0.0
    if wall:
        ours_share = 100.0 * (result.cpu_s + result.seeders_cpu_s) / (wall * (os.cpu_count() or 1))
        result.other_pct = max(0.0, result.host_busy_pct - ours_share)
    check_outcome(result, payload, out_dir, timed_out, code, tail, args.timeout)
    if result.status != "ok":
        result.mib_s = 0.0
    log(f"{payload.key}: {client}: {result.status} in {wall:.2f} s, {result.cpu_s:.2f} CPU s"
        + (f" -- {result.error[-300:]}" if result.error else ""))
    if not args.keep:
        shutil.rmtree(out_dir, ignore_errors=True)
    os.sync()
    return result


# --- the seed scenario ---------------------------------------------------------------

class OurSeeder:
    """`your_bittorrent.sh seed TORRENT PATH --port P -q`, or the same under cProfile.

    Ready once its port listens (it listens only after checking its data). Stopped with
    SIGINT, as Ctrl-C would, and reaped with os.wait4."""

    def __init__(self, tag: str, port: int, payload: Payload, args, workdir: Path,
                 cprofile_to: Path | None = None) -> None:
        self.index, self.port = tag, port
        launch = ours_launch(args)
        cli = ["seed", str(payload.torrent), str(payload.path), "--port", str(port), "-q", *args.ours_seed_arg]
        if cprofile_to is not None:
            cmd, env = [launch.python, "-m", "cProfile", "-o", str(cprofile_to), "-m", "app", *cli], launch.profile_env
        else:
            cmd, env = launch.prefix + cli, launch.env
        self.command = cmd
        self.log_path = workdir / f"seeder-{tag}.log"
        with open(self.log_path, "wb") as logfile:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logfile, stderr=subprocess.STDOUT,
                                         cwd=launch.cwd, env=env, preexec_fn=_die_with_parent)
        self.usage = None

    def wait_ready(self, deadline: float) -> None:
        while not tcp_listening(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"our seeder exited with {self.proc.returncode}: "
                                   f"{self.log_path.read_text(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"our seeder does not listen on port {self.port} in time; see {self.log_path}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        kill_pid(self.proc.pid, signal.SIGINT)
        box = reap(self.proc, 20.0)       # it announces `stopped` first, bounded by --tracker-timeout
        self.usage = box.get("usage")


def seed_one(kind: str, payload: Payload, direct: Path, args, workdir: Path, run_no: int,
             profiler: str | None = None, profile_to: Path | None = None) -> Result:
    """libtorrent downloads `payload` from exactly one seeder, ours or libtorrent's, which starts
    fresh for this run. The downloader gets the trackerless torrent `direct` and the seeder's port."""
    result = Result(payload.key, kind, scenario="seed", run=run_no)
    port = free_port()
    tag = f"{kind}-{run_no}" if profiler is None else f"{kind}-{profiler}"
    if kind == "ours":
        seeder = OurSeeder(tag, port, payload, args, workdir,
                           cprofile_to=profile_to if profiler == "cprofile" else None)
    else:
        seeder = Seeder(f"-lt-{tag}", port, [payload], args.setup_timeout + args.timeout + 120, workdir)
    out_dir = workdir / f"seed-{payload.key}-{tag}"
    spy = None
    try:
        try:
            seeder.wait_ready(time.monotonic() + args.setup_timeout)
        except RuntimeError as exc:
            result.status, result.error = "seeder failed", str(exc)
            log(f"seed {payload.key}: {kind}: {exc}")
            return result
        result.load_before_pct = wait_idle(args.idle_below, args.idle_wait)
        if profiler == "py-spy":
            with open(workdir / f"log-spy-{tag}.err", "wb") as spy_log:
                spy = subprocess.Popen([args.py_spy or shutil.which("py-spy") or "py-spy", "record", "--pid",
                                        str(seeder.proc.pid), "--rate", str(args.spy_rate), "--format", "raw",
                                        "--full-filenames", "-o", str(profile_to)],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=spy_log,
                                       preexec_fn=_die_with_parent)
            time.sleep(1.0)               # let it attach
        out_dir.mkdir()
        cmd = [sys.executable, str(Path(__file__).resolve()), "_ltget", "--port", str(free_port()),
               "--timeout", str(args.timeout), "--peer", str(port), str(direct), str(out_dir)]
        if not args.seed_mse:
            cmd.insert(-2, "--plain")
        result.command = cmd
        log(f"seed {payload.key}: {kind} seeder, libtorrent downloads (run {run_no + 1}) ..."
            if profiler is None else f"seed {payload.key}: profiling our seeder with {profiler} ...")
        user0, sys0 = proc_cpu_times(seeder.proc.pid)
        logs = workdir / f"log-seed-{payload.key}-{tag}"
        run = run_measured(cmd, args.timeout, logs, watch=[seeder.proc.pid])
        user1, sys1 = proc_cpu_times(seeder.proc.pid)
        result.rss_mib = proc_peak_rss_mib(seeder.proc.pid)
        seeder_alive = seeder.proc.poll() is None
    finally:
        if spy is not None:
            kill_pid(spy.pid, signal.SIGINT)       # py-spy writes its profile on Ctrl-C
            reap(spy, 30.0)
        seeder.stop()
    wall, code, usage, timed_out, tail = run["wall"], run["code"], run["usage"], run["timed_out"], run["tail"]
    result.wall_s, result.exit_code, result.host_busy_pct = wall, code, run["host_busy"]
    result.set_cpu(user1 - user0, sys1 - sys0, payload.size)
    result.seeder_total_cpu_s = user1 + sys1
    result.downloader_cpu_s = usage.ru_utime + usage.ru_stime
    result.mib_s = payload.size / MiB / wall if wall else 0.0
    read_ltget_times(result, run, logs, payload.size)
    if wall:
        ours_share = 100.0 * (result.cpu_s + result.downloader_cpu_s) / (wall * (os.cpu_count() or 1))
        result.other_pct = max(0.0, result.host_busy_pct - ours_share)
    check_outcome(result, payload, out_dir, timed_out, code, tail, args.timeout)
    if result.status == "ok" and not seeder_alive:
        result.status = "seeder died"
        result.error = seeder.log_path.read_text(errors="replace")[-1500:]
    if result.status != "ok":
        result.mib_s = result.transfer_mib_s = 0.0
    log(f"seed {payload.key}: {kind}: {result.status} in {wall:.2f} s, seeder {result.cpu_s:.2f} CPU s, "
        f"{result.rss_mib:.0f} MiB peak" + (f" -- {result.error[-300:]}" if result.error else ""))
    if not args.keep:
        shutil.rmtree(out_dir, ignore_errors=True)
    os.sync()
    return result


def background_load(seconds: float = 2.0) -> float:
    """Percent of all cores busy over `seconds` while the swarm idles (other users' noise)."""
    busy0, total0 = host_cpu_times()
    time.sleep(seconds)
    busy1, total1 = host_cpu_times()
    return 100.0 * (busy1 - busy0) / max(1, total1 - total0)


def wait_idle(below: float, max_wait: float) -> float:
    """On a shared machine: wait (at most `max_wait` s) until under `below`% of the cores are busy."""
    if below <= 0:
        return background_load(0.5)
    deadline = time.monotonic() + max_wait
    load = background_load(1.0)
    while load >= below and time.monotonic() < deadline:
        load = background_load(1.0)
    if load >= below:
        log(f"host still {load:.0f}% busy after {max_wait:.0f} s; running anyway")
    return load


def wait_for_seeds(tracker: Tracker, payload: Payload, count: int, timeout: float = 30.0) -> None:
    """The tracker must list every seeder as complete before a client starts."""
    deadline = time.monotonic() + timeout
    while tracker.seeds(payload.info_hash) < count:
        if time.monotonic() > deadline:
            log(f"warning: tracker lists {tracker.seeds(payload.info_hash)} of {count} seeders for {payload.key}")
            return
        time.sleep(0.2)


# --- profiling ----------------------------------------------------------------------

def profile_ours(kind: str, payload: Payload, args, workdir: Path, seeders: list[Seeder], tracker: Tracker) -> dict:
    """Run our downloader once more under a profiler; return the top hot spots."""
    wait_for_seeds(tracker, payload, len(seeders))
    out_dir = workdir / f"prof-{payload.key}-{kind}"
    out_dir.mkdir()
    cli_args = ours_download_args(payload, out_dir, free_port(), args, seeders)
    launch = ours_launch(args)
    if kind == "cprofile":
        data = workdir / f"prof-{payload.key}.pstats"
        cmd = [launch.python, "-m", "cProfile", "-o", str(data), "-m", "app", *cli_args]
    else:
        spy = args.py_spy or shutil.which("py-spy")
        if not spy:
            return {"role": "downloader", "torrent": payload.key, "profiler": kind,
                    "error": "py-spy not found (give --py-spy PATH)"}
        data = workdir / f"prof-{payload.key}.raw"
        cmd = [spy, "record", "--rate", str(args.spy_rate), "--format", "raw", "--full-filenames", "-o", str(data),
               "--", launch.python, "-m", "app", *cli_args]
    log(f"profiling ours on {payload.key} with {kind} ...")
    run = run_measured(cmd, args.timeout, workdir / f"log-prof-{kind}-{payload.key}", env=launch.profile_env,
                       watch=[s.proc.pid for s in seeders], cwd=launch.cwd)
    wall, code, usage, timed_out, tail = run["wall"], run["code"], run["usage"], run["timed_out"], run["tail"]
    report = {"role": "downloader", "torrent": payload.key, "profiler": kind, "wall_s": round(wall, 2),
              "exit_code": code, "timed_out": timed_out, "cpu_s": round(usage.ru_utime + usage.ru_stime, 2)}
    if code != 0 or timed_out:
        report["stderr"] = tail[-1500:]
    if not timed_out and code == 0:
        problems = verify(payload, out_dir)
        report["verified"] = not problems
    shutil.rmtree(out_dir, ignore_errors=True)
    return finish_profile(report, kind, data, args, wall)


def profile_seed(kind: str, payload: Payload, direct: Path, args, workdir: Path) -> dict:
    """Serve libtorrent once more from our seeder under a profiler; return the top hot spots."""
    report = {"role": "seeder", "torrent": payload.key, "profiler": kind}
    if kind == "py-spy" and not (args.py_spy or shutil.which("py-spy")):
        report["error"] = "py-spy not found (give --py-spy PATH)"
        return report
    data = workdir / (f"prof-seed-{payload.key}.pstats" if kind == "cprofile" else f"prof-seed-{payload.key}.raw")
    try:
        result = seed_one("ours", payload, direct, args, workdir, 0, profiler=kind, profile_to=data)
    except RuntimeError as exc:
        report["error"] = str(exc)
        return report
    report.update({"wall_s": round(result.wall_s, 2), "status": result.status,
                   "cpu_s": round(result.cpu_s, 2), "mib_s": round(result.mib_s, 1)})
    if result.status != "ok":
        report["stderr"] = result.error[-1500:]
    return finish_profile(report, kind, data, args, result.wall_s)


def finish_profile(report: dict, kind: str, data: Path, args, wall: float) -> dict:
    if not data.exists():
        report["error"] = "no profile written"
        return report
    if kind == "cprofile":
        report.update(cprofile_top(data, args.profile_top))
    else:
        report.update(pyspy_top(data, args.profile_top, args.spy_rate, wall))
    if args.keep or args.profile_keep:
        keep = BENCH / "out" / data.name
        keep.parent.mkdir(exist_ok=True)
        shutil.copyfile(data, keep)
        report["file"] = str(keep)
    return report


def cprofile_top(path: Path, top: int) -> dict:
    import pstats
    stats = pstats.Stats(str(path))
    rows = []
    for (filename, line, func), (_cc, nc, tt, ct, _) in stats.stats.items():
        rows.append({"function": f"{func} ({short_path(filename)}:{line})", "calls": nc,
                     "self_s": round(tt, 3), "total_s": round(ct, 3)})
    total = sum(r["self_s"] for r in rows) or 1.0
    by_self = sorted(rows, key=lambda r: -r["self_s"])[:top]
    for r in by_self:
        r["self_pct"] = round(100 * r["self_s"] / total, 1)
    by_total = sorted((r for r in rows if "(app/" in r["function"] and "app/cli/" not in r["function"]
                       and "__main__" not in r["function"]), key=lambda r: -r["total_s"])[:top]
    return {"profiled_s": round(total, 2), "by_self": by_self, "by_total": by_total}


IDLE_LINES = ("work_queue.get(", ".select(", ".poll(", "_cond.wait", "waiter.acquire", "lock.acquire(")


def is_idle_frame(frame: str) -> bool:
    """A leaf frame that is a thread waiting (py-spy counts pool threads blocked in a
    queue get as active): judged by the source line the frame points at."""
    import linecache
    where = frame.rpartition(" (")[2].rstrip(")")
    path, _, line = where.rpartition(":")
    if not line.isdigit():
        return False
    text = linecache.getline(path, int(line))
    return any(marker in text for marker in IDLE_LINES)


def pyspy_top(path: Path, top: int, rate: int, wall: float) -> dict:
    """Aggregate py-spy's collapsed stacks: self and inclusive samples per function,
    leaving out samples of threads that only wait."""
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    samples = idle = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        if is_idle_frame(frames[-1]):
            idle += n
            continue
        samples += n
        names = [frame_name(f) for f in frames]
        own[names[-1]] = own.get(names[-1], 0) + n
        for name in set(names):
            incl[name] = incl.get(name, 0) + n
    busy = samples or 1
    return {"samples": samples, "idle_samples_left_out": idle,
            "samples_pct_of_wall": round(100.0 * samples / (rate * wall), 1) if wall else 0.0,
            "by_self": [{"function": k, "self_pct": round(100.0 * v / busy, 1)}
                        for k, v in sorted(own.items(), key=lambda kv: -kv[1])[:top]],
            "by_total": [{"function": k, "total_pct": round(100.0 * v / busy, 1)}
                         for k, v in sorted(incl.items(), key=lambda kv: -kv[1])
                         if "(app/" in k and "app/cli/" not in k and "__main__" not in k][:top]}


def frame_name(frame: str) -> str:
    """'func (path/file.py:123)' -> 'func (file.py)' so lines of one function add up."""
    func, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    return f"{func} ({short_path(where)})" if where else func


def short_path(path: str) -> str:
    path = path.replace(str(CLIENT_ROOT) + "/", "").replace(str(ROOT) + "/", "")
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    if "/lib/python3" in path:
        return "stdlib/" + path.split("/lib/python3", 1)[1].split("/", 1)[-1]
    return path


# --- report -------------------------------------------------------------------------------

COMMON_FIELDS = ("wall_s", "mib_s", "cpu_s", "cpu_user_s", "cpu_sys_s", "cpu_s_per_gib", "user_s_per_gib", "rss_mib",
                 "host_busy_pct", "other_pct", "load_before_pct")
LTGET_FIELDS = ("first_byte_s", "transfer_mib_s")     # measured by the libtorrent downloader itself


def median_fields(scenario: str, client: str) -> tuple[str, ...]:
    if scenario == "seed":
        return COMMON_FIELDS + LTGET_FIELDS + ("downloader_cpu_s", "seeder_total_cpu_s")
    return COMMON_FIELDS + ("seeders_cpu_s",) + (LTGET_FIELDS if client == "libtorrent" else ())


def summarize(results: list[Result]) -> list[dict]:
    """Per scenario, torrent and client: median, min and max of each figure over the runs that
    succeeded (a failed run has no honest figures; it counts in `runs` but not in `ok_runs`)."""
    groups: dict[tuple[str, str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.scenario, r.torrent, r.client), []).append(r)
    summary = []
    for (scenario, torrent, client), runs in groups.items():
        ok = [r for r in runs if r.status == "ok"]
        row: dict = {"scenario": scenario, "torrent": torrent, "client": client, "runs": len(runs),
                     "ok_runs": len(ok), "skipped": all(r.status == "skipped" for r in runs)}
        for name in median_fields(scenario, client):
            values = [getattr(r, name) for r in ok]
            row[name] = {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
                         "max": round(max(values), 3)} if values else None
        summary.append(row)
    return summary


def print_rows(head: tuple[str, ...], rows: list[tuple[str, ...]], left: int) -> None:
    """A plain text table: the first `left` columns flush left, the others flush right."""
    rows = [head, *rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(w) if i < left else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))))
        if n == 0:
            print("  ".join("-" * w for w in widths))
    print()


def print_runs(results: list[Result]) -> None:
    downloads = [r for r in results if r.scenario == "download"]
    seeds = [r for r in results if r.scenario == "seed"]
    if downloads:
        print("download scenario, every run (CPU and RSS: the downloader's)")
        print_rows(("torrent", "client", "run", "status", "wall s", "MiB/s", "CPU s", "user", "sys", "CPU s/GiB",
                    "user s/GiB", "CPU%", "RSS MiB", "seed CPU s", "host%", "other%", "load0%"),
                   [(r.torrent, r.client, str(r.run + 1), r.status, f"{r.wall_s:.2f}", f"{r.mib_s:.1f}",
                     f"{r.cpu_s:.2f}", f"{r.cpu_user_s:.2f}", f"{r.cpu_sys_s:.2f}", f"{r.cpu_s_per_gib:.2f}",
                     f"{r.user_s_per_gib:.2f}", f"{r.cpu_pct:.0f}", f"{r.rss_mib:.0f}", f"{r.seeders_cpu_s:.2f}",
                     f"{r.host_busy_pct:.0f}", f"{r.other_pct:.0f}", f"{r.load_before_pct:.0f}") for r in downloads],
                   left=4)
    if seeds:
        print("seed scenario, every run (libtorrent downloads from one seeder; CPU and RSS: the seeder's, "
              "CPU during the transfer)")
        print_rows(("torrent", "seeder", "run", "status", "wall s", "MiB/s", "1st byte s", "xfer MiB/s", "CPU s",
                    "user", "sys", "CPU s/GiB", "user s/GiB", "RSS MiB", "seeder total CPU s", "dl CPU s", "host%",
                    "other%", "load0%"),
                   [(r.torrent, r.client, str(r.run + 1), r.status, f"{r.wall_s:.2f}", f"{r.mib_s:.1f}",
                     f"{r.first_byte_s:.2f}", f"{r.transfer_mib_s:.1f}",
                     f"{r.cpu_s:.2f}", f"{r.cpu_user_s:.2f}", f"{r.cpu_sys_s:.2f}", f"{r.cpu_s_per_gib:.2f}",
                     f"{r.user_s_per_gib:.2f}", f"{r.rss_mib:.0f}", f"{r.seeder_total_cpu_s:.2f}",
                     f"{r.downloader_cpu_s:.2f}", f"{r.host_busy_pct:.0f}", f"{r.other_pct:.0f}",
                     f"{r.load_before_pct:.0f}") for r in seeds],
                   left=4)


def spread(figure: dict | None, digits: int) -> str:
    """'median (min-max)'."""
    if figure is None:
        return "-"
    return f"{figure['median']:.{digits}f} ({figure['min']:.{digits}f}-{figure['max']:.{digits}f})"


def median_of(figure: dict | None) -> str:
    return "-" if figure is None else f"{figure['median']:.2f}"


def print_medians(summary: list[dict]) -> None:
    for scenario, title, who in (("download", "download scenario", "client"), ("seed", "seed scenario", "seeder")):
        rows = [m for m in summary if m["scenario"] == scenario and not m["skipped"]]
        if not rows:
            continue
        print(f"{title}: median (min-max) of the runs that succeeded"
              + ("; CPU and RSS of the seeder" if scenario == "seed" else ""))
        if scenario == "download":
            head = ("torrent", who, "ok", "MiB/s", "wall s", "CPU s", "CPU s/GiB", "user s/GiB", "RSS MiB",
                    "seed CPU s", "other%")
            cells = [(spread(m["mib_s"], 1), spread(m["wall_s"], 2), spread(m["cpu_s"], 2),
                      spread(m["cpu_s_per_gib"], 2), spread(m["user_s_per_gib"], 2), spread(m["rss_mib"], 0),
                      median_of(m["seeders_cpu_s"]), spread(m["other_pct"], 0)) for m in rows]
        else:
            head = ("torrent", who, "ok", "MiB/s", "wall s", "1st byte s", "xfer MiB/s", "CPU s", "CPU s/GiB",
                    "user s/GiB", "RSS MiB", "dl CPU s", "other%")
            cells = [(spread(m["mib_s"], 1), spread(m["wall_s"], 2), median_of(m["first_byte_s"]),
                      spread(m["transfer_mib_s"], 1), spread(m["cpu_s"], 2), spread(m["cpu_s_per_gib"], 2),
                      spread(m["user_s_per_gib"], 2), spread(m["rss_mib"], 0), median_of(m["downloader_cpu_s"]),
                      spread(m["other_pct"], 0)) for m in rows]
        print_rows(head, [(m["torrent"], m["client"], f"{m['ok_runs']}/{m['runs']}", *c) for m, c in zip(rows, cells)],
                   left=3)


def ratio_of(ours: dict, other: dict) -> float | None:
    """Median over median, or None when the other's median is 0 (too small to measure)."""
    return round(ours["median"] / other["median"], 3) if other["median"] else None


def times(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.2f}x"


def print_ratios(summary: list[dict]) -> list[dict]:
    """Ours against each other client (download) or seeder (seed), median against median."""
    by_key = {(m["scenario"], m["torrent"], m["client"]): m for m in summary}
    ratios = []
    for m in summary:
        ours = by_key.get((m["scenario"], m["torrent"], "ours"))
        if m["client"] == "ours" or m["skipped"] or ours is None:
            continue
        other, where = m["client"], m["torrent"] if m["scenario"] == "download" else f"seed {m['torrent']}"
        what = "median throughput" if m["scenario"] == "download" else "seeding throughput"
        cpu_what = "median CPU per GiB" if m["scenario"] == "download" else "seeder CPU per GiB"
        entry: dict = {"scenario": m["scenario"], "torrent": m["torrent"], "other": other,
                       "ours_ok_runs": ours["ok_runs"], "other_ok_runs": m["ok_runs"], "runs": m["runs"]}
        if ours["mib_s"] is None or m["mib_s"] is None:
            print(f"{where}: ours/{other} {what}: no successful run of "
                  f"{'ours' if ours['mib_s'] is None else other} to compare")
            ratios.append(entry)
            continue
        rate_ratio = ratio_of(ours["mib_s"], m["mib_s"])
        cpu_ratio = ratio_of(ours["cpu_s_per_gib"], m["cpu_s_per_gib"])
        user_ratio = ratio_of(ours["user_s_per_gib"], m["user_s_per_gib"])
        runs = f"medians of {ours['ok_runs']} and {m['ok_runs']} runs"
        print(f"{where}: ours/{other} {what} = {times(rate_ratio)} "
              f"({ours['mib_s']['median']:.1f} vs {m['mib_s']['median']:.1f} MiB/s; {runs})")
        print(f"{where}: ours/{other} {cpu_what} = {times(cpu_ratio)} "
              f"({ours['cpu_s_per_gib']['median']:.2f} vs {m['cpu_s_per_gib']['median']:.2f} CPU s/GiB; "
              f"user alone {ours['user_s_per_gib']['median']:.2f} vs {m['user_s_per_gib']['median']:.2f} "
              f"= {times(user_ratio)})")
        if m["scenario"] == "seed" and ours["transfer_mib_s"] and m["transfer_mib_s"]:
            xfer_ratio = ratio_of(ours["transfer_mib_s"], m["transfer_mib_s"])
            entry["transfer_ratio"] = xfer_ratio
            print(f"{where}: ours/{other} seeding throughput from the first byte on = {times(xfer_ratio)} "
                  f"({ours['transfer_mib_s']['median']:.1f} vs {m['transfer_mib_s']['median']:.1f} MiB/s; "
                  f"first byte after {ours['first_byte_s']['median']:.2f} vs {m['first_byte_s']['median']:.2f} s)")
        entry.update({"ours_mib_s": ours["mib_s"]["median"], "other_mib_s": m["mib_s"]["median"],
                      "throughput_ratio": rate_ratio,
                      "ours_cpu_s_per_gib": ours["cpu_s_per_gib"]["median"],
                      "other_cpu_s_per_gib": m["cpu_s_per_gib"]["median"], "cpu_per_gib_ratio": cpu_ratio,
                      "ours_user_s_per_gib": ours["user_s_per_gib"]["median"],
                      "other_user_s_per_gib": m["user_s_per_gib"]["median"],
                      "user_per_gib_ratio": user_ratio})
        ratios.append(entry)
    return ratios


def print_failures(results: list[Result]) -> None:
    for r in results:
        if r.status not in ("ok", "skipped"):
            print(f"\n{r.scenario} {r.torrent}/{r.client} run {r.run + 1}: {r.status}\n  "
                  + (r.error[-1500:] or "(nothing on stderr)").replace("\n", "\n  "))


def print_profile(report: dict) -> None:
    role = report.get("role", "downloader")
    print(f"\nprofile of our {role} ({report.get('profiler')}, {report.get('torrent')}): "
          f"wall {report.get('wall_s')} s, CPU {report.get('cpu_s')} s"
          + (f", exit {report.get('exit_code')}" if "exit_code" in report else "")
          + (f", {report['status']}" if "status" in report else "")
          + (f", busy samples = {report['samples_pct_of_wall']}% of wall (all threads; 100% = one core; "
             f"{report['idle_samples_left_out']} samples of waiting threads left out)"
             if "samples_pct_of_wall" in report else ""))
    if report.get("error") or report.get("stderr"):
        print("  " + (report.get("error") or report.get("stderr", ""))[-800:])
    for row in report.get("by_self", []):
        pct = row.get("self_pct")
        extra = (f"  {row['self_s']:.2f}s self, {row['total_s']:.2f}s total, {row['calls']} calls"
                 if "self_s" in row else "")
        print(f"  {pct:5.1f}% self  {row['function']}{extra}")
    if report.get("by_total"):
        print("  -- inclusive, this project's functions --")
        for row in report["by_total"][:15]:
            pct = row.get("total_pct")
            label = f"{pct:5.1f}%" if pct is not None else f"{row['total_s']:.2f}s"
            print(f"  {label:>7}  {row['function']}")


# --- main ---------------------------------------------------------------------------------

def comma_list(text: str, allowed: tuple[str, ...], what: str, parser: argparse.ArgumentParser) -> list[str]:
    items = [k.strip() for k in text.split(",") if k.strip() and k.strip() != "none"]
    unknown = set(items) - set(allowed)
    if unknown:
        parser.error(f"unknown {what}: {', '.join(sorted(unknown))} (choose from {', '.join(allowed)})")
    return items


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma list of: " + ", ".join(SCENARIOS))
    p.add_argument("--single-mib", type=int, default=1024,
                   help="size of the single-file torrent (0: skip it; the seed scenario needs it)")
    p.add_argument("--multi-mib", type=int, default=256, help="size of the multi-file torrent (0: skip it)")
    p.add_argument("--files", type=int, default=2000, help="files in the multi-file torrent")
    p.add_argument("--piece-kib", type=int, default=0, help="piece length in KiB (0: libtorrent picks)")
    p.add_argument("--seeders", type=int, default=3, help="libtorrent seeder processes (download scenario)")
    p.add_argument("--clients", default=",".join(CLIENTS),
                   help="download scenario: comma list of: " + ", ".join(CLIENTS))
    p.add_argument("--seed-clients", default=",".join(SEEDERS),
                   help="seed scenario: the seeders to compare, comma list of: " + ", ".join(SEEDERS))
    p.add_argument("--repeat", type=int, default=3, help="runs of each client (or seeder) on each torrent; "
                                                         "the summary gives the median")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds before a download is killed")
    p.add_argument("--setup-timeout", type=float, default=300.0, help="seconds for the seeders to get ready")
    p.add_argument("--seed-mse", action="store_true",
                   help="seed scenario: let the libtorrent downloader try protocol encryption first, as libtorrent "
                        "does by default (our seeder has none, so its first connection fails); off: plain protocol")
    p.add_argument("--idle-below", type=float, default=0.0,
                   help="before each download wait until the host is less than this %% busy (0: don't wait)")
    p.add_argument("--idle-wait", type=float, default=120.0, help="longest such wait, in seconds")
    p.add_argument("--client-root", type=Path, default=ROOT,
                   help="the checkout whose your_bittorrent.sh (app/) is benchmarked as `ours`; one without "
                        "its own .venv runs with this bench's venv python")
    p.add_argument("--max-peers", type=int, default=50, help="our client's --max-peers")
    p.add_argument("--ours-direct", action="store_true", help="give our client the seeders with --peer")
    p.add_argument("--ours-arg", action="append", default=[],
                   help="extra argument for our `download` (repeatable)")
    p.add_argument("--ours-seed-arg", action="append", default=[],
                   help="extra argument for our `seed` (repeatable)")
    p.add_argument("--profile", default="none",
                   help="after the timed downloads, run our downloader once more under each of these profilers: "
                        "none, or a comma list of cprofile, py-spy")
    p.add_argument("--profile-torrent", choices=("single", "multi", "both"), default="single")
    p.add_argument("--profile-seed", default="none",
                   help="after the timed seed runs, serve once more from our seeder under each of these "
                        "profilers: none, or a comma list of cprofile, py-spy (py-spy attaches to its PID)")
    p.add_argument("--profile-top", type=int, default=25)
    p.add_argument("--profile-keep", action="store_true", help="copy the raw profile to bench/out/")
    p.add_argument("--py-spy", help="py-spy binary (default: on PATH)")
    p.add_argument("--spy-rate", type=int, default=200, help="py-spy samples per second")
    p.add_argument("--workdir", type=Path, default=BENCH / "out", help="parent of the temp dir for data")
    p.add_argument("--keep", action="store_true", help="keep data, downloads and logs")
    p.add_argument("--seed", type=int, default=1, help="seed for the multi-file sizes")
    p.add_argument("--json", type=Path, help="also write every run, the medians and the ratios here")
    args = p.parse_args(argv)
    args.scenarios = comma_list(args.scenarios, SCENARIOS, "scenario", p)
    args.clients = comma_list(args.clients, CLIENTS, "client", p)
    args.seed_clients = comma_list(args.seed_clients, SEEDERS, "seeder", p)
    args.profile = comma_list(args.profile, ("cprofile", "py-spy"), "profiler in --profile", p)
    args.profile_seed = comma_list(args.profile_seed, ("cprofile", "py-spy"), "profiler in --profile-seed", p)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    args.client_root = args.client_root.resolve()
    if not (args.client_root / "app" / "__main__.py").exists():
        p.error(f"--client-root {args.client_root} holds no app/__main__.py")
    return args


def app_version(root: Path) -> str:
    """The checkout's commit, and whether its app/ had uncommitted changes when the bench ran."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "app"], cwd=root, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + (" (app/ modified)" if dirty else "")


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    global CLIENT_ROOT
    args = parse_args(argv)
    CLIENT_ROOT = args.client_root
    signal.signal(signal.SIGTERM, _interrupt)
    args.workdir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-", dir=args.workdir))
    download = "download" in args.scenarios and bool(args.clients)
    seeding = "seed" in args.scenarios and bool(args.seed_clients)
    if seeding and args.single_mib <= 0:
        log("the seed scenario needs the single-file torrent (--single-mib > 0); skipping it")
        seeding = False
    version = app_version(args.client_root)
    tracker: Tracker | None = None
    seeders: list[Seeder] = []
    results: list[Result] = []
    profiles: list[dict] = []
    payloads: dict[str, Payload] = {}
    background: dict[str, float] = {}
    try:
        if (download and "ours" in args.clients) or (seeding and "ours" in args.seed_clients):
            launch = ours_launch(args)   # first use may install packages: keep that out of the timings
            log(f"ours: {' '.join(launch.prefix)} (in {launch.cwd}; app {version})")
            subprocess.run([*launch.prefix, "--help"], stdout=subprocess.DEVNULL, check=True, timeout=600,
                           cwd=launch.cwd, env=launch.env)
            # Measure the client as installed: its install byte-compiles app/ (app/bootstrap.py),
            # which edits since then have made stale.
            subprocess.run([launch.python, "-m", "compileall", "-q", str(args.client_root / "app")],
                           stdout=subprocess.DEVNULL, check=True, timeout=120)
        tracker = Tracker(workdir, free_port())
        tracker.start()
        log(f"opentracker on 127.0.0.1:{tracker.port} (pid {tracker.proc.pid})")
        data = workdir / "data"
        data.mkdir()
        t0 = time.monotonic()
        if args.single_mib > 0 and (download or seeding):
            payloads["single"] = make_single(data, args.single_mib)
        if args.multi_mib > 0 and download:
            payloads["multi"] = make_multi(data, args.multi_mib, args.files, args.seed)
        log(f"data written in {time.monotonic() - t0:.1f} s")
        for payload in payloads.values():
            make_torrent(payload, workdir / f"{payload.key}.torrent", tracker.url, args.piece_kib)
            log(f"{payload.key}: {payload.size / MiB:.0f} MiB in {len(payload.files)} files, "
                f"{payload.pieces} pieces of {payload.piece_length // 1024} KiB, info hash {payload.info_hash}")
        if payloads:
            tracker.authorize([p.info_hash for p in payloads.values()])
        if download and payloads:
            runs = len(payloads) * len(args.clients) * args.repeat + 2 * len(args.profile)
            lifetime = args.setup_timeout + runs * (args.timeout + 60) + 120
            for i in range(args.seeders):
                seeders.append(Seeder(i, free_port(), list(payloads.values()), lifetime, workdir))
                time.sleep(0.2)
            deadline = time.monotonic() + args.setup_timeout
            for s in seeders:
                s.wait_ready(deadline)
            log(f"{len(seeders)} seeders ready on ports {', '.join(str(s.port) for s in seeders)}")
            background["download"] = background_load()
            log(f"background load before the downloads: {background['download']:.0f}% of {os.cpu_count()} cores")
            for payload in payloads.values():
                for run_no in range(args.repeat):
                    for client in args.clients:
                        results.append(benchmark_one(client, payload, args, workdir, seeders, tracker, run_no))
            keys = list(payloads) if args.profile_torrent == "both" else [args.profile_torrent]
            for kind in args.profile:
                for key in keys:
                    if key in payloads:
                        profiles.append(profile_ours(kind, payloads[key], args, workdir, seeders, tracker))
            for s in seeders:     # the seed scenario must not share the cores with them
                s.stop()
            log(f"the {len(seeders)} download seeders stopped")
        if seeding:
            payload = payloads["single"]
            direct = trackerless_copy(payload, workdir / "single-direct.torrent")
            background["seed"] = background_load()
            log(f"background load before the seed runs: {background['seed']:.0f}% of {os.cpu_count()} cores")
            for run_no in range(args.repeat):
                for kind in args.seed_clients:
                    results.append(seed_one(kind, payload, direct, args, workdir, run_no))
            for kind in args.profile_seed:
                profiles.append(profile_seed(kind, payload, direct, args, workdir))
    except KeyboardInterrupt:
        log("interrupted")
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        log(f"error: {exc}")
    finally:
        for s in seeders:
            s.stop()
        if tracker:
            tracker.stop()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if not results:
        return 1
    loads = ", ".join(f"{k} {v:.0f}%" for k, v in background.items())
    print(f"\napp: {version} ({args.client_root}); host: {os.cpu_count()} cores; "
          f"{len(seeders)} libtorrent seeders (download scenario) + opentracker on 127.0.0.1; "
          f"{args.repeat} runs each; timeout {args.timeout:.0f} s; background load before: {loads or '-'}"
          "\n(host% = all cores busy during a run, other% = the part of it used by none of the bench's processes, "
          "load0% = all cores busy just before the run)")
    for p in payloads.values():
        print(f"{p.key}: {p.size / MiB:.0f} MiB, {len(p.files)} files, "
              f"{p.pieces} pieces of {p.piece_length // 1024} KiB")
    print()
    print_runs(results)
    summary = summarize(results)
    print_medians(summary)
    ratios = print_ratios(summary)
    print_failures(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "host_cores": os.cpu_count(), "seeders": len(seeders), "timeout_s": args.timeout,
            "repeat": args.repeat, "scenarios": args.scenarios,
            "background_load_pct": {k: round(v, 1) for k, v in background.items()},
            "app_version": version, "client_root": str(args.client_root),
            "torrents": {k: {"mib": p.size / MiB, "files": len(p.files), "piece_kib": p.piece_length // 1024,
                             "pieces": p.pieces} for k, p in payloads.items()},
            "results": [asdict(r) for r in results], "medians": summary, "ratios": ratios,
            "profiles": profiles}, indent=2))
        log(f"wrote {args.json}")
    for report in profiles:
        try:
            print_profile(report)
        except (KeyError, TypeError, ValueError) as exc:   # a summary bug must not hide the table
            print(f"profile summary failed: {exc!r}")
    return 0 if all(r.status in ("ok", "skipped") for r in results) else 2


if __name__ == "__main__":
    if sys.argv[1:2] == ["_seed"]:
        sys.exit(seeder_main(sys.argv[2:]))
    if sys.argv[1:2] == ["_ltget"]:
        sys.exit(ltget_main(sys.argv[2:]))
    sys.exit(main(sys.argv[1:]))
