"""Round trips and oracles for the pure core: encode then decode gives back the input,
and the strict bencode grammar agrees with a regular expression written from BEP 3.

Each property runs EXAMPLES examples (derandomized; HYPOTHESIS_EXPLORE=1 draws fresh ones).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
import struct
from urllib.parse import quote, unquote_to_bytes

from hypothesis import given
from hypothesis import strategies as st

from app.core import bencode
from app.core import extension as ext
from app.core import messages as msg
from app.core import peer_wire as pw
from app.core import udp_tracker as udp
from app.core.errors import BencodeError
from app.core.magnet import format_magnet, parse_magnet
from app.core.metainfo import FileEntry, parse_info, parse_torrent
from app.core.pieces import blocks_of_piece, file_spans
from app.core.tracker import (
    DEFAULT_INTERVAL,
    AnnounceRequest,
    PeerAddress,
    announce_url,
    encode_compact_peers,
    parse_announce_response,
    parse_compact_peers,
)
from support.bencoding import bencode_as_given as benc
from support.properties import bencode_values, given_tests, property_settings

EXAMPLES = 300          # examples per property in this module
PROPERTIES = 21         # @given tests below (kept in step by test_property_count)
SETTINGS = property_settings(EXAMPLES)


def canonical(value):
    """The same value with every dict's keys sorted, as BEP 3 requires."""
    if isinstance(value, list):
        return [canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    return value


values = bencode_values(int_bound=10**30, max_bytes=30, max_items=6, max_key=10, max_leaves=25)
small_values = bencode_values(int_bound=10**30, max_bytes=30, max_items=3, max_key=10,
                              max_leaves=6)


# --- bencode ----------------------------------------------------------------------------------

@SETTINGS
@given(values)
def test_bencode_encode_matches_independent_encoder_and_decodes_back(value):
    encoded = bencode.encode(value)
    assert encoded == benc(canonical(value))
    assert bencode.decode(encoded) == value


@SETTINGS
@given(values, st.binary(max_size=10))
def test_decode_prefix_stops_at_the_end_of_the_value(value, junk):
    encoded = benc(value)
    assert bencode.decode_prefix(encoded + junk) == (value, len(encoded))
    assert bencode.decode_prefix(junk + encoded, len(junk)) == (value, len(junk) + len(encoded))


@SETTINGS
@given(st.dictionaries(st.binary(max_size=10), small_values, max_size=6), st.randoms(use_true_random=True))
def test_decode_dict_with_raw_slices_in_any_key_order(d, rnd):
    keys = list(d)
    rnd.shuffle(keys)
    d = {k: d[k] for k in keys}
    data = benc(d)                                  # keys in a random order
    decoded, raw = bencode.decode_dict_with_raw(data)
    assert decoded == d
    assert raw == {k: benc(v) for k, v in d.items()}
    assert b"d" + b"".join(benc(k) + raw[k] for k in d) + b"e" == data


def assert_rejected(data: bytes) -> None:
    """bencode.decode refuses `data` with a BencodeError."""
    try:
        bencode.decode(data)
    except BencodeError:
        return
    raise AssertionError(f"accepted {data!r}")


CANONICAL_INT = re.compile(r"0|-?[1-9][0-9]*")
CANONICAL_LENGTH = re.compile(r"0|[1-9][0-9]*")


@SETTINGS
@given(st.text(st.sampled_from("-+ 0123456789_.xe"), max_size=6))
def test_integer_grammar(text):
    data = b"i" + text.encode() + b"e"
    if CANONICAL_INT.fullmatch(text):
        assert bencode.decode(data) == int(text)
    else:
        assert_rejected(data)


@SETTINGS
@given(st.text(st.sampled_from("-+ 0123456789_"), max_size=4), st.binary(max_size=12))
def test_string_length_grammar(text, payload):
    data = text.encode() + b":" + payload
    if CANONICAL_LENGTH.fullmatch(text) and int(text) == len(payload):
        assert bencode.decode(data) == payload
    else:
        assert_rejected(data)


@SETTINGS
@given(values, st.data())
def test_every_strict_prefix_of_an_encoding_is_rejected(value, data):
    encoded = benc(value)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    try:
        result = bencode.decode(encoded[:cut])
    except BencodeError:
        return
    # bencode is prefix-free: no proper prefix of an encoded value is itself a value
    raise AssertionError(f"accepted prefix {encoded[:cut]!r} -> {result!r}")


# --- metainfo ---------------------------------------------------------------------------------

names = st.text(st.characters(codec="utf-8", exclude_characters="/\\\x00:"),
                min_size=1, max_size=8).filter(lambda s: s not in (".", ".."))


@st.composite
def torrent_specs(draw):
    piece_length = draw(st.integers(1, 100))
    multi = draw(st.booleans())
    if multi:
        paths = draw(st.lists(st.lists(names, min_size=1, max_size=3).map(tuple),
                              min_size=1, max_size=5, unique=True))
    else:
        paths = [(draw(names),)]
    lengths = [draw(st.integers(0, 400)) for _ in paths]
    count = -(-sum(lengths) // piece_length)
    hashes = [draw(st.binary(min_size=20, max_size=20)) for _ in range(count)]
    name = draw(names)
    info = {b"name": name.encode(), b"piece length": piece_length, b"pieces": b"".join(hashes)}
    if multi:
        info[b"files"] = [{b"length": n, b"path": [p.encode() for p in path]}
                          for n, path in zip(lengths, paths)]
    else:
        info[b"length"] = lengths[0]
        paths = [(name,)]
    keys = draw(st.permutations(list(info)))
    return {k: info[k] for k in keys}, name, piece_length, hashes, paths, lengths, multi


@SETTINGS
@given(torrent_specs(), st.lists(st.lists(st.sampled_from(
    [b"http://127.0.0.1:1/a", b"udp://127.0.0.1:2", b"http://127.0.0.1:3/b"]), min_size=1,
    max_size=2), max_size=3))
def test_parse_torrent_round_trip(spec, tiers):
    info, name, piece_length, hashes, paths, lengths, multi = spec
    raw_info = benc(info)
    top = {b"info": info}
    if tiers:
        top[b"announce-list"] = tiers
    top[b"announce"] = b"http://127.0.0.1:9/announce"
    torrent = parse_torrent(benc(top))
    parsed = torrent.info
    assert parsed.raw == raw_info
    assert parsed.info_hash == hashlib.sha1(raw_info).digest()
    assert parsed == parse_info(raw_info)
    assert (parsed.name, parsed.piece_length, parsed.multi_file) == (name, piece_length, multi)
    assert parsed.piece_hashes == tuple(hashes)
    offsets = [sum(lengths[:i]) for i in range(len(lengths))]
    assert parsed.files == tuple(FileEntry(p, n, o) for p, n, o in zip(paths, lengths, offsets))
    assert sum(parsed.piece_size(i) for i in range(parsed.piece_count)) == sum(lengths)
    expected_tiers = tuple(tuple(u.decode() for u in t) for t in tiers)
    assert torrent.trackers == (expected_tiers or (("http://127.0.0.1:9/announce",),))


# --- magnet --------------------------------------------------------------------------------------

@SETTINGS
@given(st.binary(min_size=20, max_size=20), st.sampled_from(["hex", "HEX", "b32", "b32lower"]),
       st.lists(st.text(min_size=1, max_size=20), max_size=4), st.one_of(st.none(), st.text(min_size=1, max_size=20)),
       st.lists(st.tuples(st.integers(0, 255), st.integers(1, 65535)), max_size=3))
def test_magnet_round_trip(info_hash, form, trackers, name, peers):
    btih = {"hex": info_hash.hex(), "HEX": info_hash.hex().upper(),
            "b32": base64.b32encode(info_hash).decode(),
            "b32lower": base64.b32encode(info_hash).decode().lower()}[form]
    params = ["xt=urn:btih:" + btih]
    params += ["tr=" + quote(t, safe="") for t in trackers]
    if name is not None:
        params.append("dn=" + quote(name, safe=""))
    peer_texts = [f"127.0.0.{a}:{port}" for a, port in peers]
    params += ["x.pe=" + p for p in peer_texts]      # literal ':' before the port
    link = parse_magnet("magnet:?" + "&".join(params))
    assert link.info_hash == info_hash
    assert link.trackers == tuple(dict.fromkeys(trackers))
    assert link.display_name == name
    assert link.peers == tuple(dict.fromkeys(peer_texts))


@SETTINGS
@given(st.binary(min_size=20, max_size=20), st.one_of(st.none(), st.text(min_size=1, max_size=20)),
       st.lists(st.text(min_size=1, max_size=30), max_size=4))
def test_format_magnet_then_parse(info_hash, name, trackers):
    link = parse_magnet(format_magnet(info_hash, name, trackers))
    assert link.info_hash == info_hash
    assert link.display_name == name
    assert link.trackers == tuple(dict.fromkeys(trackers))


# --- HTTP tracker ---------------------------------------------------------------------------------

UNRESERVED = re.compile(r"(?:[A-Za-z0-9\-._~]|%[0-9A-F]{2})*")


@SETTINGS
@given(st.binary(min_size=20, max_size=20), st.binary(min_size=20, max_size=20),
       st.integers(1, 65535), st.one_of(st.none(), st.binary(max_size=8)))
def test_announce_url_carries_raw_bytes(info_hash, peer_id, port, tracker_id):
    url = announce_url("http://127.0.0.1:1/announce",
                       AnnounceRequest(info_hash, peer_id, port, tracker_id=tracker_id))
    query = dict(part.split("=", 1) for part in url.split("?", 1)[1].split("&"))
    for key, raw in (("info_hash", info_hash), ("peer_id", peer_id), ("trackerid", tracker_id)):
        if raw is None:
            assert key not in query
            continue
        assert UNRESERVED.fullmatch(query[key]), query[key]
        assert unquote_to_bytes(query[key]) == raw
    assert query["port"] == str(port)


ipv4_peers = st.lists(st.builds(PeerAddress, st.ip_addresses(v=4).map(str), st.integers(0, 65535)),
                      max_size=6)
ipv6_peers = st.lists(st.builds(PeerAddress, st.ip_addresses(v=6).map(str), st.integers(0, 65535)),
                      max_size=4)


@SETTINGS
@given(ipv4_peers, ipv6_peers, st.integers(0, 10**6), st.booleans())
def test_http_reply_round_trip(peers, peers6, interval, as_dicts):
    reply = {b"interval": interval}
    if as_dicts:
        reply[b"peers"] = [{b"ip": p.host.encode(), b"port": p.port} for p in peers]
        expected = [p for p in peers if p.port > 0]            # port 0 entries are skipped
    else:
        reply[b"peers"] = b"".join(ipaddress.IPv4Address(p.host).packed + struct.pack(">H", p.port)
                                   for p in peers)
        expected = list(peers)
    reply[b"peers6"] = b"".join(ipaddress.IPv6Address(p.host).packed + struct.pack(">H", p.port)
                                for p in peers6)
    parsed = parse_announce_response(benc(reply))
    assert parsed.peers == tuple(expected) + tuple(peers6)
    assert parsed.interval == (interval or DEFAULT_INTERVAL)  # 0 means unset, as over UDP


@SETTINGS
@given(ipv4_peers)
def test_compact_peers_round_trip(peers):
    encoded = encode_compact_peers(peers)
    assert len(encoded) == 6 * len(peers)
    assert parse_compact_peers(encoded) == tuple(peers)


# --- UDP tracker replies ------------------------------------------------------------------------------

@SETTINGS
@given(st.integers(0, 2**32 - 1), st.integers(1, 2**31 - 1), st.integers(0, 2**31 - 1),
       st.integers(0, 2**31 - 1), st.booleans(), st.data())
def test_udp_announce_reply_round_trip(tid, interval, leechers, seeders, ipv6, data):
    peers = data.draw(ipv6_peers if ipv6 else ipv4_peers)
    address = ipaddress.IPv6Address if ipv6 else ipaddress.IPv4Address
    packet = struct.pack(">IIiii", 1, tid, interval, leechers, seeders) + b"".join(
        address(p.host).packed + struct.pack(">H", p.port) for p in peers)
    reply = udp.parse_announce_response(packet, tid, ipv6=ipv6)
    assert reply.peers == tuple(peers)
    assert (reply.interval, reply.incomplete, reply.complete) == (interval, leechers, seeders)
    assert udp.parse_announce_response(packet, tid ^ 1, ipv6=ipv6) is None   # someone else's
    assert udp.parse_connect_response(packet, tid) is None                   # wrong action


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1),
       st.lists(st.tuples(*[st.integers(0, 2**31 - 1)] * 3), min_size=1, max_size=5))
def test_udp_connect_and_scrape_round_trip(tid, connection_id, stats):
    assert udp.parse_connect_response(struct.pack(">IIQ", 0, tid, connection_id), tid) == connection_id
    packet = struct.pack(">II", 2, tid) + b"".join(struct.pack(">iii", *s) for s in stats)
    parsed = udp.parse_scrape_response(packet, tid, len(stats))
    assert [(s.seeders, s.completed, s.leechers) for s in parsed] == stats


# --- peer wire ----------------------------------------------------------------------------------------

messages = st.lists(st.one_of(
    st.builds(msg.KeepAlive), st.builds(msg.Choke), st.builds(msg.Unchoke), st.builds(msg.HaveAll),
    st.builds(msg.Have, st.integers(0, 2**32 - 1)), st.builds(msg.Bitfield, st.binary(max_size=20)),
    st.builds(msg.Request, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    st.builds(msg.Piece, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.binary(max_size=40)),
    st.builds(msg.Extended, st.integers(0, 255), st.binary(max_size=40)),
    st.builds(msg.Unknown, st.integers(24, 255), st.binary(max_size=40))), max_size=8)


@SETTINGS
@given(messages, st.lists(st.integers(0, 400), max_size=10))
def test_framing_round_trip_with_any_chunking(msgs, cuts):
    stream = b"".join(m.encode() for m in msgs)
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    reader, got = pw.MessageReader(), []
    for lo, hi in zip(bounds, bounds[1:]):
        got += reader.feed(stream[lo:hi])
    assert got == msgs


@SETTINGS
@given(st.binary(min_size=8, max_size=8), st.binary(min_size=20, max_size=20),
       st.binary(min_size=20, max_size=20))
def test_handshake_round_trip(reserved, info_hash, peer_id):
    hs = pw.decode_handshake(pw.encode_handshake(info_hash, peer_id, reserved))
    assert (hs.reserved, hs.info_hash, hs.peer_id) == (reserved, info_hash, peer_id)
    assert hs.supports_extensions == bool(reserved[5] & 0x10)


@SETTINGS
@given(st.lists(st.booleans(), max_size=70), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
       st.integers(0, 2**32 - 1), st.binary(max_size=30))
def test_payload_round_trips(have, index, begin, length, block):
    flags = bytearray(have)
    assert msg.unpack_bits(msg.Bitfield.of(flags).bits, len(have)) == flags
    for message in (msg.Request(index, begin, length), msg.Cancel(index, begin, length),
                    msg.RejectRequest(index, begin, length), msg.Piece(index, begin, block), msg.Have(index),
                    msg.AllowedFast(index), msg.Suggest(index)):
        frame = message.encode()
        assert int.from_bytes(frame[:4], "big") == len(frame) - 4
        assert msg.parse_message(frame[4], frame[5:]) == message


# --- extension protocol --------------------------------------------------------------------------------

@SETTINGS
@given(st.integers(1, 255), st.integers(0, 2**40), st.integers(0, 2**40), st.binary(max_size=64),
       st.one_of(st.none(), st.integers(1, ext.MAX_METADATA_SIZE)))
def test_extension_messages_round_trip(ext_id, piece, total, data, size):
    reader = pw.MessageReader()
    hs, = reader.feed(msg.Extended(0, ext.extension_handshake_body(size)).encode())
    parsed = ext.parse_extension_handshake(hs.body)
    assert (hs.ext_id, parsed.ut_metadata_id, parsed.metadata_size) == (0, 1, size)
    for body, expected in (
            (ext.metadata_request_body(piece), (0, piece, None, b"")),
            (ext.metadata_data_body(piece, total, data), (1, piece, total, data)),
            (ext.metadata_reject_body(piece), (2, piece, None, b""))):
        framed, = reader.feed(msg.Extended(ext_id, body).encode())
        m = ext.parse_metadata_message(framed.body)
        assert framed.ext_id == ext_id
        assert (m.msg_type, m.piece, m.total_size, m.data) == expected


@SETTINGS
@given(st.integers(1, 3 * ext.METADATA_PIECE_SIZE + 100), st.randoms(use_true_random=False))
def test_metadata_assembler_any_order(size, rnd):
    metadata = rnd.randbytes(size)
    assembler = ext.MetadataAssembler(hashlib.sha1(metadata).digest(), size)
    order = list(range(-(-size // ext.METADATA_PIECE_SIZE)))
    assert assembler.missing() == order
    rnd.shuffle(order)
    for i in order:
        assembler.add(i, metadata[i * ext.METADATA_PIECE_SIZE:(i + 1) * ext.METADATA_PIECE_SIZE])
    assert assembler.missing() == []
    assert assembler.result() == metadata


# --- pieces ------------------------------------------------------------------------------------------

@SETTINGS
@given(st.integers(0, 2**20), st.integers(0, 100_000), st.integers(1, 40_000))
def test_blocks_tile_the_piece(index, size, block_size):
    blocks = blocks_of_piece(index, size, block_size)
    assert sum(b.length for b in blocks) == size
    assert [b.begin for b in blocks] == list(range(0, size, block_size))
    assert all(b.index == index and 0 < b.length <= block_size for b in blocks)
    assert all(b.length == block_size for b in blocks[:-1])


@SETTINGS
@given(st.lists(st.integers(0, 50), min_size=1, max_size=8), st.data())
def test_file_spans_tile_any_range(lengths, data):
    files, offset = [], 0
    for i, n in enumerate(lengths):
        files.append(FileEntry((f"f{i}",), n, offset))
        offset += n
    start = data.draw(st.integers(0, offset))
    length = data.draw(st.integers(0, offset - start))
    spans = list(file_spans(files, start, length))
    assert sum(s.length for s in spans) == length
    stream = b"".join(bytes([i]) * n for i, n in enumerate(lengths))
    rebuilt = b"".join(bytes([files.index(s.file)]) * s.length for s in spans)
    assert rebuilt == stream[start:start + length]
    pos = 0
    for s in spans:
        assert s.piece_offset == pos and s.length > 0
        assert s.file.offset + s.file_offset == start + pos
        assert s.file_offset + s.length <= s.file.length
        pos += s.length


def test_property_count():
    """PROPERTIES (used to report the example total) matches the @given tests here."""
    assert len(given_tests(globals())) == PROPERTIES
