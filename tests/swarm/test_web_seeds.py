"""Web seeds (BEP 19 url-list) against Debian's nginx on 127.0.0.1: a torrent with only
mirrors downloads (single-file URL, single-file directory URL, multi-file root URL); a
mirror and a slow libtorrent seeder are both used; mirrors answering 404 or wrong bytes
are dropped and the peers finish the job; `create --web-seed` writes url-list."""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import pytest

from support.bencoding import bdecode, bencode
from support.checks import assert_ok
from support.cli import run_cli
from support.nginx import Nginx
from support.peers import start_seeder
from support.torrents import make_lt_spec, make_single_file

from swarm.kit import KIB, MIB, assert_tree, run_cli_tty, summary


@pytest.fixture
def nginx_factory(tmp_path):
    started: list[Nginx] = []

    def start(root: Path, limit_rate: str | None = None) -> Nginx:
        server = Nginx(root, tmp_path / f"nginx{len(started)}", limit_rate).start()
        started.append(server)
        return server
    yield start
    for server in started:
        server.stop()


def with_mirrors(spec, urls, dest: Path, *, keep_trackers: bool) -> Path:
    """A copy of spec's .torrent with url-list = urls (the info dict, so the hash, unchanged)."""
    meta = bdecode(spec.torrent_path.read_bytes())
    if not keep_trackers:
        meta.pop(b"announce", None)
        meta.pop(b"announce-list", None)
    meta[b"url-list"] = [u.encode() for u in urls]
    dest.write_bytes(bencode(meta))
    return dest


def ranges(server: Nginx) -> list[tuple[str, int, int]]:
    """(path, first, last) of every 206 answer."""
    found = []
    for line in server.requests():
        match = re.fullmatch(r'(\S+) 206 "bytes=(\d+)-(\d+)"', line)
        if match:
            found.append((match[1], int(match[2]), int(match[3])))
    return found


@pytest.mark.parametrize("shape", ["file URL", "directory URL"])
def test_single_file_from_a_mirror_alone(swarms, nginx_factory, tmp_path, client_port, shape):
    spec = swarms.single("solo.bin", 3 * MIB + 5, piece_length=256 * KIB, seed=81, seeders=0).spec
    server = nginx_factory(spec.data_root)
    url = f"{server.url}/solo.bin" if shape == "file URL" else f"{server.url}/"
    torrent = with_mirrors(spec, [url], tmp_path / "solo.torrent", keep_trackers=False)
    out = tmp_path / "solo.bin"
    result = run_cli("download", "-o", out, "--port", client_port, torrent, timeout=40)
    assert_ok(result, within=30)
    assert out.read_bytes() == spec.payload(), result.describe()
    seen = ranges(server)
    assert seen and all(path == "/solo.bin" for path, _, _ in seen), server.requests()
    # one range per piece, whole (16 blocks here), whatever order the pieces came in:
    # the 5-byte last piece once made every later range two (15 blocks + 1)
    assert sorted((first, last + 1) for _, first, last in seen) == [
        (i * spec.piece_length, min((i + 1) * spec.piece_length, spec.total_length))
        for i in range(spec.num_pieces)], seen


def test_multi_file_from_a_mirror_alone(swarms, nginx_factory, tmp_path, client_port):
    sizes = {"a.bin": 300_001, "sub/b.bin": 70_000, "c.txt": 1_234, "z/y/x.bin": 500_000}
    spec = swarms.multi("tree", sizes, piece_length=64 * KIB, seed=82, seeders=0).spec
    server = nginx_factory(spec.data_root)            # serves tree/...: the URL is the root
    torrent = with_mirrors(spec, [server.url], tmp_path / "tree.torrent", keep_trackers=False)
    out = tmp_path / "out"
    result = run_cli("download", "-o", out, "--port", client_port, torrent, timeout=40)
    assert_ok(result, within=30)
    assert_tree(out, spec, result.describe())
    assert {path for path, _, _ in ranges(server)} == {"/tree/a.bin", "/tree/sub/b.bin", "/tree/c.txt",
                                                       "/tree/z/y/x.bin"}


def test_a_mirror_and_a_slow_seeder_are_both_used(swarms, nginx_factory, tmp_path, client_port):
    swarm = swarms.single("both.bin", 6 * MIB, piece_length=256 * KIB, seed=83, seeders=1,
                          upload_rate=512 * KIB)
    spec = swarm.spec
    server = nginx_factory(spec.data_root, limit_rate="512k")   # about as slow as the seeder
    torrent = with_mirrors(spec, [f"{server.url}/"], tmp_path / "both.torrent", keep_trackers=True)
    out = tmp_path / "both.bin"
    result = run_cli_tty("download", "-o", out, "--port", client_port, torrent, timeout=40)
    assert_ok(result)
    assert out.read_bytes() == spec.payload(), result.describe()
    assert summary(result)["peers"] == 2, "the mirror and the libtorrent seeder\n" + result.describe()
    assert ranges(server), server.requests()


def test_mirrors_that_fail_are_dropped_and_peers_finish(swarms, nginx_factory, tmp_path, client_port):
    swarm = swarms.single("bad.bin", 4 * MIB, piece_length=256 * KIB, seed=84, seeders=1,
                          upload_rate=1 * MIB)
    spec = swarm.spec
    lies = tmp_path / "lies"
    lies.mkdir()
    (lies / "bad.bin").write_bytes(bytes(spec.total_length))   # right size, wrong bytes
    liar = nginx_factory(lies)
    empty = nginx_factory(tmp_path / "lies")
    torrent = with_mirrors(spec, [f"{liar.url}/bad.bin", f"{empty.url}/missing/"], tmp_path / "bad.torrent",
                           keep_trackers=True)
    out = tmp_path / "bad.bin"
    result = run_cli("download", "-v", "-o", out, "--port", client_port, torrent, timeout=40)
    assert_ok(result, within=30)
    assert out.read_bytes() == spec.payload(), result.describe()
    assert re.search(r"web seed http://\S+/missing/ dropped: HTTP 404", result.stderr), result.describe()
    assert re.search(r"web seed http://\S+/bad\.bin dropped: piece \d+ failed its hash check",
                     result.stderr), result.describe()


def test_create_writes_url_list(tmp_path):
    data = tmp_path / "share.bin"
    data.write_bytes(b"x" * 100_000)
    torrent = tmp_path / "share.torrent"
    result = run_cli("create", "-o", torrent, "--web-seed", "http://127.0.0.1:1/a/",
                     "--web-seed", "https://127.0.0.1:2/b.bin", data)
    assert_ok(result)
    meta = bdecode(torrent.read_bytes())
    assert meta[b"url-list"] == [b"http://127.0.0.1:1/a/", b"https://127.0.0.1:2/b.bin"]
    bad = run_cli("create", "-o", tmp_path / "x.torrent", "--web-seed", "ftp://127.0.0.1/x", data)
    assert bad.returncode == 2 and "web-seed" in bad.stderr, bad.describe()


def test_magnet_ws_mirror_serves_the_data(nginx_factory, tmp_path, client_port):
    """A magnet's ws= names a mirror: the only peer gives the metadata but holds no piece
    (a libtorrent peer in upload mode with nothing), so every byte comes from the mirror."""
    spec = make_single_file(tmp_path / "torrent", "ws.bin", 1 * MIB + 77, piece_length=64 * KIB, seed=83,
                            announce=None)
    server = nginx_factory(spec.data_root)
    empty = start_seeder(spec, tmp_path / "empty", have=[], announce=False)
    try:
        link = spec.magnet(tracker="") + "&ws=" + quote(f"{server.url}/ws.bin", safe="")
        out = tmp_path / "ws.bin"
        result = run_cli("magnet_download", "-o", out, "--port", client_port, "--peer", empty.address, link,
                         timeout=40)
        assert_ok(result)
    finally:
        empty.stop()
    assert out.read_bytes() == spec.payload(), result.describe()
    assert sum(last - first + 1 for _, first, last in ranges(server)) >= spec.total_length


@pytest.mark.parametrize("version", ["v2", "hybrid"])
def test_v2_multi_file_from_a_mirror_alone(nginx_factory, tmp_path, client_port, version):
    """Files aligned to pieces (BEP 52): the padding after each file is on no mirror; it
    is zeros, and a range across it is asked of the files around it only."""
    sizes = {"a.bin": 300_001, "sub/b.bin": 70_000, "c.txt": 1_234}
    spec = make_lt_spec(tmp_path / "torrent", "tree", sizes, piece_length=64 * KIB, version=version, seed=84)
    server = nginx_factory(spec.data_root)
    torrent = with_mirrors(spec, [server.url], tmp_path / "tree.torrent", keep_trackers=False)
    out = tmp_path / "out"
    result = run_cli("download", "-o", out, "--port", client_port, torrent, timeout=40)
    assert_ok(result, within=30)
    assert_tree(out, spec, result.describe())
    served = {path: sum(last - first + 1 for p, first, last in ranges(server) if p == path)
              for path in ("/tree/a.bin", "/tree/sub/b.bin", "/tree/c.txt")}
    assert served == {"/tree/a.bin": 300_001, "/tree/sub/b.bin": 70_000, "/tree/c.txt": 1_234}, served
