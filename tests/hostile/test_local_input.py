"""Bad local input through the CLI: every failure is one clean `Error:` line, never a
traceback, and a non-zero exit."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from support.bencoding import bencode
from support.cli import CliResult, run_cli
from support.net import free_port

from hostile.helpers import assert_clean_failure, fake_info, tree_listing, write_torrent

VALID_INFO = fake_info()


def torrent_bytes(info=None, **top) -> bytes:
    meta = {"announce": "http://127.0.0.1:1/announce", "info": VALID_INFO if info is None else info}
    meta.update(top)
    return bencode(meta)


def info_with(**changes) -> dict:
    info = dict(VALID_INFO)
    for key, value in changes.items():
        key = key.replace("_", " ")
        if value is None:
            info.pop(key, None)
        else:
            info[key] = value
    return info


GOOD = torrent_bytes()
GOOD_INFO = bencode(VALID_INFO)

# name -> the raw bytes of a .torrent file that must be refused
BAD_TORRENTS = {
    "empty file": b"",
    "not bencode": b"<html>this is not a torrent</html>",
    "truncated": GOOD[: len(GOOD) // 2],
    "not a dict": b"l4:spame",
    "integer with leading zero": GOOD.replace(b"i40000e", b"i040000e"),
    "negative zero": GOOD.replace(b"i40000e", b"i-0e"),
    "i03e top level": b"i03e",
    "trailing data": GOOD + b"garbage",
    "string length beyond end": b"d8:announce999:http://e",
    "missing info": bencode({"announce": "http://127.0.0.1:1/announce"}),
    "info is a list": torrent_bytes(info=[1, 2]),
    "missing name": torrent_bytes(info_with(name=None)),
    "name is an integer": torrent_bytes(info_with(name=5)),
    "piece length is a string": torrent_bytes(info_with(piece_length="16384")),
    "pieces is an integer": torrent_bytes(info_with(pieces=7)),
    "length is a string": torrent_bytes(info_with(length="40000")),
    "files is a dict": torrent_bytes(info_with(length=None, files={"a": 1})),
    "file path is a string": torrent_bytes(info_with(length=None, files=[
        {"length": 40_000, "path": "a.bin"}])),
    "piece length 0": torrent_bytes(info_with(piece_length=0)),
    "piece length negative": torrent_bytes(info_with(piece_length=-16384)),
    "pieces not a multiple of 20": torrent_bytes(info_with(pieces=bytes(59))),
    "length negative": torrent_bytes(info_with(length=-1, pieces=b"")),
    "file length negative": torrent_bytes(info_with(length=None, files=[
        {"length": -5, "path": ["a.bin"]}, {"length": 40_005, "path": ["b.bin"]}])),
    "both length and files": torrent_bytes(info_with(files=[
        {"length": 40_000, "path": ["a.bin"]}])),
    "neither length nor files": torrent_bytes(info_with(length=None)),
    "info dict with trailing data": GOOD.replace(GOOD_INFO, GOOD_INFO[:-1] + b"i1ee"),
    "deeply nested": b"d4:info" + b"l" * 100_000 + b"e" * 100_000 + b"e",
}


# --- every case runs once, all in parallel (module fixture); each test checks its own ----

GARBAGE_VALUES = ["xyz", "", "i12", "i03e", "i-0e", "i+5e", "5:ab", "4:spamX", "le5",
                  "d3:fooe", "di1ei2ee", "l" * 5000]

BAD_ADDRESSES = ["127.0.0.1", ":6881", "127.0.0.1:port", "127.0.0.1:0", "127.0.0.1:65536",
                 "", "300.1.1.1:6881", "[::1:6881"]

BAD_MAGNETS = [
    "magnet:?dn=file.bin&tr=http%3A%2F%2F127.0.0.1%3A1%2Fannounce",
    "magnet:?xt=urn:sha1:0123456789abcdef0123456789abcdef01234567",
    "magnet:?xt=urn:btih:",
    "magnet:?xt=urn:btih:xyz",
    "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef0123456z",
    "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef012345678",
    "magnet:",
    "magnet:?",
    "http://127.0.0.1/file.torrent",
    "not a link at all",
]
# parses (magnet_parse may print it) but has no usable tracker and no peer
UNUSABLE_MAGNETS = [
    "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&tr=http://[::1",
    "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&tr=gopher%3A%2F%2Fx",
]


@dataclasses.dataclass
class Case:
    args: Callable[[Path], tuple]     # the CLI arguments, given the case's own directory
    setup: Callable[[Path], None] | None = None
    max_seconds: float = 8.0
    nothing_written: bool = True      # the case directory's out/ stays empty


def _torrent(d: Path, raw: bytes) -> Path:
    return write_torrent(d / "t.torrent", raw)


CASES: dict[str, Case] = {}
for _name, _raw in BAD_TORRENTS.items():
    CASES[f"info/{_name}"] = Case(lambda d, raw=_raw: ("info", _torrent(d, raw)))
for _name in ("truncated", "missing info", "both length and files"):
    CASES[f"download/{_name}"] = Case(lambda d, raw=BAD_TORRENTS[_name]: (
        "download", "-o", d / "out" / "file.bin", "--peer", "127.0.0.1:1", _torrent(d, raw)))
CASES["info/missing file"] = Case(lambda d: ("info", d / "does-not-exist.torrent"))
CASES["download/missing file"] = Case(lambda d: (
    "download", "-o", d / "out" / "o.bin", "--peer", "127.0.0.1:1", d / "nope.torrent"))
CASES["info/path is a directory"] = Case(lambda d: ("info", d))
for _value in GARBAGE_VALUES:
    CASES[f"decode/{_value[:20]!r}"] = Case(lambda d, v=_value: ("decode", v))
CASES["decode/no argument"] = Case(lambda d: ("decode",))
CASES["cli/unknown command"] = Case(lambda d: ("no_such_command",))
CASES["cli/unknown option"] = Case(lambda d: ("info", "--no-such-option", "x.torrent"))
# 40 000 bytes in 16 KiB pieces: indices 0..2 exist
for _index in ("3", "99999999999999999999"):
    CASES[f"download_piece/index {_index}"] = Case(lambda d, i=_index: (
        "download_piece", "-o", d / "out" / "piece", "--peer", "127.0.0.1:1",
        _torrent(d, GOOD), i), max_seconds=5)
CASES["download_piece/index -1"] = Case(lambda d: (
    "download_piece", "-o", d / "out" / "piece", "--peer", "127.0.0.1:1", "--",
    _torrent(d, GOOD), "-1"), max_seconds=5)
for _address in BAD_ADDRESSES:
    CASES[f"handshake/{_address!r}"] = Case(lambda d, a=_address: (
        "handshake", _torrent(d, GOOD), a))
for _address in ("127.0.0.1:0", "nonsense"):
    CASES[f"download --peer/{_address!r}"] = Case(lambda d, a=_address: (
        "download", "-o", d / "out" / "o.bin", "--peer", a, _torrent(d, GOOD)))
CASES["handshake/closed port"] = Case(lambda d: (
    "handshake", _torrent(d, GOOD), f"127.0.0.1:{free_port()}"))
for _link in BAD_MAGNETS:
    CASES[f"magnet_parse/{_link}"] = Case(lambda d, link=_link: ("magnet_parse", link))
for _command in ("magnet_handshake", "magnet_info"):
    for _link in BAD_MAGNETS[:3]:
        CASES[f"{_command}/{_link}"] = Case(lambda d, c=_command, link=_link: (c, link))
for _command in ("magnet_handshake", "magnet_info"):
    for _link in UNUSABLE_MAGNETS:
        CASES[f"{_command}/{_link}"] = Case(lambda d, c=_command, link=_link: (c, link))
CASES["magnet_download/no xt"] = Case(lambda d: (
    "magnet_download", "-o", d / "out" / "o.bin", "--peer", "127.0.0.1:1",
    "magnet:?dn=file.bin"))


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, tuple[CliResult, Path]]:
    """Run every case once, 8 at a time (each CLI run is a separate process)."""
    base = tmp_path_factory.mktemp("local-input")
    jobs = {}
    for number, (name, case) in enumerate(CASES.items()):
        d = base / f"case{number:03d}"
        (d / "out").mkdir(parents=True)
        if case.setup:
            case.setup(d)
        jobs[name] = (case.args(d), d)
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = {name: pool.submit(run_cli, *args, timeout=20) for name, (args, _) in jobs.items()}
        return {name: (future.result(), jobs[name][1]) for name, future in futures.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_refused_cleanly(outcomes, name):
    result, d = outcomes[name]
    case = CASES[name]
    assert_clean_failure(result, max_seconds=case.max_seconds)
    if case.nothing_written:
        assert tree_listing(d / "out") == [], "nothing may be written for refused input"
