"""Issue #11 against libtorrent seeders (and our own seeder) on 127.0.0.1: `stream` into a
pipe (sha256sum; `head -c 100` closing it early), and the rate limits as behaviour: a
64 MiB download with --max-download-limit 4M takes 14-18 s, our seeder's
--max-upload-limit holds a downloader to its rate."""
from __future__ import annotations

import hashlib
import os
import shlex
import signal
import subprocess
import tempfile
import time

from support.checks import assert_ok
from support.cli import LAUNCHER

from swarm.kit import KIB, MIB, OurSeeder, run_cli_tty, summary


def run_pipeline(cli_args, consumer: str, timeout: float = 60) -> tuple[str, int, str, float]:
    """`your_bittorrent.sh ARGS 2>ERR | CONSUMER` in bash: (consumer's stdout, the CLI's exit
    status, the CLI's stderr, seconds). Killed (its process group, which we started) on timeout."""
    with tempfile.TemporaryDirectory(prefix="stream-") as tmp:
        err = f"{tmp}/stderr"
        script = (f"{shlex.join([str(LAUNCHER), *map(str, cli_args)])} 2>{err} | {consumer}; "
                  f"echo \"status=${{PIPESTATUS[0]}}\" >&2")
        started = time.monotonic()
        proc = subprocess.Popen(["bash", "-c", script], cwd=tmp, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        try:
            out, status = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        elapsed = time.monotonic() - started
        code = int(status.decode().rsplit("status=", 1)[1])
        with open(err) as f:
            return out.decode(), code, f.read(), elapsed


def test_stream_into_sha256sum_gives_the_files_hash(swarms, client_port):
    sizes = {"intro.txt": 5_000, "movie.bin": 3 * MIB + 12_345, "zz.nfo": 777}
    swarm = swarms.multi("film", sizes, piece_length=64 * KIB, seed=71, seeders=2)
    spec = swarm.spec
    names = ["/".join(parts) for parts, _ in spec.files]
    number = names.index("film/movie.bin") + 1
    out, code, err, _ = run_pipeline(["stream", "--port", client_port, "--file", number, spec.torrent_path],
                                     "sha256sum")
    expected = hashlib.sha256((spec.data_root / "film" / "movie.bin").read_bytes()).hexdigest()
    assert code == 0, err
    assert out.split()[0] == expected, err
    assert "Traceback" not in err


def test_stream_into_a_pipe_closed_early_ends_cleanly(swarms, client_port):
    swarm = swarms.single("long.bin", 16 * MIB, piece_length=256 * KIB, seed=72, seeders=1)
    spec = swarm.spec
    # a slow download, so the reader goes away long before the end
    out, code, err, elapsed = run_pipeline(["stream", "--port", client_port, "--max-download-limit", "1M",
                                            spec.torrent_path], "head -c 100 | wc -c")
    assert out.strip() == "100", err
    assert code == 0, err
    assert "Traceback" not in err and "Error" not in err, err
    # in order (--sequential): the first piece comes early, and then the download stops
    assert elapsed < 8, f"took {elapsed:.1f} s: the first bytes should come early and the run stop then"


def test_download_limit_holds_a_64_mib_download_to_4_mib_per_second(swarms, tmp_path, client_port):
    swarm = swarms.single("limited.bin", 64 * MIB, piece_length=256 * KIB, seed=73, seeders=2)
    spec = swarm.spec
    out = tmp_path / "limited.bin"
    result = run_cli_tty("download", "-o", out, "--port", client_port, "--max-download-limit", "4M",
                         spec.torrent_path, timeout=60)
    assert_ok(result)
    seconds = summary(result)["seconds"]
    print(f"64 MiB at --max-download-limit 4M: {seconds} s")
    assert 14 <= seconds <= 18, f"64 MiB at 4 MiB/s took {seconds} s\n{result.describe()}"
    assert hashlib.sha1(out.read_bytes()).digest() == hashlib.sha1(spec.payload()).digest()


def test_our_seeders_upload_limit(swarms, tmp_path, client_port):
    spec = swarms.single("up.bin", 5 * MIB, piece_length=256 * KIB, seed=74, seeders=0).spec
    with OurSeeder(spec.torrent_path, spec.data_root / "up.bin", "--max-upload-limit", "1M") as seeder:
        result = run_cli_tty("download", "-o", tmp_path / "up.bin", "--port", client_port,
                             "--peer", seeder.address, spec.torrent_path, timeout=30)
    assert_ok(result)
    seconds = summary(result)["seconds"]
    # 5 MiB at 1 MiB/s, less the half-second burst the bucket starts with
    print(f"5 MiB from our seeder at --max-upload-limit 1M: {seconds} s")
    assert 3.8 <= seconds <= 6.5, f"5 MiB at 1 MiB/s took {seconds} s\n{result.describe()}"
