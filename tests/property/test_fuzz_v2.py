"""Hostile v2 and hybrid metainfo (BEP 52) and v2 magnet links: the parsers return a value
or raise the project's own error (MetainfoError, MagnetError), nothing else. What they do
accept keeps the model's promises: files in order, every non-empty v2 file on a piece
boundary, a hybrid's piece hashes covering its stream, piece layers that hash to their roots.

Inputs are random file trees and info dicts built around the keys that matter (`file tree`,
`meta version`, `pieces root`, pad files, ...) and valid libtorrent-shaped torrents with
random byte edits. Derandomized unless HYPOTHESIS_EXPLORE=1.
"""

from __future__ import annotations

import hashlib
import random

from hypothesis import given
from hypothesis import strategies as st

from app.core.errors import MagnetError, MetainfoError
from app.core.magnet import parse_magnet
from app.core.merkle import file_root, piece_layer_of, root_from_piece_layer
from app.core.metainfo import Info, parse_info, parse_torrent
from support.bencoding import bdecode, bencode, bencode_as_given
from support.properties import given_tests, property_settings

EXAMPLES = 300          # examples per property in this module
PROPERTIES = 5          # @given tests below (kept in step by test_property_count)
SETTINGS = property_settings(EXAMPLES)
PL = 16384

SAFE_KEYS = st.sampled_from([b"a", b"b", b"c.bin", b"d", b"\xe9", b"\xc3\xa9"])
KEYS = SAFE_KEYS | st.sampled_from([b"..", b".", b"x/y", b"C:", b""])
ROOTS = st.sampled_from([b"\x02" * 31, b"", 5]) | st.binary(min_size=32, max_size=32)
GOOD_LEAF = st.sampled_from([{b"length": 0}, {b"length": 100, b"pieces root": b"\x01" * 32},
                             {b"length": 3 * PL + 1, b"pieces root": b"\x03" * 32}])
LEAF = GOOD_LEAF | st.fixed_dictionaries(
    {}, optional={b"length": st.sampled_from([0, 1, 100, PL, PL + 1, 3 * PL, -1, b"7"]),
                  b"pieces root": ROOTS, b"attr": st.sampled_from([b"p", b"x", b"", 3])})
NODES = st.recursive(
    st.fixed_dictionaries({b"": LEAF}) | st.integers() | st.binary(max_size=4),
    lambda inner: st.dictionaries(SAFE_KEYS, inner, min_size=1, max_size=4)
    | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12)
TREES = st.dictionaries(SAFE_KEYS, NODES, min_size=1, max_size=3) | NODES


def check_promises(info: Info) -> None:
    """What any accepted Info guarantees to the rest of the client."""
    offsets = [f.offset for f in info.files]
    assert offsets == sorted(offsets)
    assert info.files, "an accepted torrent has files"
    assert info.stream_length >= max(f.offset + f.length for f in info.files)
    if info.piece_hashes:
        assert len(info.piece_hashes) == info.piece_count
    if info.meta_version == 2:
        assert info.info_hash_v2 == hashlib.sha256(info.raw).digest()
        assert info.piece_length >= PL and info.piece_length & (info.piece_length - 1) == 0
        for f in info.files:
            assert (f.pieces_root is None) == (f.length == 0)
            if f.length:
                assert f.offset % info.piece_length == 0
        for root, layer in info.piece_layers.items():
            assert root_from_piece_layer(layer, info.piece_length) == root


def parse_or_refuse(raw_info: bytes) -> None:
    try:
        info = parse_info(raw_info)
    except MetainfoError:
        return
    check_promises(info)


@st.composite
def info_dicts(draw) -> dict:
    info = {b"file tree": draw(TREES), b"name": draw(st.sampled_from([b"t"] * 6 + [b"..", b"a.bin", 3]))}
    info[b"meta version"] = draw(st.sampled_from([2] * 8 + [1, 3, b"2", -1]))
    info[b"piece length"] = draw(st.sampled_from([PL] * 6 + [2 * PL, 3 * PL, 8192, 0]))
    if draw(st.integers(0, 3)) == 0:
        info[b"pieces"] = draw(st.sampled_from([b"", b"\x00" * 20, b"\x00" * 40, b"\x00" * 19]))
    choice = draw(st.sampled_from(["none"] * 4 + ["length", "files"]))
    if choice == "length":
        info[b"length"] = draw(st.sampled_from([0, 100, PL + 1]))
    elif choice == "files":
        info[b"files"] = draw(st.lists(st.fixed_dictionaries(
            {b"length": st.sampled_from([0, 1, 100, PL - 100, PL]),
             b"path": st.lists(KEYS, min_size=0, max_size=2)},
            optional={b"attr": st.sampled_from([b"p", b"x"])}), max_size=4))
    return info


@SETTINGS
@given(info_dicts())
def test_random_v2_info_dicts(info):
    parse_or_refuse(bencode(info))


@SETTINGS
@given(info_dicts(), st.randoms(use_true_random=False))
def test_random_v2_info_dicts_in_any_key_order(info, rng):
    """Keys out of order (the tree's order is the stream's, so unsorted trees are refused)."""
    def shuffle(value):
        if isinstance(value, dict):
            items = [(k, shuffle(v)) for k, v in value.items()]
            rng.shuffle(items)
            return dict(items)
        return [shuffle(v) for v in value] if isinstance(value, list) else value
    parse_or_refuse(bencode_as_given(shuffle(info)))


def valid_torrent(seed: int, hybrid: bool) -> bytes:
    """A small valid v2 or hybrid .torrent: three files, one spanning several pieces."""
    rng = random.Random(seed)
    sizes = {b"a.bin": rng.randrange(PL + 1, 4 * PL), b"e": 0, b"z.txt": rng.randrange(1, PL)}
    data = {name: rng.randbytes(size) for name, size in sizes.items()}
    tree = {b"d": {name: {b"": {b"length": len(d), **({b"pieces root": file_root(d, PL)} if d else {})}}
                   for name, d in data.items()}}
    info = {b"file tree": tree, b"meta version": 2, b"name": b"t", b"piece length": PL}
    if hybrid:
        stream, files = b"", []
        for name, d in data.items():
            files.append({b"length": len(d), b"path": [b"d", name]})
            stream += d
            pad = -len(stream) % PL
            if pad and d:
                files.append({b"attr": b"p", b"length": pad, b"path": [b".pad", str(pad).encode()]})
                stream += bytes(pad)
        info[b"files"] = files
        info[b"pieces"] = b"".join(hashlib.sha1(stream[i:i + PL]).digest() for i in range(0, len(stream), PL))
    layers = {file_root(data[b"a.bin"], PL): b"".join(piece_layer_of(data[b"a.bin"], PL))}
    return bencode({b"info": info, b"piece layers": layers})


HOSTILE = st.sampled_from([0, -1, 1, PL, 3 * PL + 1, b"", b"p", b"\x00" * 32, b"\x00" * 20, {}, [],
                           {b"": {b"length": 0}}, {b"length": 5}, [b"a"], b".."]) | st.binary(max_size=40)


def nodes(value, path=()):
    """Every (container, key) in a decoded torrent, to pick one to change."""
    found = []
    if isinstance(value, dict):
        for key, child in value.items():
            found.append((value, key))
            found += nodes(child)
    elif isinstance(value, list):
        for i, child in enumerate(value):
            found.append((value, i))
            found += nodes(child)
    return found


@st.composite
def mutated_torrents(draw) -> bytes:
    """A valid torrent with 1..3 values replaced, deleted or added (still bencode), or with
    byte edits (usually no longer bencode)."""
    base = valid_torrent(draw(st.integers(0, 3)), draw(st.booleans()))
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    if draw(st.integers(0, 3)):
        top = bdecode(base)
        for _ in range(draw(st.integers(1, 3))):
            container, key = rng.choice(nodes(top))
            op = draw(st.sampled_from(["replace", "delete", "add", "nudge"]))
            if op == "delete":
                del container[key]
            elif op == "add" and isinstance(container, dict):
                container[draw(st.sampled_from([b"attr", b"", b"length", b"pieces root", b"zz", b"a"]))] = draw(HOSTILE)
            elif op == "nudge" and isinstance(container[key], int):
                container[key] += draw(st.sampled_from([-1, 1, PL, -PL]))
            else:
                container[key] = draw(HOSTILE)
        return bencode(top)
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        pos = rng.randrange(len(data))
        op = draw(st.sampled_from(["flip", "insert", "delete", "digit"]))
        if op == "flip":
            data[pos] ^= 1 << rng.randrange(8)
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from([b"d", b"e", b"0:", b"1:p", b"4:attr1:p", b"i0e", b"de"]))
        elif op == "delete":
            del data[pos:pos + rng.randrange(1, 8)]
        else:
            digits = [i for i, b in enumerate(data) if 48 <= b <= 57]
            data[rng.choice(digits)] = rng.randrange(48, 58)
    return bytes(data)


def test_the_unmutated_torrents_are_valid():
    """The base of the mutations parses, so mutations test the checks and not a broken base."""
    for seed in range(4):
        for hybrid in (False, True):
            info = parse_torrent(valid_torrent(seed, hybrid)).info
            assert info.version == ("hybrid" if hybrid else "v2") and len(info.piece_layers) == 1
            check_promises(info)


@SETTINGS
@given(mutated_torrents())
def test_mutated_v2_and_hybrid_torrents(data):
    try:
        torrent = parse_torrent(data)
    except MetainfoError:
        return
    check_promises(torrent.info)
    for f in torrent.info.files:
        if f.length > torrent.info.piece_length:
            assert f.pieces_root in torrent.info.piece_layers


@SETTINGS
@given(st.dictionaries(st.binary(min_size=0, max_size=33), st.binary(max_size=200) | st.integers(), max_size=3)
       | st.integers() | st.lists(st.binary(max_size=4), max_size=2), st.integers(0, 3))
def test_random_piece_layers(layers, seed):
    data = valid_torrent(seed, False)
    head, _, _ = data.rpartition(b"12:piece layers")
    try:
        torrent = parse_torrent(head + b"12:piece layers" + bencode(layers) + b"e")
    except MetainfoError:
        return
    check_promises(torrent.info)


@SETTINGS
@given(st.lists(st.sampled_from(["xt=urn:btmh:", "xt=urn:btih:", "1220", "1114", "dn=x", "&", "=", "%",
                                 "0", "a", "f", "F", "g", "A" * 32, "ab" * 20, "cd" * 32, "\u00e9"]),
                max_size=12))
def test_hostile_v2_magnet_links(parts):
    try:
        link = parse_magnet("magnet:?" + "".join(parts))
    except MagnetError:
        return
    assert len(link.info_hash) == 20
    assert link.info_hash_v2 is None or len(link.info_hash_v2) == 32


def test_property_count():
    """PROPERTIES (used to report the example total) matches the @given tests here."""
    assert len(given_tests(globals())) == PROPERTIES
