"""app/core/extension.py: BEP 10 handshake and BEP 9 ut_metadata, against bytes written by hand."""

import hashlib

import pytest

from app.core.errors import ProtocolError
from app.core.extension import (
    MAX_METADATA_SIZE,
    METADATA_PIECE_SIZE,
    MetadataAssembler,
    extension_handshake_body,
    metadata_data_body,
    metadata_piece_count,
    metadata_reject_body,
    metadata_reply_body,
    metadata_request_body,
    parse_extension_handshake,
    parse_metadata_message,
)
from app.core.messages import Extended
from app.core.metainfo import parse_info

# --- extension handshake ------------------------------------------------------------------

def test_our_extension_handshake_bytes():
    body = b"d1:md11:ut_metadatai1eee"
    assert extension_handshake_body() == body
    assert Extended(0, body).encode() == b"\x00\x00\x00\x1a" b"\x14" b"\x00" + body


def test_our_extension_handshake_with_metadata_size():
    assert extension_handshake_body(31235) == b"d1:md11:ut_metadatai1ee13:metadata_sizei31235ee"


def test_extended_message_frame():
    assert Extended(7, b"xyz").encode() == b"\x00\x00\x00\x05\x14\x07xyz"
    assert Extended.parse(b"\x00d1:md11:ut_metadatai1eee") == Extended(0, b"d1:md11:ut_metadatai1eee")
    assert Extended.parse(b"\x03") == Extended(3, b"")
    with pytest.raises(ProtocolError):
        Extended.parse(b"")


def test_parse_a_typical_peer_handshake():
    body = (b"d1:md11:ut_metadatai3e6:ut_pexi1ee13:metadata_sizei31235e"
            b"1:pi6881e1:v18:libtorrent/2.0.9.0e")
    hs = parse_extension_handshake(body)
    assert hs.ut_metadata_id == 3
    assert hs.metadata_size == 31235
    assert hs.client == "libtorrent/2.0.9.0"


@pytest.mark.parametrize("body", [
    b"de",
    b"d1:mdee",
    b"d1:md11:ut_metadatai0eee",     # 0 means "disabled" (BEP 10)
    b"d1:md11:ut_metadatai256eee",   # does not fit the id byte
    b"d1:md11:ut_metadatai-1eee",
    b"d1:md11:ut_metadata1:xee",
    b"d1:mi1ee",
    b"d1:mld11:ut_metadatai1eeee",
])
def test_handshake_without_usable_ut_metadata(body):
    assert parse_extension_handshake(body).ut_metadata_id is None


@pytest.mark.parametrize("size_field", [b"i0e", b"i-5e", b"3:abc", b"le"])
def test_handshake_with_unusable_metadata_size(size_field):
    hs = parse_extension_handshake(b"d1:md11:ut_metadatai2ee13:metadata_size" + size_field + b"e")
    assert hs.ut_metadata_id == 2
    assert hs.metadata_size is None


@pytest.mark.parametrize("body", [b"", b"le", b"i1e", b"d", b"dee", b"de\x00", b"garbage"])
def test_bad_extension_handshakes(body):
    with pytest.raises(ProtocolError):
        parse_extension_handshake(body)


# --- ut_metadata messages -------------------------------------------------------------------

def test_metadata_request_bytes():
    assert metadata_request_body(0) == b"d8:msg_typei0e5:piecei0ee"
    assert metadata_request_body(12) == b"d8:msg_typei0e5:piecei12ee"
    assert Extended(3, metadata_request_body(0)).encode()[:6] == (2 + 25).to_bytes(4, "big") + b"\x14\x03"


def test_metadata_reject_bytes():
    assert metadata_reject_body(1) == b"d8:msg_typei2e5:piecei1ee"


def test_metadata_data_bytes():
    assert metadata_data_body(1, 20000, b"xyz") == b"d8:msg_typei1e5:piecei1e10:total_sizei20000eexyz"


def test_metadata_reply_serves_each_piece_and_rejects_the_rest():
    raw = bytes(range(256)) * 100   # 25,600 bytes: two pieces, the second short
    first = parse_metadata_message(metadata_reply_body(raw, 0))
    second = parse_metadata_message(metadata_reply_body(raw, 1))
    assert (first.msg_type, first.total_size, first.data) == (1, len(raw), raw[:METADATA_PIECE_SIZE])
    assert second.data == raw[METADATA_PIECE_SIZE:]
    for piece in (2, 7):
        assert parse_metadata_message(metadata_reply_body(raw, piece)).msg_type == 2


def test_parse_data_message_with_trailing_raw_bytes():
    # the raw piece itself looks like bencode and even starts with 'e': it must not be touched
    raw = b"ed4:infoi1ee\x00\xff"
    msg = parse_metadata_message(b"d8:msg_typei1e5:piecei2e10:total_sizei34000ee" + raw)
    assert (msg.msg_type, msg.piece, msg.total_size, msg.data) == (1, 2, 34000, raw)


def test_parse_request_and_reject():
    msg = parse_metadata_message(b"d8:msg_typei0e5:piecei0ee")
    assert (msg.msg_type, msg.piece, msg.total_size, msg.data) == (0, 0, None, b"")
    msg = parse_metadata_message(b"d5:piecei4e8:msg_typei2ee")
    assert (msg.msg_type, msg.piece) == (2, 4)


@pytest.mark.parametrize("body", [
    b"", b"x", b"le", b"i1e", b"d8:msg_typei1e", b"d5:piecei0ee", b"d8:msg_typei0ee",
    b"d8:msg_type1:05:piecei0ee", b"d8:msg_typei0e5:piece1:0e", b"d8:msg_typei0e5:piecei-1ee",
])
def test_bad_metadata_messages(body):
    with pytest.raises(ProtocolError):
        parse_metadata_message(body)


# --- assembling ----------------------------------------------------------------------------

def _big_info() -> bytes:
    """A real info dict of 40,071 bytes: 2,000 piece hashes of 20 bytes."""
    pieces = b"".join(hashlib.sha1(b"%d" % i).digest() for i in range(2000))
    raw = (b"d6:lengthi32768000e4:name7:big.bin12:piece lengthi16384e6:pieces40000:"
           + pieces + b"e")
    assert len(raw) == 40071
    return raw


def test_piece_count():
    assert METADATA_PIECE_SIZE == 16384
    assert [metadata_piece_count(n) for n in (1, 16384, 16385, 40071)] == [1, 1, 2, 3]


def test_assemble_three_pieces_in_any_order():
    raw = _big_info()
    asm = MetadataAssembler(hashlib.sha1(raw).digest(), len(raw))
    assert asm.piece_count == 3
    assert asm.missing() == [0, 1, 2]
    asm.add(2, raw[32768:])                 # the short last piece: 7,303 bytes
    assert asm.missing() == [0, 1]
    asm.add(0, raw[:16384])
    asm.add(1, raw[16384:32768])
    assert asm.missing() == []
    assert asm.result() == raw
    assert parse_info(asm.result()).piece_count == 2000


def test_exact_multiple_of_the_piece_size():
    raw = b"d4:name1:x7:padding32742:" + b"p" * 32742 + b"e"   # 19 + 6 + 32742 + 1 bytes
    assert len(raw) == 32768
    asm = MetadataAssembler(hashlib.sha1(raw).digest(), len(raw))
    assert asm.piece_count == 2
    with pytest.raises(ProtocolError):
        asm.add(1, raw[16384:-1])
    asm.add(0, raw[:16384])
    asm.add(1, raw[16384:])
    assert asm.result() == raw


@pytest.mark.parametrize("piece, size", [(0, 16383), (0, 16385), (0, 0), (2, 7302), (2, 7304),
                                         (2, 16384), (1, 7303)])
def test_wrong_size_piece(piece, size):
    raw = _big_info()
    asm = MetadataAssembler(hashlib.sha1(raw).digest(), len(raw))
    with pytest.raises(ProtocolError):
        asm.add(piece, b"\x00" * size)
    assert asm.missing() == [0, 1, 2]


@pytest.mark.parametrize("piece", [-1, 3, 100])
def test_piece_out_of_range(piece):
    raw = _big_info()
    asm = MetadataAssembler(hashlib.sha1(raw).digest(), len(raw))
    with pytest.raises(ProtocolError):
        asm.add(piece, raw[:16384])


def test_hash_mismatch_discards_everything():
    raw = _big_info()
    asm = MetadataAssembler(hashlib.sha1(raw).digest(), len(raw))
    asm.add(0, raw[:16384])
    asm.add(1, b"\x00" + raw[16385:32768])     # one corrupted byte
    asm.add(2, raw[32768:])
    with pytest.raises(ProtocolError):
        asm.result()
    assert asm.missing() == [0, 1, 2]
    asm.add(0, raw[:16384])                     # a retry with good data succeeds
    asm.add(1, raw[16384:32768])
    asm.add(2, raw[32768:])
    assert asm.result() == raw


@pytest.mark.parametrize("size", [0, -1, MAX_METADATA_SIZE + 1])
def test_size_cap(size):
    with pytest.raises(ProtocolError):
        MetadataAssembler(b"\x00" * 20, size)


def test_largest_allowed_size():
    assert MAX_METADATA_SIZE == 16 * 1024 * 1024
    asm = MetadataAssembler(b"\x00" * 20, MAX_METADATA_SIZE)
    assert asm.piece_count == 1024
