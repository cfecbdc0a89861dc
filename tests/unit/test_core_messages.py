"""app/core/messages.py: each wire message against bytes written out by hand from BEP 3, 6 and 10."""

import random

import pytest

from app.core import messages as m
from app.core.errors import ProtocolError

# (message, its whole frame: 4-byte big-endian length, 1-byte id, payload)
FRAMES = [
    # BEP 3
    (m.KeepAlive(), b"\x00\x00\x00\x00"),
    (m.Choke(), b"\x00\x00\x00\x01\x00"),
    (m.Unchoke(), b"\x00\x00\x00\x01\x01"),
    (m.Interested(), b"\x00\x00\x00\x01\x02"),
    (m.NotInterested(), b"\x00\x00\x00\x01\x03"),
    (m.Have(0x01020304), b"\x00\x00\x00\x05\x04" b"\x01\x02\x03\x04"),
    (m.Bitfield(b"\xf0\x01"), b"\x00\x00\x00\x03\x05" b"\xf0\x01"),
    (m.Request(1, 0x4000, 0x4000),
     b"\x00\x00\x00\x0d\x06" b"\x00\x00\x00\x01" b"\x00\x00\x40\x00" b"\x00\x00\x40\x00"),
    (m.Piece(2, 0x8000, b"xyz"), b"\x00\x00\x00\x0c\x07" b"\x00\x00\x00\x02" b"\x00\x00\x80\x00" b"xyz"),
    (m.Cancel(3, 0, 0x3fff),
     b"\x00\x00\x00\x0d\x08" b"\x00\x00\x00\x03" b"\x00\x00\x00\x00" b"\x00\x00\x3f\xff"),
    (m.Port(6881), b"\x00\x00\x00\x03\x09" b"\x1a\xe1"),
    # BEP 6
    (m.Suggest(5), b"\x00\x00\x00\x05\x0d" b"\x00\x00\x00\x05"),
    (m.HaveAll(), b"\x00\x00\x00\x01\x0e"),
    (m.HaveNone(), b"\x00\x00\x00\x01\x0f"),
    (m.RejectRequest(7, 0x4000, 100),
     b"\x00\x00\x00\x0d\x10" b"\x00\x00\x00\x07" b"\x00\x00\x40\x00" b"\x00\x00\x00\x64"),
    (m.AllowedFast(0xfffffffe), b"\x00\x00\x00\x05\x11" b"\xff\xff\xff\xfe"),
    # BEP 10: id 20, then the extended message id (0 = the extension handshake), then the body
    (m.Extended(0, b"d1:md11:ut_metadatai1eee"),
     b"\x00\x00\x00\x1a\x14" b"\x00" b"d1:md11:ut_metadatai1eee"),
    (m.Extended(3, b""), b"\x00\x00\x00\x02\x14\x03"),
]
IDS = [type(message).__name__ + str(i) for i, (message, _) in enumerate(FRAMES)]


@pytest.mark.parametrize(("message", "wire"), FRAMES, ids=IDS)
def test_encode_gives_the_exact_frame(message, wire):
    assert message.encode() == wire


@pytest.mark.parametrize(("message", "wire"), FRAMES[1:], ids=IDS[1:])
def test_parse_of_the_payload_round_trips(message, wire):
    assert wire[4] == message.ID
    assert type(message).parse(wire[5:]) == message
    assert m.parse_message(wire[4], wire[5:]) == message
    assert m.parse_message(wire[4], memoryview(wire)[5:]) == message   # as the reader hands it over


def test_keep_alive_has_no_id_and_an_empty_payload():
    assert m.KeepAlive.parse(b"") == m.KeepAlive()
    assert m.KeepAlive.ID not in range(256)


def test_ids_are_the_assigned_numbers():
    assert [c.ID for c in (m.Choke, m.Unchoke, m.Interested, m.NotInterested, m.Have, m.Bitfield,
                           m.Request, m.Piece, m.Cancel, m.Port)] == list(range(10))
    assert [c.ID for c in (m.Suggest, m.HaveAll, m.HaveNone, m.RejectRequest, m.AllowedFast)] == \
        [0x0d, 0x0e, 0x0f, 0x10, 0x11]
    assert m.Extended.ID == 20
    assert sorted(m.FAST_IDS) == [0x0d, 0x0e, 0x0f, 0x10, 0x11]


def test_frame_helper():
    assert m.frame(9, b"\x00\x01") == b"\x00\x00\x00\x03\x09\x00\x01"
    assert m.frame(1) == b"\x00\x00\x00\x01\x01"


def test_piece_header_is_the_frame_up_to_the_block():
    piece = m.Piece(1, 16384, b"\xaa" * 16384)
    assert piece.header() == b"\x00\x00\x40\x09\x07" b"\x00\x00\x00\x01" b"\x00\x00\x40\x00"
    assert piece.encode() == piece.header() + piece.block


def test_piece_with_an_empty_block_parses():
    assert m.Piece.parse(b"\x00\x00\x00\x01\x00\x00\x00\x02") == m.Piece(1, 2, b"")


def test_piece_block_may_be_a_view_and_still_compares_by_content():
    parsed = m.Piece.parse(bytearray(b"\x00\x00\x00\x01\x00\x00\x00\x00abc"))
    assert isinstance(parsed.block, memoryview)
    assert parsed == m.Piece(1, 0, b"abc")
    assert parsed != m.Piece(1, 0, b"abd")
    assert parsed != m.Piece(1, 1, b"abc")
    assert parsed.encode() == b"\x00\x00\x00\x0c\x07\x00\x00\x00\x01\x00\x00\x00\x00abc"


def test_messages_of_different_kinds_never_compare_equal():
    assert m.Have(1) != m.Suggest(1) != m.AllowedFast(1)
    assert m.Request(1, 2, 3) != m.Cancel(1, 2, 3)
    assert m.Cancel(1, 2, 3) != m.RejectRequest(1, 2, 3)
    assert m.HaveAll() != m.HaveNone()
    assert m.Choke() == m.Choke() and m.Choke() != m.Unchoke()
    assert len({m.Choke(), m.Choke(), m.Unchoke()}) == 2


def test_bitfield_of_one_byte_per_piece():
    assert m.Bitfield.of(bytes([1, 0, 1, 0, 0, 0, 0, 1, 1])) == m.Bitfield(b"\xa1\x80")
    assert m.Bitfield.of(bytes([1, 0, 1, 0, 0, 0, 0, 1, 1])).encode() == b"\x00\x00\x00\x03\x05\xa1\x80"


def test_bitfield_of_any_length_parses():
    """Its length is checked against the torrent by the session, not here."""
    assert m.Bitfield.parse(b"") == m.Bitfield(b"")
    assert m.Bitfield.parse(memoryview(b"\xff" * 3)) == m.Bitfield(b"\xff\xff\xff")


# --- wrong payload lengths -------------------------------------------------------------

@pytest.mark.parametrize("cls", [m.Choke, m.Unchoke, m.Interested, m.NotInterested, m.HaveAll, m.HaveNone])
def test_payload_on_a_message_that_has_none(cls):
    with pytest.raises(ProtocolError):
        cls.parse(b"\x00")
    with pytest.raises(ProtocolError):
        m.parse_message(cls.ID, b"\x00\x00\x00\x00")


@pytest.mark.parametrize("cls", [m.Have, m.Suggest, m.AllowedFast])
@pytest.mark.parametrize("length", [0, 3, 5, 8])
def test_piece_index_messages_need_exactly_4_bytes(cls, length):
    with pytest.raises(ProtocolError):
        m.parse_message(cls.ID, bytes(length))


@pytest.mark.parametrize("cls", [m.Request, m.Cancel, m.RejectRequest])
@pytest.mark.parametrize("length", [0, 4, 8, 11, 13, 16])
def test_block_messages_need_exactly_12_bytes(cls, length):
    with pytest.raises(ProtocolError):
        m.parse_message(cls.ID, bytes(length))


@pytest.mark.parametrize("length", [0, 1, 7])
def test_piece_shorter_than_its_header(length):
    with pytest.raises(ProtocolError):
        m.parse_message(m.Piece.ID, bytes(length))


@pytest.mark.parametrize("length", [0, 1, 3, 4])
def test_port_needs_exactly_2_bytes(length):
    with pytest.raises(ProtocolError):
        m.parse_message(m.Port.ID, bytes(length))


def test_empty_extended_message():
    with pytest.raises(ProtocolError):
        m.parse_message(m.Extended.ID, b"")


# --- dispatch ----------------------------------------------------------------------------

@pytest.mark.parametrize("message_id", [10, 11, 12, 18, 19, 24, 255])
def test_unknown_ids_become_unknown_with_their_payload(message_id):
    parsed = m.parse_message(message_id, memoryview(b"\x01\x02\x03"))
    assert parsed == m.Unknown(message_id, b"\x01\x02\x03")
    assert type(parsed.payload) is bytes
    assert parsed.encode() == bytes([0, 0, 0, 4, message_id, 1, 2, 3])


def test_dispatch_picks_the_class_by_id():
    assert type(m.parse_message(4, b"\x00\x00\x00\x01")) is m.Have
    assert type(m.parse_message(13, b"\x00\x00\x00\x01")) is m.Suggest
    assert type(m.parse_message(17, b"\x00\x00\x00\x01")) is m.AllowedFast
    assert type(m.parse_message(6, bytes(12))) is m.Request
    assert type(m.parse_message(8, bytes(12))) is m.Cancel
    assert type(m.parse_message(16, bytes(12))) is m.RejectRequest
    assert m.parse_message(20, b"\x01d1:ai1ee") == m.Extended(1, b"d1:ai1ee")


# --- bitfields ---------------------------------------------------------------------------

def test_unpack_bits_high_bit_first():
    assert m.unpack_bits(b"\xa1\x80", 9) == bytearray([1, 0, 1, 0, 0, 0, 0, 1, 1])
    assert m.unpack_bits(b"\xff\xc0", 10) == bytearray([1] * 10)
    assert m.unpack_bits(b"\x01", 8) == bytearray([0] * 7 + [1])
    assert m.unpack_bits(b"", 0) == bytearray()
    assert isinstance(m.unpack_bits(memoryview(b"\x80"), 1), bytearray)


@pytest.mark.parametrize(("bits", "count"), [
    (b"\xff\xe0", 10),   # bit 10 of 16 is a spare bit
    (b"\xff\xc1", 10),   # so is the last one
    (b"\x81", 1),
    (b"\x01", 7),
])
def test_unpack_bits_refuses_spare_bits(bits, count):
    with pytest.raises(ProtocolError, match="spare"):
        m.unpack_bits(bits, count)


@pytest.mark.parametrize(("bits", "count"), [
    (b"", 1), (b"\x00", 9), (b"\x00\x00\x00", 16), (b"\x00\x00", 8), (b"\x00", 0),
])
def test_unpack_bits_refuses_a_wrong_length(bits, count):
    with pytest.raises(ProtocolError, match="bitfield of"):
        m.unpack_bits(bits, count)


def test_pack_bits():
    assert m.pack_bits(b"") == b""
    assert m.pack_bits(bytes([1])) == b"\x80"
    assert m.pack_bits(bytes([0] * 8)) == b"\x00"
    assert m.pack_bits(bytes([1] * 8)) == b"\xff"
    assert m.pack_bits(bytes([1, 0, 1, 0, 0, 0, 0, 1, 1])) == b"\xa1\x80"   # spare bits zero
    assert m.pack_bits(bytearray([0] * 16 + [1])) == b"\x00\x00\x80"


def test_pack_and_unpack_are_inverse():
    rng = random.Random(6)
    for count in range(0, 41):
        for _ in range(5):
            flags = bytes(rng.randint(0, 1) for _ in range(count))
            packed = m.pack_bits(flags)
            assert len(packed) == (count + 7) // 8
            assert m.unpack_bits(packed, count) == flags


def test_count_common():
    assert m.count_common(bytes([1, 0, 1, 1]), bytes([1, 1, 0, 1])) == 2
    assert m.count_common(bytes([1] * 100), bytearray([1] * 100)) == 100
    assert m.count_common(bytes([1, 0] * 50), bytes([0, 1] * 50)) == 0
    assert m.count_common(b"", b"") == 0
