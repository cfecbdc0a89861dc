"""app/core/peer_wire.py: handshake, framing and payloads against bytes written from BEP 3."""

import pytest

from app.core.errors import ProtocolError
from app.core.peer_wire import (MAX_MESSAGE_LENGTH, Message, MessageId, MessageReader,
                                bitfield_bytes, decode_handshake, encode_bitfield,
                                encode_cancel, encode_handshake, encode_have, encode_message,
                                encode_piece, encode_request, parse_bitfield, parse_have,
                                parse_piece, parse_request)

INFO_HASH = bytes(range(20))
PEER_ID = b"-PY0001-abcdefghijkl"
HANDSHAKE = (b"\x13BitTorrent protocol"
             b"\x00\x00\x00\x00\x00\x10\x00\x00"
             + INFO_HASH + PEER_ID)


# --- handshake ----------------------------------------------------------------------------

def test_encode_handshake_bytes():
    assert len(HANDSHAKE) == 68
    assert encode_handshake(INFO_HASH, PEER_ID) == HANDSHAKE


def test_reserved_bytes_are_exactly_the_extension_bit():
    assert encode_handshake(INFO_HASH, PEER_ID)[20:28] == bytes.fromhex("0000000000100000")


def test_decode_handshake():
    hs = decode_handshake(HANDSHAKE)
    assert hs.reserved == b"\x00\x00\x00\x00\x00\x10\x00\x00"
    assert hs.info_hash == INFO_HASH
    assert hs.peer_id == PEER_ID
    assert hs.supports_extensions is True


def test_handshake_without_extension_bit():
    data = b"\x13BitTorrent protocol" + b"\x00" * 8 + INFO_HASH + PEER_ID
    assert decode_handshake(data).supports_extensions is False
    other_bits = b"\x13BitTorrent protocol" + b"\xff\xff\xff\xff\xff\xef\xff\xff" + INFO_HASH + PEER_ID
    assert decode_handshake(other_bits).supports_extensions is False


@pytest.mark.parametrize("data", [
    HANDSHAKE[:-1],
    HANDSHAKE + b"\x00",
    b"",
    b"\x12BitTorrent protocol" + HANDSHAKE[20:],          # wrong length byte
    b"\x13BitTorrent Protocol" + HANDSHAKE[20:],          # wrong case
    b"\x13XitTorrent protocol" + HANDSHAKE[20:],
    b"\x00" * 68,
])
def test_bad_handshakes(data):
    with pytest.raises(ProtocolError):
        decode_handshake(data)


# --- framing ------------------------------------------------------------------------------

def test_encode_message_bytes():
    assert encode_message(None) == b"\x00\x00\x00\x00"
    assert encode_message(MessageId.INTERESTED) == b"\x00\x00\x00\x01\x02"
    assert encode_message(MessageId.CHOKE) == b"\x00\x00\x00\x01\x00"
    assert encode_message(20, b"abc") == b"\x00\x00\x00\x04\x14abc"


STREAM = (b"\x00\x00\x00\x00"                                  # keep-alive
          b"\x00\x00\x00\x01\x01"                              # unchoke
          b"\x00\x00\x00\x05\x04\x00\x00\x00\x07"              # have 7
          b"\x00\x00\x00\x0b\x07\x00\x00\x00\x01\x00\x00\x40\x00xy"  # piece 1 @16384 "xy"
          b"\x00\x00\x00\x00")                                 # keep-alive
EXPECTED = [Message(None), Message(1), Message(4, b"\x00\x00\x00\x07"),
            Message(7, b"\x00\x00\x00\x01\x00\x00\x40\x00xy"), Message(None)]


def test_reader_several_messages_in_one_chunk():
    assert MessageReader().feed(STREAM) == EXPECTED


def test_reader_byte_by_byte():
    reader, got = MessageReader(), []
    for i in range(len(STREAM)):
        got += reader.feed(STREAM[i:i + 1])
    assert got == EXPECTED


@pytest.mark.parametrize("size", [2, 3, 5, 7, 11])
def test_reader_odd_chunks(size):
    reader, got = MessageReader(), []
    for i in range(0, len(STREAM), size):
        got += reader.feed(STREAM[i:i + size])
    assert got == EXPECTED


def test_reader_waits_for_a_whole_message():
    reader = MessageReader()
    assert reader.feed(b"\x00\x00\x00\x05\x04\x00") == []
    assert reader.feed(b"") == []
    assert reader.feed(b"\x00\x00") == []
    assert reader.feed(b"\x09\x00\x00") == [Message(4, b"\x00\x00\x00\x09")]
    assert reader.feed(b"\x00\x01\x02") == [Message(2)]


def test_message_ids_compare_to_the_enum():
    (message,) = MessageReader().feed(b"\x00\x00\x00\x01\x05")
    assert message.id == MessageId.BITFIELD == 5


def test_length_cap():
    reader = MessageReader(max_length=100)
    assert reader.feed(b"\x00\x00\x00\x64\x07" + b"x" * 99) == [Message(7, b"x" * 99)]
    with pytest.raises(ProtocolError):
        reader.feed(b"\x00\x00\x00\x65")


def test_default_length_cap_refuses_huge_prefix_before_the_payload_arrives():
    assert MAX_MESSAGE_LENGTH == 1 << 20
    with pytest.raises(ProtocolError):
        MessageReader().feed(b"\xff\xff\xff\xff")
    with pytest.raises(ProtocolError):
        MessageReader().feed(b"\x00\x10\x00\x01")   # (1 << 20) + 1


def test_default_cap_allows_a_block_message():
    payload = b"\x00" * 8 + b"b" * 16384
    frame = b"\x00\x00\x40\x09\x07" + payload       # 16393 = 1 + 8 + 16384
    assert MessageReader().feed(frame) == [Message(7, payload)]


# --- payloads -----------------------------------------------------------------------------

def test_payload_builders():
    assert encode_have(0x01020304) == b"\x00\x00\x00\x05\x04\x01\x02\x03\x04"
    assert encode_request(1, 0x4000, 0x4000) == (b"\x00\x00\x00\x0d\x06"
                                                 b"\x00\x00\x00\x01\x00\x00\x40\x00\x00\x00\x40\x00")
    assert encode_cancel(2, 0, 5) == (b"\x00\x00\x00\x0d\x08"
                                      b"\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x05")
    assert encode_piece(3, 16, b"data") == (b"\x00\x00\x00\x0d\x07"
                                            b"\x00\x00\x00\x03\x00\x00\x00\x10data")


def test_bitfield_builder():
    have = [True, False, True, False, False, False, False, True, True, False]
    assert bitfield_bytes(have) == b"\xa1\x80"
    assert encode_bitfield(have) == b"\x00\x00\x00\x03\x05\xa1\x80"
    assert bitfield_bytes([]) == b""
    assert bitfield_bytes([True] * 8) == b"\xff"


def test_parse_have():
    assert parse_have(b"\x00\x00\x00\x09", 10) == 9
    for payload, count in [(b"\x00\x00\x00\x0a", 10), (b"\xff\xff\xff\xff", 10),
                           (b"\x00\x00\x09", 10), (b"\x00\x00\x00\x00\x00", 10), (b"", 10)]:
        with pytest.raises(ProtocolError):
            parse_have(payload, count)


def test_parse_bitfield():
    assert parse_bitfield(b"\xa1\x80", 10) == [True, False, True, False, False, False, False,
                                                True, True, False]
    assert parse_bitfield(b"\xff", 8) == [True] * 8
    assert parse_bitfield(b"", 0) == []


@pytest.mark.parametrize("payload, count", [
    (b"\xa1\xa0", 10),      # bit 10 (0x20 of byte 1) is a spare bit
    (b"\xa1\x81", 10),      # the last spare bit
    (b"\x01", 7),
    (b"\xa1", 10),          # too short
    (b"\xa1\x80\x00", 10),  # too long
    (b"\x00", 0),
])
def test_bad_bitfields(payload, count):
    with pytest.raises(ProtocolError):
        parse_bitfield(payload, count)


def test_parse_request_and_cancel():
    assert parse_request(b"\x00\x00\x00\x01\x00\x00\x40\x00\x00\x00\x40\x00") == (1, 16384, 16384)
    for payload in (b"\x00" * 11, b"\x00" * 13, b""):
        with pytest.raises(ProtocolError):
            parse_request(payload)


def test_parse_piece():
    assert parse_piece(b"\x00\x00\x00\x03\x00\x00\x00\x10data") == (3, 16, b"data")
    assert parse_piece(b"\x00\x00\x00\x03\x00\x00\x00\x10") == (3, 16, b"")
    with pytest.raises(ProtocolError):
        parse_piece(b"\x00" * 7)
