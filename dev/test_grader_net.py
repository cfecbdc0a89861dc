"""The download stages (nd2, jv8, qv6, dv7) as the grader runs them, inside
shared/grader-net: the grader's tracker host name, rain-like seeders, the real files,
and the per-run and per-stage time limits of GRADER.md.

Not part of the suite: it needs ../shared/grader-net beside the checkout (a
developer's tool, not a dependency). Run it with
    ./tests/run.sh dev/test_grader_net.py
"""
import hashlib

import pytest

from support.checks import assert_ok
from support.grader_net import DATA, magnet_links, run_in_grader_net

PIECE_PAIRS = {  # GRADER.md nd2: torrent -> two (index, size, sha1)
    "congratulations.gif": [(2, 262144, "76869e6c9c1f101f94f39de153e468be6a638f4f"),
                            (3, 34460, "bded68d02de011a2b687f75b5833f46cce8e3e9c")],
    "itsworking.gif": [(9, 190404, "7affc94f0985b985eb888a36ec92652821a21be4"),
                       (1, 262144, "838f703cf7f6f08d1c497ed390df78f90d5f7566")],
    "codercat.gif": [(0, 262144, "3c34309faebf01e49c0f63c90b7edcc2259b6ad0"),
                     (11, 110536, "3d8db9e34db63b4ba1be27930911aa37b3f997dd")],
}
FILES = {  # jv8
    "codercat.gif": (2994120, "89d5dcbb92d31f040f8fe42b559fd6ec7f4d83a5"),
    "congratulations.gif": (820892, "fe3cc9002bc84c4776c3a962a717244c9cb962c0"),
    "itsworking.gif": (2549700, "683e899db9d7a38e50eb87874b62f7fdd0c14c9c"),
}
MAGNET_PIECE_PAIRS = {  # qv6
    "magnet1.gif": [(1, 262144, "eda417cb5c1cdbf841125c412da0bec9db8301f3"),
                    (2, 112217, "422f45b1052e2d45da3e2a6516e1bb1f1db00733")],
    "magnet3.gif": [(0, 262144, "ca80fd83ffb34d6e1bbd26a8ef6d305827f1cd0a"),
                    (2, 105656, "47076d104d214c0052960ef767262649a8af0ea8")],
    "magnet2.gif": [(0, 79752, "d78a7f55ddd89fef477bc49d938bc7e4d94094f1")],
}
MAGNET_FILES = {  # dv7
    "magnet1.gif": (636505, "dd0f88e853321f08cd1d45423152d09014082437"),
    "magnet2.gif": (79752, "d78a7f55ddd89fef477bc49d938bc7e4d94094f1"),
    "magnet3.gif": (629944, "b1807e3d7920a559df2a2f0f555a404dec66a63e"),
}
LATENCY_MS = 20  # the real seeders are not on loopback: some delay on every write


def check_file(path, size, sha1):
    data = path.read_bytes()
    assert len(data) == size, f"{path.name}: {len(data)} bytes, want {size}"
    assert hashlib.sha1(data).hexdigest() == sha1, f"{path.name}: wrong SHA-1"


def check_pieces_in_one_stage(stage, command, source, pairs, tmp_path):
    """Download each (index, size, sha1) of `pairs` with one run of `command` each, 10 s a
    run and 10 s for them all (one grader stage)."""
    steps = [([command, "-o", tmp_path / f"piece-{i}", source, i], 10) for i, _, _ in pairs]
    results = run_in_grader_net(steps, tmp_path / "net", latency_ms=LATENCY_MS)
    for result, (index, size, sha1) in zip(results, pairs):
        assert_ok(result, within=10)
        check_file(tmp_path / f"piece-{index}", size, sha1)
    assert sum(r.elapsed for r in results) < 10, f"{stage} has 10 s for the whole stage"


def check_whole_file(command, source, out, expected, within, tmp_path):
    """One run of `command` writes `out`, of the expected (size, sha1), within `within` s."""
    [result] = run_in_grader_net([([command, "-o", out, source], within)], tmp_path / "net",
                                 latency_ms=LATENCY_MS)
    assert_ok(result, within=within)
    check_file(out, *expected)


@pytest.mark.parametrize("name", sorted(PIECE_PAIRS))
def test_nd2_two_pieces_in_one_stage(name, tmp_path):
    check_pieces_in_one_stage("nd2", "download_piece", DATA / "base" / f"{name}.torrent",
                              PIECE_PAIRS[name], tmp_path)


@pytest.mark.parametrize("name", sorted(FILES))
def test_jv8_whole_file(name, tmp_path):
    check_whole_file("download", DATA / "base" / f"{name}.torrent", tmp_path / name,
                     FILES[name], 20, tmp_path)


@pytest.mark.parametrize("name", sorted(MAGNET_PIECE_PAIRS))
def test_qv6_magnet_pieces_in_one_stage(name, tmp_path):
    check_pieces_in_one_stage("qv6", "magnet_download_piece", magnet_links()[name],
                              MAGNET_PIECE_PAIRS[name], tmp_path)


@pytest.mark.parametrize("name", sorted(MAGNET_FILES))
def test_dv7_magnet_whole_file(name, tmp_path):
    check_whole_file("magnet_download", magnet_links()[name], tmp_path / name,
                     MAGNET_FILES[name], 10, tmp_path)
