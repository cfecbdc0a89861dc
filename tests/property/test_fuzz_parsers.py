"""Every parser of the pure core, fed random and MUTATED inputs, must either return a
value or raise the project's own error type (the right TorrentError subclass) --
never IndexError, KeyError, struct.error, UnicodeDecodeError, RecursionError, ...

Valid inputs are built with the tests' own bencoder (`benc`, tests/support), then
mutated: bits flipped, bytes set, bencode-ish tokens inserted, ranges deleted or
duplicated, tails cut off. Each property runs EXAMPLES examples (derandomized, so
a CI run is reproducible; set HYPOTHESIS_EXPLORE=1 to draw fresh random examples).
"""

from __future__ import annotations

import copy
import random
import struct

from hypothesis import given
from hypothesis import strategies as st

from app.core import bencode, tracker
from app.core import extension as ext
from app.core import messages as msg
from app.core import peer_wire as pw
from app.core import udp_tracker as udp
from app.core.errors import BencodeError, MagnetError, MetainfoError, ProtocolError, TorrentError, TrackerError
from app.core.magnet import MagnetLink, parse_magnet
from app.core.metainfo import Info, Torrent, parse_info, parse_torrent
from support.bencoding import bencode_as_given as benc
from support.properties import bencode_values, given_tests, property_settings

EXAMPLES = 300          # examples per property in this module
PROPERTIES = 16         # @given tests below (kept in step by test_property_count)
SETTINGS = property_settings(EXAMPLES)


# --- input builders ----------------------------------------------------------------------------

values = bencode_values(int_bound=10**20, max_bytes=24, max_items=5, max_key=8, max_leaves=20)

TOKENS = [b"i", b"e", b"l", b"d", b":", b"-", b"0", b"1", b"9", b"20:", b"i-0e", b"\x00", b"\xff",
          b"4:info", b"5:peers", b"d1:md11:ut_metadata", b"8:msg_type", b"5:piece"]


def position(draw, length: int) -> int:
    """A position in 0..length-1, spread evenly: Hypothesis favours small integers, which
    would put most edits at the head, so a drawn seed picks the position."""
    return random.Random(draw(st.integers(0, 2**32 - 1))).randrange(length) if length else 0


@st.composite
def mutated(draw, base):
    """`base` with 1..4 random edits."""
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "dup", "cut"]))
        if not data:
            op = "insert"
        pos = position(draw, len(data))
        if op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from(TOKENS) | st.binary(min_size=1, max_size=4))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 8))]
        elif op == "dup":
            data[pos:pos] = data[pos:pos + draw(st.integers(1, 16))]
        else:
            del data[pos:]
    return bytes(data)


def fuzz(valid):
    """Random bytes, valid inputs, and mutations of valid inputs."""
    return st.binary(max_size=64) | valid | mutated(valid)


def sorted_dict(d: dict) -> dict:
    return dict(sorted(d.items()))


safe_names = st.text(st.characters(codec="utf-8", exclude_characters="/\\\x00:"),
                     min_size=1, max_size=8).filter(lambda s: s not in (".", ".."))


@st.composite
def info_dicts(draw) -> dict:
    piece_length = draw(st.integers(1, 64))
    if draw(st.booleans()):
        lengths = [draw(st.integers(0, 300))]
        info = {b"length": lengths[0]}
    else:
        paths = draw(st.lists(st.lists(safe_names, min_size=1, max_size=3).map(tuple),
                              min_size=1, max_size=4, unique=True))
        lengths = [draw(st.integers(0, 100)) for _ in paths]
        info = {b"files": [{b"length": n, b"path": [p.encode() for p in path]}
                           for n, path in zip(lengths, paths)]}
    count = -(-sum(lengths) // piece_length)
    info.update({b"name": draw(safe_names).encode(), b"piece length": piece_length,
                 b"pieces": draw(st.binary(min_size=20 * count, max_size=20 * count))})
    if draw(st.booleans()):
        info[b"private"] = draw(st.integers(0, 1))
    keys = draw(st.permutations(list(info)))          # often NOT sorted
    return {k: info[k] for k in keys}


raw_infos = info_dicts().map(benc)

# Copied on every draw: the lists and dicts here are edited in place by later draws
# (a path list gets junk inserted), and a shared one once had a list inserted into
# itself, so encoding the next example recursed without end.
FIELD_JUNK = st.sampled_from([b"", b".", b"..", b"a/b", b"C:", b"x\x00", -1, 0, 2**40, [], {},
                              [b".."], [[b"a"]], {b"length": 1}, b"\xff\xfe"]).map(copy.deepcopy) | values


@st.composite
def mutated_info_dicts(draw) -> dict:
    """A valid info dict with a field-level change: a key dropped, added, or set to junk,
    reaching into the file list too."""
    info = draw(info_dicts())
    for _ in range(draw(st.integers(1, 3))):
        target = info
        files = info.get(b"files")
        if isinstance(files, list) and files and draw(st.booleans()):
            target = files[position(draw, len(files))]
            if not isinstance(target, dict):
                continue
            if isinstance(target.get(b"path"), list) and draw(st.booleans()):
                target[b"path"].insert(position(draw, len(target[b"path"]) + 1), draw(FIELD_JUNK))
                continue
        key = draw(st.sampled_from(sorted(target) + [b"length", b"files", b"path", b"path.utf-8"]))
        if draw(st.integers(0, 3)) == 0:
            target.pop(key, None)
        else:
            target[key] = draw(FIELD_JUNK)
    return info


@st.composite
def torrents(draw) -> bytes:
    top = {b"info": draw(info_dicts() | mutated_info_dicts())}
    if draw(st.booleans()):
        top[b"announce"] = b"http://127.0.0.1:6969/announce"
    if draw(st.booleans()):
        top[b"announce-list"] = [[b"udp://127.0.0.1:%d" % draw(st.integers(1, 65535))]
                                 for _ in range(draw(st.integers(0, 3)))]
    return benc(top)


@st.composite
def tracker_replies(draw) -> bytes:
    reply: dict = {}
    kind = draw(st.sampled_from(["compact", "dicts", "none", "failure"]))
    if kind == "compact":
        reply[b"peers"] = draw(st.binary(max_size=8).map(lambda b: b * 6))
    elif kind == "dicts":
        reply[b"peers"] = [{b"ip": draw(st.sampled_from([b"127.0.0.1", b"::1", b"x", b"1.2.3"])),
                            b"port": draw(st.integers(-1, 70000))}
                           for _ in range(draw(st.integers(0, 3)))]
    elif kind == "failure":
        reply[b"failure reason"] = draw(st.binary(max_size=10))
    if draw(st.booleans()):
        reply[b"peers6"] = draw(st.binary(max_size=2).map(lambda b: b * 18))
    for key in (b"interval", b"min interval", b"complete", b"incomplete"):
        if draw(st.booleans()):
            reply[key] = draw(st.integers(-5, 5000))
    for key in (b"tracker id", b"warning message"):
        if draw(st.booleans()):
            reply[key] = draw(st.binary(max_size=6))
    return benc(sorted_dict(reply))


HEX_HASH = "0123456789abcdef0123456789abcdef01234567"


@st.composite
def magnet_links(draw) -> str:
    from urllib.parse import quote
    params = ["xt=urn:btih:" + draw(st.sampled_from([HEX_HASH, HEX_HASH.upper(), "A" * 32, "7" * 32]))]
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(["tr", "dn", "x.pe", "xl", "ws"]))
        params.append(key + "=" + quote(draw(st.text(max_size=12)), safe=draw(st.sampled_from(["", ":/"]))))
    order = draw(st.permutations(params))
    return "magnet:?" + "&".join(order)


MAGNET_CHARS = st.sampled_from(list("%:&=?/#+ []@.") + ["%3A", "%2F", "%ZZ", "%", "\uff03", "\u00e9"])


@st.composite
def mutated_text(draw, base):
    text = draw(base)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        pos = position(draw, len(text) + 1)
        piece = draw(MAGNET_CHARS | st.text(min_size=1, max_size=3))
        if op == "insert":
            text = text[:pos] + piece + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 6)):]
        else:
            text = text[:pos] + piece + text[pos + len(piece):]
    return text


TID = 0x0A0B0C0D


@st.composite
def udp_replies(draw) -> bytes:
    action = draw(st.sampled_from([0, 1, 2, 3, 7]))
    tid = draw(st.sampled_from([TID, TID ^ 1]))
    if action == 0:
        body = draw(st.binary(min_size=8, max_size=8))
    elif action == 1:
        body = struct.pack(">iii", *(draw(st.integers(-2**31, 2**31 - 1)) for _ in range(3)))
        body += draw(st.binary(max_size=4)) * draw(st.sampled_from([6, 18]))
    elif action == 2:
        body = draw(st.binary(max_size=36))
    else:
        body = draw(st.binary(max_size=16))
    return struct.pack(">II", action, tid) + body


@st.composite
def frame_streams(draw) -> bytes:
    frames = []
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.integers(0, 5)) == 0:
            frames.append(b"\x00\x00\x00\x00")
        else:
            payload = bytes([draw(st.integers(0, 21))]) + draw(st.binary(max_size=20))
            frames.append(struct.pack(">I", len(payload)) + payload)
    return b"".join(frames)


@st.composite
def extension_handshakes(draw) -> bytes:
    body: dict = {b"m": sorted_dict({k: draw(st.integers(-2, 300))
                                     for k in draw(st.lists(st.sampled_from(
                                         [b"ut_metadata", b"ut_pex", b"x"]), unique=True))})}
    if draw(st.booleans()):
        body[b"metadata_size"] = draw(st.integers(-5, 10**9))
    if draw(st.booleans()):
        body[b"v"] = draw(st.binary(max_size=12))
    return benc(sorted_dict(body))


@st.composite
def metadata_messages(draw) -> bytes:
    head = {b"msg_type": draw(st.integers(-1, 3)), b"piece": draw(st.integers(-2, 5))}
    if draw(st.booleans()):
        head[b"total_size"] = draw(st.integers(0, 10**6))
    return benc(sorted_dict(head)) + draw(st.binary(max_size=40))


# --- the harness: value or own error, nothing else ------------------------------------------------

def value_or(error: type[TorrentError], fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except error:
        return None
    # any other exception (including another TorrentError subclass) fails the test


# --- properties ------------------------------------------------------------------------------------

@SETTINGS
@given(fuzz(values.map(benc)))
def test_bencode_decode(data):
    value_or(BencodeError, bencode.decode, data)


@SETTINGS
@given(fuzz(values.map(benc)), st.integers(0, 70))
def test_bencode_decode_prefix_and_dict_with_raw(data, start):
    value_or(BencodeError, bencode.decode_prefix, data, start)
    value_or(BencodeError, bencode.decode_dict_with_raw, data)


@SETTINGS
@given(fuzz(torrents()))
def test_parse_torrent(data):
    result = value_or(MetainfoError, parse_torrent, data)
    assert result is None or isinstance(result, Torrent)


@SETTINGS
@given(fuzz(raw_infos) | mutated_info_dicts().map(benc))
def test_parse_info(data):
    result = value_or(MetainfoError, parse_info, data)
    if result is not None:
        assert isinstance(result, Info)
        assert all(len(h) == 20 for h in result.piece_hashes)
        assert all(part not in ("", ".", "..") and "/" not in part
                   for f in result.files for part in f.path)


@SETTINGS
@given(st.text(max_size=80) | magnet_links() | mutated_text(magnet_links())
       | st.text(max_size=40).map(lambda s: "magnet:?" + s))
def test_parse_magnet(link):
    result = value_or(MagnetError, parse_magnet, link)
    if result is not None:
        assert isinstance(result, MagnetLink)
        assert len(result.info_hash) == 20


@SETTINGS
@given(fuzz(tracker_replies()))
def test_parse_http_announce_response(body):
    result = value_or(TrackerError, tracker.parse_announce_response, body)
    if result is not None:
        assert all(0 <= p.port < 65536 for p in result.peers)


@SETTINGS
@given(fuzz(udp_replies()), st.booleans(), st.integers(0, 4))
def test_udp_reply_parsers(data, ipv6, hash_count):
    value_or(TrackerError, udp.reply_body, data, TID, udp.ACTION_ANNOUNCE)
    value_or(TrackerError, udp.parse_connect_response, data, TID)
    value_or(TrackerError, udp.parse_announce_response, data, TID, ipv6=ipv6)
    value_or(TrackerError, udp.parse_scrape_response, data, TID, hash_count)
    value_or(TrackerError, udp.parse_peer_list, data, ipv6=ipv6)


@SETTINGS
@given(st.text(max_size=40).map(lambda s: "udp://" + s) | st.text(max_size=40)
       | mutated_text(st.just("udp://127.0.0.1:6969/announce")))
def test_parse_udp_url(url):
    result = value_or(TrackerError, udp.parse_udp_url, url)
    if result is not None:
        host, port = result
        assert host and 0 < port < 65536


@SETTINGS
@given(fuzz(frame_streams()), st.lists(st.integers(0, 80), max_size=6))
def test_message_reader(stream, cuts):
    reader = pw.MessageReader(max_length=64)
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    for lo, hi in zip(bounds, bounds[1:]):
        messages = value_or(ProtocolError, reader.feed, stream[lo:hi])
        if messages is None:
            break
        for m in messages:
            assert isinstance(m, msg.KeepAlive) or 0 <= m.encode()[4] < 256


@SETTINGS
@given(st.binary(max_size=24) | mutated(st.just(b"\x00\x00\x00\x01\x00\x00\x40\x00\x00\x00\x40\x00")),
       st.integers(0, 40))
def test_payload_parsers(payload, piece_count):
    for message_id in range(22):
        value_or(ProtocolError, msg.parse_message, message_id, payload)
    value_or(ProtocolError, msg.unpack_bits, payload, piece_count)


@SETTINGS
@given(st.binary(min_size=60, max_size=70)
       | mutated(st.just(b"\x13BitTorrent protocol" + bytes(8) + bytes(range(40)))))
def test_decode_handshake(data):
    value_or(ProtocolError, pw.decode_handshake, data)


@SETTINGS
@given(fuzz(extension_handshakes()))
def test_parse_extension_handshake(body):
    result = value_or(ProtocolError, ext.parse_extension_handshake, body)
    if result is not None:
        assert result.ut_metadata_id is None or 0 < result.ut_metadata_id < 256
        assert result.metadata_size is None or result.metadata_size > 0


@SETTINGS
@given(fuzz(metadata_messages()))
def test_parse_metadata_message(body):
    result = value_or(ProtocolError, ext.parse_metadata_message, body)
    if result is not None:
        assert result.piece >= 0


@SETTINGS
@given(st.integers(1, 3 * ext.METADATA_PIECE_SIZE), st.integers(-1, 4), st.integers(0, 20000))
def test_metadata_assembler_add(size, piece, length):
    assembler = ext.MetadataAssembler(b"\x00" * 20, size)
    value_or(ProtocolError, assembler.add, piece, b"\x00" * length)


@SETTINGS
@given(st.integers(-2, 2**32 + 2), st.integers(0, 4))
def test_metadata_assembler_size(size, _):
    value_or(ProtocolError, ext.MetadataAssembler, b"\x00" * 20, size)


@SETTINGS
@given(fuzz(tracker_replies()))
def test_peers_parsers(body):
    value = value_or(BencodeError, bencode.decode, body)
    peers = value.get(b"peers") if isinstance(value, dict) else body
    value_or(TrackerError, tracker.parse_peers, peers)
    value_or(TrackerError, tracker.parse_compact_peers, body)
    value_or(TrackerError, tracker.parse_compact_peers6, body)


def test_property_count():
    """PROPERTIES (used to report the example total) matches the @given tests here."""
    assert len(given_tests(globals())) == PROPERTIES
