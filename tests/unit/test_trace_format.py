"""--trace formatting: every peer message type, the handshake, announces and KRPC, from typed values."""
import io

import pytest

from app.core import bencode
from app.core import extension as ext
from app.core import messages as m
from app.core import trace_format as fmt
from app.core.peer_wire import Handshake, MessageReader, encode_handshake, reserved_bits
from app.core.tracker import AnnounceRequest, AnnounceResponse, PeerAddress, announce_url
from app.io.trace import Tracer, WireTap

INFO_HASH = bytes(range(20))
PEER_ID = b"-LT2010-" + bytes(range(12))


@pytest.mark.parametrize(("message", "line"), [
    (m.KeepAlive(), "keep-alive"),
    (m.Choke(), "choke"),
    (m.Unchoke(), "unchoke"),
    (m.Interested(), "interested"),
    (m.NotInterested(), "not_interested"),
    (m.HaveAll(), "have_all"),
    (m.HaveNone(), "have_none"),
    (m.Have(7), "have index=7"),
    (m.Suggest(2), "suggest index=2"),
    (m.AllowedFast(5), "allowed_fast index=5"),
    (m.Request(3, 16384, 16384), "request index=3 begin=16384 length=16384"),
    (m.Cancel(3, 0, 16384), "cancel index=3 begin=0 length=16384"),
    (m.RejectRequest(1, 32768, 100), "reject_request index=1 begin=32768 length=100"),
    (m.Piece(3, 16384, b"x" * 16384), "piece index=3 begin=16384 length=16384"),
    (m.Port(6881), "port dht_port=6881"),
    (m.Unknown(42, b"abc"), "unknown(42) 3 bytes (ignored, BEP 3)"),
])
def test_every_message_type(message, line):
    assert fmt.format_message(message) == line


def test_every_message_class_has_a_name():
    classes = [c for c in vars(m).values() if isinstance(c, type) and hasattr(c, "encode")
               and c.__module__ == m.__name__ and not c.__name__.startswith("_")]
    assert len(classes) >= 17
    for cls in classes:
        if cls is not m.Unknown:
            assert cls in fmt._NAMES, f"{cls.__name__} has no trace name"


def test_piece_never_shows_payload():
    line = fmt.format_message(m.Piece(0, 0, b"SECRET" * 100))
    assert "SECRET" not in line and "length=600" in line


def test_bitfield_counts_pieces():
    bits = m.pack_bits(bytes([1, 0, 1, 1, 0, 0, 0, 0, 1, 1]))
    assert fmt.format_message(m.Bitfield(bits), piece_count=10) == "bitfield has 5 of 10 pieces (2 bytes)"
    assert fmt.format_message(m.Bitfield(bits)) == \
        "bitfield has 5 pieces (2 bytes; the piece count is not known yet)"
    assert fmt.format_message(m.Bitfield(b"\x80"), piece_count=1) == "bitfield has 1 of 1 pieces (1 byte)"


def test_handshake_names_reserved_bits():
    line = fmt.format_handshake(Handshake(reserved_bits(extensions=True, fast=True), INFO_HASH, PEER_ID))
    assert f"info_hash={INFO_HASH.hex()}" in line
    assert "peer_id=-LT2010-" + bytes(range(12)).hex() in line
    assert "extension_protocol (BEP 10)" in line and "fast (BEP 6)" in line
    plain = fmt.format_handshake(Handshake(bytes(8), INFO_HASH, bytes(20)))
    assert "no extensions" in plain and "peer_id=" + "00" * 20 in plain
    odd = fmt.format_handshake(Handshake(bytes([0x80, 0, 0, 0, 0, 0, 0, 1]), INFO_HASH, PEER_ID))
    assert "dht (BEP 5)" in odd and "unknown bits 0x80 of byte 0" in odd


def test_extension_handshake_shows_m_dict():
    body = bencode.encode({b"m": {b"ut_metadata": 3, b"ut_pex": 1}, b"metadata_size": 1354, b"v": b"lt 2.0"})
    assert fmt.format_message(m.Extended(0, body)) == \
        "extended handshake m={ut_pex: 1, ut_metadata: 3} metadata_size=1354 v=lt 2.0"
    assert fmt.extension_ids(body) == {3: "ut_metadata", 1: "ut_pex"}
    assert fmt.format_message(m.Extended(0, b"garbage")).startswith("extended handshake undecodable")


def test_ut_metadata_messages():
    names = {3: "ut_metadata"}
    assert fmt.format_message(m.Extended(3, ext.metadata_request_body(0)), names) == "ut_metadata request piece=0"
    data = fmt.format_message(m.Extended(3, ext.metadata_data_body(1, 20000, b"d" * 3616)), names)
    assert data == "ut_metadata data piece=1 total_size=20000 (3616 bytes)"
    assert fmt.format_message(m.Extended(3, ext.metadata_reject_body(2)), names) == "ut_metadata reject piece=2"
    assert fmt.format_message(m.Extended(9, b"xyz"), names) == "extended id=9 (unnegotiated) 3 bytes"


def test_ut_pex_messages():

    body = bencode.encode({b"added": bytes([127, 0, 0, 1, 0x1a, 0xe1]), b"added.f": b"\x00", b"dropped": b""})
    line = fmt.format_message(m.Extended(2, body), {2: "ut_pex"})
    assert line == "ut_pex added=peers=1 [127.0.0.1:6881] dropped=peers=0 []"
    assert "undecodable" in fmt.format_message(m.Extended(2, b"x"), {2: "ut_pex"})


def test_announce_url_is_decoded():
    request = AnnounceRequest(INFO_HASH, PEER_ID, 6881, left=1000, event="started")
    line = fmt.format_announce_url(announce_url("http://127.0.0.1:1/announce", request))
    assert line.startswith("GET /announce ")
    for field in (f"info_hash={INFO_HASH.hex()}", "peer_id=-LT2010-", "port=6881", "left=1000",
                  "compact=1", "event=started"):
        assert field in line
    assert "%" not in line
    udp = fmt.format_announce_request(request)
    assert f"info_hash={INFO_HASH.hex()}" in udp and "left=1000" in udp


def test_announce_reply_shows_interval_and_peers():
    peers = tuple(PeerAddress("127.0.0.1", 6000 + i) for i in range(10))
    line = fmt.format_announce_response(AnnounceResponse(peers, interval=900, complete=3, incomplete=1))
    assert line.startswith("announce reply interval=900 seeders=3 leechers=1 peers=10 [127.0.0.1:6000,")
    assert line.endswith("+2 more]")


def test_krpc_messages():
    query = {b"t": b"aa", b"y": b"q", b"q": b"get_peers", b"a": {b"id": b"\x01" * 20, b"info_hash": INFO_HASH}}
    assert fmt.format_krpc(query).startswith("krpc query get_peers t=6161 id=" + "01" * 20)
    reply = {b"t": b"aa", b"y": b"r", b"r": {b"id": b"\x02" * 20, b"nodes": b"n" * 52, b"token": b"tok"}}
    assert "nodes=2" in fmt.format_krpc(reply) and "token=tok" in fmt.format_krpc(reply)
    assert fmt.format_krpc({b"t": b"b", b"y": b"e", b"e": [201, b"bad"]}) == "krpc error t=62 [2 items]"


def test_krpc_datagrams_are_decoded_for_the_dht():
    out = io.StringIO()
    tracer = Tracer(out, clock=lambda: 0.0)
    ping = bencode.encode({b"t": b"aa", b"y": b"q", b"q": b"ping", b"a": {b"id": b"\x01" * 20}})
    tracer.krpc_datagram("→", PeerAddress("127.0.0.1", 6881), ping)
    tracer.krpc_datagram("←", PeerAddress("127.0.0.1", 6881), b"junk")
    lines = out.getvalue().splitlines()
    assert "→ 127.0.0.1:6881 (dht) krpc query ping t=6161 id=" in lines[0]
    assert lines[1].endswith("not a KRPC message (4 bytes)")


class _Session:
    piece_sizes = (16384,) * 10


def test_wire_tap_decodes_a_stream_split_anywhere_and_limits_block_lines():
    out = io.StringIO()
    tap = WireTap(Tracer(out, clock=lambda: 0.0), "127.0.0.1:1", _Session())

    stream = (encode_handshake(INFO_HASH, PEER_ID) + m.Bitfield(m.pack_bits(b"\x01" * 10)).encode()
              + m.Unchoke().encode() + b"".join(m.Piece(i, 0, b"z" * 10).encode() for i in range(10)))
    for i in range(0, len(stream), 7):   # arbitrary packet boundaries
        tap.received(stream[i:i + 7])
    tap.closed(None)
    lines = [line.split(maxsplit=3)[3] for line in out.getvalue().splitlines()]
    assert lines[0].startswith("handshake info_hash=")
    assert lines[1] == "bitfield has 10 of 10 pieces (2 bytes)"
    assert lines[2] == "unchoke"
    assert lines[3:7] == [f"piece index={i} begin=0 length=10" for i in range(4)]
    assert lines[7] == "6 block messages so far not shown: piece ← 6"
    assert lines[8] == "connection closed"


def test_running_count_is_cumulative_and_at_most_once_a_second():
    out = io.StringIO()
    now = [0.0]
    tap = WireTap(Tracer(out, clock=lambda: now[0]), "p", _Session())
    tap.received(encode_handshake(INFO_HASH, PEER_ID))
    for second in range(3):
        now[0] = second + 0.5
        tap.received(b"".join(m.Piece(i, 0, b"z").encode() for i in range(6)))
        tap.received(m.Piece(9, 0, b"z").encode())   # the same second: no second count line
    tap.closed(None)   # the last count, then the close
    counts = [line.split(" p ", 1)[1] for line in out.getvalue().splitlines() if " … " in line]
    assert counts == ["9 block messages so far not shown: piece ← 9",     # at 1.5 s
                      "16 block messages so far not shown: piece ← 16",   # at 2.5 s
                      "17 block messages so far not shown: piece ← 17"]   # at the close


def test_wire_tap_trace_all_shows_every_block():
    out = io.StringIO()
    tracer = Tracer(out, show_all=True, clock=lambda: 0.0)
    tap = WireTap(tracer, "p", _Session())

    tap.sent(encode_handshake(INFO_HASH, PEER_ID) + m.encode_requests([(i, 0, 16384) for i in range(10)]))
    assert out.getvalue().count("request index=") == 10


def test_tap_names_metadata_by_the_receivers_ids():
    """Our handshake's m dict names what we receive; theirs names what we send."""
    out = io.StringIO()
    tap = WireTap(Tracer(out, clock=lambda: 0.0), "p", _Session())

    ours = m.Extended(0, bencode.encode({b"m": {b"ut_metadata": 1}}))
    theirs = m.Extended(0, bencode.encode({b"m": {b"ut_metadata": 5}}))
    tap.sent(encode_handshake(INFO_HASH, PEER_ID) + ours.encode())
    tap.received(encode_handshake(INFO_HASH, PEER_ID) + theirs.encode())
    tap.sent(m.Extended(5, ext.metadata_request_body(0)).encode())
    tap.received(m.Extended(1, ext.metadata_reject_body(0)).encode())
    text = out.getvalue()
    assert "→ p ut_metadata request piece=0" in text and "← p ut_metadata reject piece=0" in text


def test_reader_reparses_what_the_session_queues():
    """Outgoing bytes are traced by re-reading them with the session's own codec."""
    reader = MessageReader()
    assert reader.feed(m.encode_requests([(1, 0, 5)])) == [m.Request(1, 0, 5)]
