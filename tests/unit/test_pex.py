"""app/core/pex.py: ut_pex messages (BEP 11) against bytes written by hand, and the pacing
of what we send one peer."""

import pytest

from app.core.errors import ProtocolError
from app.core.pex import INTERVAL, MAX_ADDED, MAX_TAKEN, REACHABLE, SEED, PexSender, encode_pex, parse_pex
from app.core.tracker import PeerAddress

P1 = PeerAddress("10.0.0.1", 6881)     # 0a000001 1ae1
P2 = PeerAddress("10.0.0.2", 80)       # 0a000002 0050


def test_libtorrent_shaped_message():
    body = (b"d5:added12:\x0a\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\x00\x50" b"7:added.f2:\x10\x02"
            b"6:added60:8:added6.f0:7:dropped6:\x0a\x00\x00\x03\x00\x01" b"8:dropped60:e")
    message = parse_pex(body)
    assert message.added == (P1, P2) and message.flags == (REACHABLE, SEED)
    assert message.dropped == (PeerAddress("10.0.0.3", 1),)


def test_our_message_bytes():
    assert encode_pex([(P1, REACHABLE)], [P2]) == (
        b"d5:added6:\x0a\x00\x00\x01\x1a\xe1" b"7:added.f1:\x10" b"6:added60:" b"8:added6.f0:"
        b"7:dropped6:\x0a\x00\x00\x02\x00\x50" b"8:dropped60:e")


def test_ipv6_peers():
    v6 = PeerAddress("::1", 81)
    assert parse_pex(encode_pex([(v6, 0)], [])).added == (v6,)


def test_duplicates_and_bounds():
    many = b"".join(bytes([10, 1, i // 256, i % 256]) + b"\x1a\xe1" for i in range(1000))
    body = b"d5:added" + str(len(many) + 6).encode() + b":" + many + many[:6] + b"e"
    message = parse_pex(body)
    assert len(message.added) == MAX_TAKEN and len(set(message.added)) == MAX_TAKEN


@pytest.mark.parametrize("body", [b"", b"li1ee", b"d5:added"])
def test_malformed_raises_protocol_error(body):
    with pytest.raises(ProtocolError):
        parse_pex(body)


def test_sender_paces_and_sends_differences():
    sender = PexSender(now=0.0)
    connected = {PeerAddress("10.0.1.1", p): REACHABLE for p in range(1, 80)}
    first = sender.message(0.0, connected, exclude=None)
    assert first is not None and len(parse_pex(first).added) == MAX_ADDED
    assert sender.message(30.0, connected, exclude=None) is None            # once a minute at most
    second = parse_pex(sender.message(INTERVAL, connected, exclude=None) or b"")
    assert len(second.added) == 79 - MAX_ADDED
    fewer = dict(list(connected.items())[:10])
    third = parse_pex(sender.message(2 * INTERVAL, fewer, exclude=None) or b"")
    assert third.added == () and len(third.dropped) == MAX_ADDED
    assert sender.message(3 * INTERVAL, fewer, exclude=PeerAddress("10.0.1.1", 1)) is not None   # the rest dropped
    assert sender.message(4 * INTERVAL, fewer, exclude=None) is None        # nothing changed


def test_a_peer_is_never_told_about_itself():
    sender = PexSender(now=0.0)
    assert sender.message(0.0, {P1: 0}, exclude=P1) is None


def test_extension_handshake_offers_pex_and_our_port():
    from app.core.extension import extension_handshake_body, parse_extension_handshake
    body = extension_handshake_body(100, pex=True, listen_port=6881)
    assert body == b"d1:md11:ut_metadatai1e6:ut_pexi2ee13:metadata_sizei100e1:pi6881ee"
    parsed = parse_extension_handshake(body)
    assert (parsed.ut_pex_id, parsed.listen_port) == (2, 6881)
    assert extension_handshake_body() == b"d1:md11:ut_metadatai1eee"   # the magnet stages' handshake is unchanged
