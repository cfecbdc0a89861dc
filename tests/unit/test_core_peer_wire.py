"""app/core/peer_wire.py: handshake, framing and payloads against bytes written from BEP 3."""

import pytest

from app.core.errors import ProtocolError
from app.core.messages import Bitfield, Have, KeepAlive, Piece, Unchoke, Unknown
from app.core.peer_wire import MAX_MESSAGE_LENGTH, MessageReader, decode_handshake, encode_handshake, reserved_bits

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

STREAM = (b"\x00\x00\x00\x00"                                  # keep-alive
          b"\x00\x00\x00\x01\x01"                              # unchoke
          b"\x00\x00\x00\x05\x04\x00\x00\x00\x07"              # have 7
          b"\x00\x00\x00\x0b\x07\x00\x00\x00\x01\x00\x00\x40\x00xy"  # piece 1 @16384 "xy"
          b"\x00\x00\x00\x00")                                 # keep-alive
EXPECTED = [KeepAlive(), Unchoke(), Have(7), Piece(1, 16384, b"xy"), KeepAlive()]


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
    assert reader.feed(b"\x09\x00\x00") == [Have(9)]
    assert reader.feed(b"\x00\x01\x01") == [Unchoke()]


def test_unknown_ids_are_kept_as_unknown_messages():
    assert MessageReader().feed(b"\x00\x00\x00\x03\x63ab") == [Unknown(0x63, b"ab")]
    assert MessageReader().feed(b"\x00\x00\x00\x02\x05\xff") == [Bitfield(b"\xff")]


def test_length_cap():
    reader = MessageReader(max_length=100)
    assert reader.feed(b"\x00\x00\x00\x64\x07" + b"\x00" * 8 + b"x" * 91) == [Piece(0, 0, b"x" * 91)]
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
    assert MessageReader().feed(frame) == [Piece(0, 0, b"b" * 16384)]


# --- reserved bits -----------------------------------------------------------------------

def test_reserved_bits_name_the_extensions_we_offer():
    assert reserved_bits() == bytes.fromhex("0000000000100000")
    assert reserved_bits(extensions=True, fast=True) == bytes.fromhex("0000000000100004")
    assert reserved_bits(extensions=False, fast=False) == bytes(8)


def test_handshake_says_which_extensions_the_peer_speaks():
    hs = decode_handshake(encode_handshake(INFO_HASH, PEER_ID, reserved_bits(fast=True)))
    assert hs.supports_fast and hs.supports_extensions
    assert not decode_handshake(HANDSHAKE).supports_fast


def test_blocks_are_views_and_growing_the_buffer_keeps_them_intact():
    """A block is handed out as a view of the receive buffer, not a copy, valid until the
    next bytes come in. The buffer may then have to grow for a bigger message while such a
    view is still alive (the engine's last batch of events): it is replaced, not resized,
    since resizing a buffer with live views fails."""
    reader = MessageReader(capacity=1024)
    first = Piece(1, 0, bytes(range(256)) * 2)
    (got,) = reader.feed(first.encode())
    assert isinstance(got.block, memoryview) and got.block == first.block
    big = Bitfield(b"\xff" * 300_000)
    assert reader.feed(big.encode()[:100]) == []        # needs far more room than 1 KiB
    assert reader.feed(big.encode()[100:]) == [big]     # grown, with `got` alive
    assert len(got.block) == 512


def test_a_partial_message_moves_to_the_front_early_but_unread_messages_do_not():
    """get_buffer makes room while moving is cheap (a partial message after a parse),
    not when the room runs out after several reads without a parse, which would copy
    every block read meanwhile."""
    reader = MessageReader(capacity=256 * 1024)
    block = Piece(0, 0, b"q" * 16384).encode()
    reader.write(block * 10)                            # 160 KiB unread: more than half the room used
    assert len(reader.get_buffer()) == 256 * 1024 - 10 * len(block)   # not moved: too much to copy
    assert len(reader.messages()) == 10
    reader.write(block[:1000])                          # a partial message, after the parse
    room = reader.get_buffer()
    assert len(room) == 256 * 1024 - 1000               # moved to the front: the whole buffer is free again
    room.release()
    assert reader.feed(block[1000:]) == [Piece(0, 0, b"q" * 16384)]
