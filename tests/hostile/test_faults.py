"""Faults: unsafe paths in a .torrent, symlinks planted in the output tree, unwritable
output, a full disk, and SIGKILL in the middle of a download (then resume)."""
from __future__ import annotations

import hashlib
import os
import random
import re
import subprocess
import time
from pathlib import Path

import pytest

from support.cli import LAUNCHER, run_cli
from support.peers import start_seeder
from support.torrents import make_single_file

from hostile.helpers import assert_clean_failure, assert_same_bytes, assert_success, tree_listing, write_torrent

KIB = 1024
MIB = 1024 * KIB

# --- unsafe paths in a multi-file torrent -----------------------------------------------

UNSAFE = {
    "dot-dot": {"name": "pack", "paths": [["..", "escape.txt"]]},
    "dot-dot in the middle": {"name": "pack", "paths": [["a", "..", "..", "escape.txt"]]},
    "absolute": {"name": "pack", "paths": [["/tmp/hostile-escape.txt"]]},
    "slash inside a part": {"name": "pack", "paths": [["a/../../escape.txt"]]},
    "NUL": {"name": "pack", "paths": [["escape\x00.txt"]]},
    "drive letter part": {"name": "pack", "paths": [["C:", "escape.txt"]]},
    "drive letter path": {"name": "pack", "paths": [["C:\\escape.txt"]]},
    "backslash dot-dot": {"name": "pack", "paths": [["..\\..\\escape.txt"]]},
    "empty part": {"name": "pack", "paths": [["", "escape.txt"]]},
    "dot part": {"name": "pack", "paths": [[".", "escape.txt"]]},
    "name dot-dot": {"name": "..", "paths": [["escape.txt"]]},
    "name absolute": {"name": "/tmp/hostile-escape-dir", "paths": [["escape.txt"]]},
    "name with slash": {"name": "../escape", "paths": [["escape.txt"]]},
    "second file unsafe": {"name": "pack", "paths": [["fine.txt"], ["..", "escape.txt"]]},
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_paths_are_refused_before_writing(tmp_path, case):
    spec = UNSAFE[case]
    files = [{"length": 1000, "path": p} for p in spec["paths"]]
    total = 1000 * len(files)
    info = {"name": spec["name"], "piece length": 16384, "files": files,
            "pieces": hashlib.sha1(bytes(total)).digest()}
    torrent = write_torrent(tmp_path / "evil.torrent",
                            {"announce": "http://127.0.0.1:1/announce", "info": info})
    jail = tmp_path / "jail"
    out = jail / "a" / "b" / "out"
    out.mkdir(parents=True)
    outside = [Path("/tmp/hostile-escape.txt"), Path("/tmp/hostile-escape-dir")]
    existed = [p.exists() for p in outside]
    result = run_cli("download", "-o", out, "--peer", "127.0.0.1:1", torrent)
    assert_clean_failure(result, max_seconds=8)
    assert tree_listing(jail) == ["a", "a/b", "a/b/out"], "something was written"
    assert [p.exists() for p in outside] == existed


# --- symlinks planted in the output tree --------------------------------------------------

@pytest.mark.parametrize("planted", ["directory", "file"])
def test_symlink_in_output_tree_is_not_followed(served_multi, tmp_path, client_port, planted):
    """album/sub -> an outside directory, or album/a.bin -> an outside file: the outside
    target keeps its bytes and its mtime, whatever the CLI decides."""
    spec = served_multi.spec
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    (out / "album").mkdir(parents=True)
    if planted == "directory":
        victim = outside / "b.bin"
        victim.write_bytes(b"precious, not to be overwritten\n" * 10)
        (out / "album" / "sub").symlink_to(outside, target_is_directory=True)
    else:
        victim = outside / "victim.bin"
        victim.write_bytes(b"precious, not to be overwritten\n" * 10)
        (out / "album" / "a.bin").symlink_to(victim)
    before = victim.read_bytes()
    os.utime(victim, (1_000_000_000, 1_000_000_000))
    result = run_cli("download", "-o", out, "--port", client_port, "--peer",
                     served_multi.fast.address, spec.torrent_path, timeout=30)
    why = result.describe()
    assert victim.read_bytes() == before, "the symlink was followed\n" + why
    assert victim.stat().st_mtime == 1_000_000_000, "the outside file was touched\n" + why
    assert sorted(p.name for p in outside.iterdir()) == [victim.name], why
    if result.returncode != 0:
        assert_clean_failure(result)
    else:  # it replaced the link with a real file, or wrote around it: check the data
        for parts, _ in spec.files:
            path = out.joinpath(*parts)
            assert not path.is_symlink() and path.resolve().is_relative_to(out.resolve()), why
            assert_same_bytes(path, spec.data_root.joinpath(*parts).read_bytes(), why)


# --- output that cannot be written ---------------------------------------------------------

def test_output_under_a_regular_file(served, tmp_path, client_port):
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"i am a file")
    for args in (["download", "-o", blocker / "sub" / "out.bin"],
                 ["download_piece", "-o", blocker / "piece", served.spec.torrent_path, "0"]):
        if args[0] == "download":
            args.append(served.spec.torrent_path)
        result = run_cli(*args[:1], "--port", client_port, "--peer", served.fast.address,
                         *args[1:], timeout=20)
        assert_clean_failure(result, max_seconds=10)
    assert blocker.read_bytes() == b"i am a file"
    assert tree_listing(tmp_path) == ["blocker"]


def test_multi_file_output_is_a_regular_file(served_multi, tmp_path, client_port):
    target = tmp_path / "not-a-dir"
    target.write_bytes(b"keep me")
    result = run_cli("download", "-o", target, "--port", client_port, "--peer",
                     served_multi.fast.address, served_multi.spec.torrent_path, timeout=20)
    assert_clean_failure(result, max_seconds=10)
    assert target.read_bytes() == b"keep me"


def test_read_only_output_directory(served, tmp_path, tmpfs, client_port):
    ro = tmpfs("ro", "64k", read_only=True)
    for args in (["download", "-o", ro / "out.bin", served.spec.torrent_path],
                 ["download_piece", "-o", ro / "piece", served.spec.torrent_path, "1"]):
        result = run_cli(args[0], "--port", client_port, "--peer", served.fast.address,
                         *args[1:], timeout=20)
        assert_clean_failure(result, max_seconds=10)
    assert tree_listing(ro) == []


# --- disk full -------------------------------------------------------------------------------

def verified_pieces(data: bytes, spec) -> set[int]:
    good = set()
    for index, expected in enumerate(spec.piece_hashes):
        start = index * spec.piece_length
        if hashlib.sha1(data[start:start + spec.piece_size(index)]).hexdigest() == expected:
            good.add(index)
    return good


def assert_only_verified_bytes(data: bytes, payload: bytes, why: str = "") -> None:
    """Every byte on disk is 0 (never written) or the right byte: nothing unverified."""
    assert len(data) <= len(payload), why
    if data == payload[:len(data)]:
        return
    bad = [i for i in range(len(data)) if data[i] and data[i] != payload[i]]
    assert not bad, f"{len(bad)} wrong bytes on disk, first at offset {bad[0]}\n{why}"


def test_disk_full_fails_cleanly_and_keeps_only_verified_data(served, tmp_path, tmpfs,
                                                              client_port):
    spec, payload = served.spec, served.payload
    small = tmpfs("small", "512k")
    out = small / "out.bin"
    result = run_cli("download", "-o", out, "--port", client_port, "--peer",
                     served.fast.address, spec.torrent_path, timeout=30)
    line = assert_clean_failure(result, max_seconds=20)
    assert "space" in line.lower(), f"the Error line does not say the disk is full: {line}"
    data = out.read_bytes() if out.exists() else b""
    assert_only_verified_bytes(data, payload, result.describe())

    # the same data in a roomy place: the rerun keeps what verified and fetches the rest
    big = tmp_path / "big"
    big.mkdir()
    (big / "out.bin").write_bytes(data)
    kept = verified_pieces(data, spec)
    rerun = run_cli("download", "-v", "-o", big / "out.bin", "--port", client_port, "--peer",
                    served.fast.address, spec.torrent_path, timeout=30)
    assert_success(rerun, max_seconds=20)
    assert_same_bytes(big / "out.bin", payload, rerun.describe())
    if kept:
        assert f"resuming: {len(kept)} of {spec.num_pieces}" in rerun.stderr, rerun.describe()


def test_disk_full_during_download_piece(served, tmpfs, client_port):
    spec = served.spec
    small = tmpfs("tiny", "64k")  # a piece is 128 KiB
    out = small / "piece"
    result = run_cli("download_piece", "-o", out, "--port", client_port, "--peer",
                     served.fast.address, spec.torrent_path, "0", timeout=30)
    line = assert_clean_failure(result, max_seconds=20)
    assert "space" in line.lower(), f"the Error line does not say the disk is full: {line}"
    if out.exists():  # at most what fitted of the right bytes
        data = out.read_bytes()
        assert data == served.payload[:len(data)], "wrong bytes in the piece file"


# --- SIGKILL at random moments, then resume --------------------------------------------------

def test_sigkill_at_random_moments_then_resume(tmp_path, client_port):
    """3 MiB from two rate-limited libtorrent seeders; the client is SIGKILLed 3 times at
    random moments, then run to the end: it resumes from the verified pieces on disk and
    the file is right."""
    seed = int(time.time())
    rng = random.Random(seed)
    spec = make_single_file(tmp_path / "torrent", "kill.bin", 3 * MIB + 4321,
                            piece_length=256 * KIB, seed=seed % 1000, announce=None)
    payload = spec.payload()
    seeders = [start_seeder(spec, tmp_path / f"seeder{i}", announce=False,
                            upload_rate=384 * KIB) for i in range(2)]
    out = tmp_path / "out" / "kill.bin"
    log = []
    try:
        argv = [str(LAUNCHER), "download", "-v", "-o", str(out), "--port", str(client_port),
                "--peer", seeders[0].address, "--peer", seeders[1].address,
                str(spec.torrent_path)]
        for round_number in range(3):
            delay = rng.uniform(0.3, 1.3)
            started = time.monotonic()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)
            if round_number == 2:
                # the last kill comes after some progress, so that resuming is really tested
                deadline = started + 10
                while (proc.poll() is None and time.monotonic() < deadline
                       and not (out.exists() and verified_pieces(out.read_bytes(), spec))):
                    time.sleep(0.05)
                delay = time.monotonic() - started + rng.uniform(0.0, 0.5)
            try:
                proc.wait(timeout=max(0.0, started + delay - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()  # SIGKILL to our own child, by PID
            proc.communicate(timeout=10)
            on_disk = verified_pieces(out.read_bytes(), spec) if out.exists() else set()
            log.append(f"round {round_number}: killed after {delay:.2f}s "
                       f"(exit {proc.returncode}); {len(on_disk)} pieces verified on disk")
            if out.exists():
                assert_only_verified_bytes(out.read_bytes(), payload, "\n".join(log))
        why = f"seed {seed}\n" + "\n".join(log)
        kept = verified_pieces(out.read_bytes(), spec) if out.exists() else set()
        assert kept, "no piece was verified on disk after 3 rounds\n" + why
        final = run_cli(*argv[1:], timeout=30)
        why += "\n" + final.describe()
        assert_success(final, max_seconds=25)
        assert_same_bytes(out, payload, why)
        match = re.search(r"resuming: (\d+) of (\d+)", final.stderr)
        assert match, "no 'resuming: N of M' line although pieces were on disk\n" + why
        assert (int(match[1]), int(match[2])) == (len(kept), spec.num_pieces), why
    finally:
        for seeder in seeders:
            seeder.stop()


# --- what is already at the output path --------------------------------------------------

def test_stale_larger_output_file_is_cut_to_size(served, tmp_path, client_port):
    """A leftover file, bigger than the torrent and full of other bytes, at -o: afterwards
    the file is exactly the torrent's content (size and SHA-1), as a grader checks."""
    out = tmp_path / "out.bin"
    out.write_bytes(random.Random(5).randbytes(2 * MIB))
    result = run_cli("download", "-o", out, "--port", client_port, "--peer",
                     served.fast.address, served.spec.torrent_path, timeout=30)
    assert_success(result, max_seconds=20)
    assert_same_bytes(out, served.payload, result.describe())


def test_directory_where_a_file_belongs(served_multi, tmp_path, client_port):
    out = tmp_path / "out"
    (out / "album" / "a.bin").mkdir(parents=True)  # a directory where a file must go
    result = run_cli("download", "-o", out, "--port", client_port, "--peer",
                     served_multi.fast.address, served_multi.spec.torrent_path, timeout=20)
    assert_clean_failure(result, max_seconds=10)
    assert (out / "album" / "a.bin").is_dir()
