"""app/core/session.py: the sans-IO peer session, with no socket and no clock.

Two styles, as in h11's tests: two sessions wired to each other in memory
(`pair` + `pump`), and one session driven by hand-written frames (`session`,
`feed`, `sent`), for what a well-behaved peer would never send.
"""

import pytest

from app.core import extension as ext
from app.core import messages as m
from app.core.errors import ProtocolError
from app.core.peer_wire import MessageReader, encode_handshake, reserved_bits
from app.core.pieces import BLOCK_SIZE, Block, LocalPieces
from app.core.session import (
    INACTIVITY_TIMEOUT,
    KEEPALIVE_SECONDS,
    MAX_CONTROL_PER_SECOND,
    MAX_REQUESTS_IN,
    BlockRejected,
    BlocksReceived,
    Choked,
    ExtensionHandshakeReceived,
    HandshakeReceived,
    InterestChanged,
    PeerHas,
    PeerSession,
    Phase,
    SessionConfig,
    Unchoked,
)

KIB = 1024
SIZES = [32 * KIB] * 9 + [5000]        # 10 pieces of 32 KiB, the last one short
COUNT = len(SIZES)
ALL = range(COUNT)
INFO_HASH = bytes(range(20))
OTHER_HASH = bytes(range(1, 21))
ID_A = b"-PY0001-aaaaaaaaaaaa"
ID_B = b"-LT2000-bbbbbbbbbbbb"
BODY_A = ext.extension_handshake_body()
BODY_B = ext.extension_handshake_body(metadata_size=4321)
PROTOCOL_PREFIX = b"\x13BitTorrent protocol"


# --- two sessions wired together ---------------------------------------------------------

def config(peer_id, *, fast=True, extensions=True, body=None, info_hash=INFO_HASH):
    return SessionConfig(info_hash, peer_id, fast=fast, extensions=extensions, extension_handshake=body)


def pair(a_have=(), b_have=(), *, a_fast=True, b_fast=True, a_body=None, b_body=None,
         a_id=ID_A, b_id=ID_B, b_hash=INFO_HASH, now=0.0):
    """`a` dials (initiator), `b` answers; each has its own pieces of the same torrent."""
    a = PeerSession(config(a_id, fast=a_fast, body=a_body), SIZES, LocalPieces(COUNT, a_have),
                    initiator=True, now=now)
    b = PeerSession(config(b_id, fast=b_fast, body=b_body, info_hash=b_hash), SIZES, LocalPieces(COUNT, b_have),
                    initiator=False, now=now)
    return a, b


def pump(a, b, now=0.0):
    """Carry each side's bytes to the other until neither has anything to say;
    returns the events each side saw, in order."""
    seen_a, seen_b = [], []
    for _ in range(50):
        to_b, to_a = a.data_to_send(now), b.data_to_send(now)
        b.receive_data(to_b)
        a.receive_data(to_a)
        new_a, new_b = a.next_events(now), b.next_events(now)
        seen_a += new_a
        seen_b += new_b
        if not (to_a or to_b or new_a or new_b):
            return seen_a, seen_b
    raise AssertionError("the two sessions never went quiet")


def connected(a_have=(), b_have=ALL, **kwargs):
    """A running pair (by default `b` seeds and `a` has nothing) and the events of the greeting."""
    a, b = pair(a_have, b_have, **kwargs)
    seen_a, seen_b = pump(a, b)
    return a, b, seen_a, seen_b


def kinds(events):
    return [type(e) for e in events]


# --- one session, its peer driven by hand ----------------------------------------------

def peer_handshake(*, fast=True, extensions=True, info_hash=INFO_HASH, peer_id=ID_B):
    return encode_handshake(info_hash, peer_id, reserved_bits(extensions=extensions, fast=fast))


def fresh(have=(), *, fast=True, extensions=True, body=None, sizes=SIZES, initiator=False, now=0.0):
    local = LocalPieces(len(sizes), have) if sizes is not None else None
    return PeerSession(config(ID_A, fast=fast, extensions=extensions, body=body), sizes, local,
                       initiator=initiator, now=now)


def sent(s, now=0.0):
    """The messages a session has queued, typed; a leading handshake is left out."""
    data = s.data_to_send(now)
    if data.startswith(PROTOCOL_PREFIX):
        data = data[68:]
    return MessageReader().feed(data)


def session(have=ALL, *, fast=True, peer_fast=True, peer_extensions=True, sizes=SIZES, unchoked=False,
            peer_summary=None, now=0.0, **kwargs):
    """Our session (the answering side) after the peer's handshake and, if given, its
    bitfield/have_all/have_none. Everything sent so far is drained."""
    s = fresh(have, fast=fast, sizes=sizes, now=now, **kwargs)
    s.receive_data(peer_handshake(fast=peer_fast, extensions=peer_extensions))
    assert kinds(s.next_events(now)) == [HandshakeReceived]
    if peer_summary is not None:
        feed(s, peer_summary, now=now)
    if unchoked:
        s.unchoke()
    sent(s, now)
    return s


def feed(s, *messages, now=0.0):
    s.receive_data(b"".join(message.encode() for message in messages))
    return s.next_events(now)


def refuses(s, *messages, match=None, now=0.0):
    """The messages break the protocol: ProtocolError, and the session is closed for good."""
    with pytest.raises(ProtocolError, match=match):
        feed(s, *messages, now=now)
    assert s.phase is Phase.CLOSED
    with pytest.raises(ProtocolError, match="closed"):
        feed(s, m.KeepAlive(), now=now)


# --- handshake and phases -----------------------------------------------------------------

def test_phases_through_the_handshake():
    a, b = pair(a_have={0}, a_fast=False, b_fast=False)
    assert a.phase is b.phase is Phase.HANDSHAKE
    hello = a.data_to_send(0)
    assert hello == encode_handshake(INFO_HASH, ID_A, reserved_bits(extensions=True, fast=False))
    assert b.data_to_send(0) == b""                       # the answering side waits for the dialler

    b.receive_data(hello)
    events = b.next_events(0)
    assert kinds(events) == [HandshakeReceived]
    assert events[0].handshake.peer_id == ID_A and events[0].handshake.info_hash == INFO_HASH
    assert b.phase is Phase.BITFIELD and b.peer_handshake == events[0].handshake
    answer = b.data_to_send(0)
    assert answer == encode_handshake(INFO_HASH, ID_B, reserved_bits(extensions=True, fast=False))  # no pieces

    a.receive_data(answer)
    assert kinds(a.next_events(0)) == [HandshakeReceived]
    assert a.phase is Phase.BITFIELD
    b.receive_data(a.data_to_send(0))
    assert b.next_events(0) == [PeerHas([0])]
    assert b.phase is Phase.RUNNING                        # the bitfield ends b's bitfield phase
    assert a.phase is Phase.BITFIELD                       # b sent none: a is still waiting for one
    a.receive_data(b.data_to_send(0))                      # b is interested in piece 0
    assert a.next_events(0) == [InterestChanged(True)]
    assert a.phase is Phase.RUNNING


def test_handshake_arriving_a_byte_at_a_time():
    a, b = pair(a_have={1})
    data = a.data_to_send(0)
    for i in range(67):
        b.receive_data(data[i:i + 1])
        assert b.next_events(0) == []
        assert b.phase is Phase.HANDSHAKE
    b.receive_data(data[67:])
    assert kinds(b.next_events(0)) == [HandshakeReceived]


def test_handshake_and_the_first_messages_in_one_read():
    s = fresh(())
    s.receive_data(peer_handshake() + m.Extended(0, BODY_B).encode() + m.Bitfield(b"\x60\x00").encode()
                   + m.Unchoke().encode())
    events = s.next_events(0)
    assert kinds(events) == [HandshakeReceived, ExtensionHandshakeReceived, PeerHas, Unchoked]
    assert events[2] == PeerHas([1, 2])
    assert s.phase is Phase.RUNNING and not s.peer_choking and s.am_interested


def test_responder_refuses_a_handshake_for_another_torrent():
    a, b = pair(b_hash=OTHER_HASH)
    b.receive_data(a.data_to_send(0))
    with pytest.raises(ProtocolError, match="do not serve"):
        b.next_events(0)
    assert b.phase is Phase.CLOSED
    assert b.data_to_send(0) == b""                       # it never answered
    assert a.phase is Phase.HANDSHAKE


def test_initiator_refuses_an_answer_for_another_torrent():
    a = fresh(initiator=True)
    a.data_to_send(0)
    a.receive_data(peer_handshake(info_hash=OTHER_HASH))
    with pytest.raises(ProtocolError, match="different torrent"):
        a.next_events(0)
    assert a.phase is Phase.CLOSED


def test_connecting_to_ourselves():
    a, b = pair(a_id=ID_A, b_id=ID_A)
    b.receive_data(a.data_to_send(0))
    with pytest.raises(ProtocolError, match="ourselves"):
        b.next_events(0)
    a = fresh(initiator=True)
    a.receive_data(peer_handshake(peer_id=ID_A))
    with pytest.raises(ProtocolError, match="ourselves"):
        a.next_events(0)


@pytest.mark.parametrize("data", [
    b"\x13BitTorrent Protocol" + bytes(48),
    b"\x12BitTorrent protocol" + bytes(48),
    b"GET / HTTP/1.1\r\nHost: example\r\n\r\n" + bytes(35),
])
def test_a_peer_that_does_not_speak_bittorrent(data):
    s = fresh()
    s.receive_data(data)
    with pytest.raises(ProtocolError):
        s.next_events(0)
    assert s.phase is Phase.CLOSED


@pytest.mark.parametrize(("a_fast", "b_fast"), [(True, True), (True, False), (False, True), (False, False)])
def test_fast_extension_is_on_only_when_both_set_the_bit(a_fast, b_fast):
    a, b = pair(a_fast=a_fast, b_fast=b_fast)
    hello = a.data_to_send(0)
    assert hello[20:28] == bytes([0, 0, 0, 0, 0, 0x10, 0, 0x04 if a_fast else 0])
    b.receive_data(hello)
    b.next_events(0)
    assert b.data_to_send(0)[20:28] == bytes([0, 0, 0, 0, 0, 0x10, 0, 0x04 if b_fast else 0])
    a2, b2 = pair(a_fast=a_fast, b_fast=b_fast)
    pump(a2, b2)
    assert a2.fast == b2.fast == (a_fast and b_fast)
    assert a2.peer_handshake.supports_fast == b_fast and b2.peer_handshake.supports_fast == a_fast


# --- the extension handshake (BEP 10) -----------------------------------------------------

def test_extension_handshake_is_the_first_message_after_the_handshake():
    a, b = pair(a_have={0, 1}, b_have={2}, a_body=BODY_A, b_body=BODY_B)
    b.receive_data(a.data_to_send(0))
    assert kinds(b.next_events(0)) == [HandshakeReceived]
    answer = b.data_to_send(0)
    assert answer.startswith(PROTOCOL_PREFIX)
    assert MessageReader().feed(answer[68:]) == [m.Extended(0, BODY_B), m.Bitfield.of(bytes([0, 0, 1] + [0] * 7))]

    a.receive_data(answer)
    events = a.next_events(0)
    assert events == [HandshakeReceived(a.peer_handshake),
                      ExtensionHandshakeReceived(ext.ExtensionHandshake(ext.OUR_UT_METADATA_ID, 4321)),
                      PeerHas([2])]
    assert a.peer_extensions == ext.ExtensionHandshake(ext.OUR_UT_METADATA_ID, 4321)
    first, *rest = sent(a)
    assert first == m.Extended(0, BODY_A)
    assert rest == [m.Bitfield(b"\xc0\x00"), m.Interested()]


def test_extension_handshake_also_precedes_have_all():
    s = fresh(ALL, body=BODY_A)
    s.receive_data(peer_handshake())
    s.next_events(0)
    assert sent(s) == [m.Extended(0, BODY_A), m.HaveAll()]


def test_no_extension_handshake_to_a_peer_without_bep10():
    s = fresh({0}, body=BODY_A)
    s.receive_data(peer_handshake(extensions=False))
    s.next_events(0)
    assert sent(s) == [m.Bitfield.of(bytes([1] + [0] * 9))]


def test_no_extension_handshake_when_we_do_not_offer_bep10():
    s = fresh({0}, body=BODY_A, extensions=False, initiator=True)
    assert s.data_to_send(0)[20:28] == bytes([0, 0, 0, 0, 0, 0, 0, 0x04])
    s.receive_data(peer_handshake())
    s.next_events(0)
    assert sent(s) == [m.Bitfield.of(bytes([1] + [0] * 9))]


def test_a_broken_extension_handshake_is_a_protocol_error():
    refuses(session(), m.Extended(0, b"not bencode"))


def test_other_extended_messages_are_handed_over():
    s = session(peer_summary=m.HaveNone())
    assert feed(s, m.Extended(3, b"d8:msg_typei0e5:piecei0ee")) == [m.Extended(3, b"d8:msg_typei0e5:piecei0ee")]
    assert s.phase is Phase.RUNNING


def test_send_extended():
    s = session()
    s.send_extended(7, b"payload")
    assert s.data_to_send(0) == b"\x00\x00\x00\x09\x14\x07payload"


# --- the bitfield comes first --------------------------------------------------------------

SUMMARIES = [m.Bitfield(b"\xff\xc0"), m.HaveAll(), m.HaveNone()]
OTHER_MESSAGES = [m.Interested(), m.NotInterested(), m.Choke(), m.Unchoke(), m.Have(0),
                  m.Request(0, 0, BLOCK_SIZE), m.Cancel(0, 0, BLOCK_SIZE), m.Piece(0, 0, b"x"),
                  m.Suggest(0), m.AllowedFast(0)]


@pytest.mark.parametrize("before", OTHER_MESSAGES, ids=lambda x: type(x).__name__)
@pytest.mark.parametrize("summary", SUMMARIES, ids=lambda x: type(x).__name__)
def test_bitfield_after_any_other_message_is_refused(summary, before):
    s = session(have=())
    feed(s, before)
    assert s.phase is Phase.RUNNING
    refuses(s, summary, match="must come first")


@pytest.mark.parametrize("second", SUMMARIES, ids=lambda x: type(x).__name__)
@pytest.mark.parametrize("first", SUMMARIES, ids=lambda x: type(x).__name__)
def test_only_one_bitfield(first, second):
    s = session(have=())
    feed(s, first)
    refuses(s, second, match="must come first")


@pytest.mark.parametrize("summary", SUMMARIES, ids=lambda x: type(x).__name__)
def test_the_extension_handshake_may_precede_the_bitfield(summary):
    s = session(have=())
    assert kinds(feed(s, m.Extended(0, BODY_B))) == [ExtensionHandshakeReceived]
    assert s.phase is Phase.BITFIELD
    assert kinds(feed(s, summary)) == [PeerHas]
    assert s.phase is Phase.RUNNING


@pytest.mark.parametrize("summary", SUMMARIES, ids=lambda x: type(x).__name__)
def test_other_extension_messages_may_precede_the_bitfield(summary):
    """A peer that came from a magnet link fetches the metadata (ut_metadata) before
    it can say which pieces it has."""
    s = session(have=())
    request = m.Extended(ext.OUR_UT_METADATA_ID, ext.metadata_request_body(0))
    assert feed(s, m.Extended(0, BODY_B), request, request) == [
        ExtensionHandshakeReceived(ext.ExtensionHandshake(ext.OUR_UT_METADATA_ID, 4321)), request, request]
    assert s.phase is Phase.BITFIELD
    assert kinds(feed(s, summary)) == [PeerHas]
    assert s.phase is Phase.RUNNING


def test_keep_alive_port_and_unknown_messages_leave_the_bitfield_phase_open():
    s = session(have=())
    assert feed(s, m.KeepAlive(), m.Port(6881), m.Unknown(99, b"??")) == [m.Port(6881)]   # for the DHT
    assert s.phase is Phase.BITFIELD
    assert feed(s, m.Bitfield(b"\x80\x00")) == [PeerHas([0])]


@pytest.mark.parametrize("bits", [b"\xff", b"\xff\xc0\x00", b"", b"\xff\xe0", b"\x00\x01"])
def test_bitfield_of_the_wrong_size_or_with_spare_bits(bits):
    refuses(session(have=()), m.Bitfield(bits))


# --- have_all / have_none (BEP 6) -----------------------------------------------------------

@pytest.mark.parametrize(("have", "fast", "peer_fast", "expected"), [
    (ALL, True, True, [m.HaveAll()]),
    ((), True, True, [m.HaveNone()]),
    ({0, 9}, True, True, [m.Bitfield(b"\x80\x40")]),
    (ALL, True, False, [m.Bitfield(b"\xff\xc0")]),
    (ALL, False, True, [m.Bitfield(b"\xff\xc0")]),
    ((), True, False, []),                          # without BEP 6 an empty bitfield may be left out
    ((), False, True, []),
    ({0, 9}, False, False, [m.Bitfield(b"\x80\x40")]),
])
def test_what_we_send_after_the_handshake(have, fast, peer_fast, expected):
    s = fresh(have, fast=fast)
    s.receive_data(peer_handshake(fast=peer_fast))
    s.next_events(0)
    assert sent(s) == expected


def test_have_all_from_the_peer():
    s = session(have={3})
    assert feed(s, m.HaveAll()) == [PeerHas(list(ALL))]
    assert s.peer_has == bytearray([1] * COUNT)
    assert s.am_interested and s.useful == COUNT - 1
    assert sent(s) == [m.Interested()]


def test_have_none_from_the_peer():
    s = session(have=())
    assert feed(s, m.HaveNone()) == [PeerHas([])]
    assert s.peer_has == bytearray(COUNT) and not s.am_interested
    assert sent(s) == []


def test_pair_of_fast_peers_greets_with_have_all_and_have_none():
    a, b, seen_a, seen_b = connected(a_have=(), b_have=ALL)
    assert seen_a == [HandshakeReceived(a.peer_handshake), PeerHas(list(ALL))]
    assert seen_b == [HandshakeReceived(b.peer_handshake), PeerHas([]), InterestChanged(True)]
    assert a.phase is b.phase is Phase.RUNNING


@pytest.mark.parametrize("message", [m.Suggest(0), m.HaveAll(), m.HaveNone(), m.RejectRequest(0, 0, BLOCK_SIZE),
                                     m.AllowedFast(0)], ids=lambda x: type(x).__name__)
@pytest.mark.parametrize(("fast", "peer_fast"), [(True, False), (False, True), (False, False)])
def test_fast_messages_without_the_fast_extension(message, fast, peer_fast):
    refuses(session(fast=fast, peer_fast=peer_fast), message, match="without the fast extension")


# --- the four flags -------------------------------------------------------------------------

def test_four_flags_start_choked_and_uninterested():
    a, b = pair()
    for s in (a, b):
        assert (s.am_choking, s.am_interested, s.peer_choking, s.peer_interested) == (True, False, True, False)


def test_four_flags_on_both_sides():
    a, b, seen_a, seen_b = connected(a_have=(), b_have=ALL)
    # a needs what b has: interest is sent by the session itself
    assert (a.am_choking, a.am_interested, a.peer_choking, a.peer_interested) == (True, True, True, False)
    assert (b.am_choking, b.am_interested, b.peer_choking, b.peer_interested) == (True, False, True, True)
    assert InterestChanged(True) in seen_b

    b.unchoke()
    seen_a, seen_b = pump(a, b)
    assert seen_a == [Unchoked()] and seen_b == []
    assert not b.am_choking and not a.peer_choking

    a.unchoke()
    seen_a, seen_b = pump(a, b)
    assert seen_b == [Unchoked()]
    assert not a.am_choking and not b.peer_choking

    b.choke()
    seen_a, _ = pump(a, b)
    assert seen_a == [Choked(requests_dropped=False)]
    assert b.am_choking and a.peer_choking

    for i in ALL:                                     # a completes the torrent: no longer interested
        a.local.add(i)
        a.we_have(i)
    seen_a, seen_b = pump(a, b)
    assert seen_b == [InterestChanged(False)]
    assert not a.am_interested and not b.peer_interested


def test_peer_flags_from_hand_written_messages():
    s = session(peer_summary=m.HaveNone())
    assert feed(s, m.Unchoke()) == [Unchoked()] and not s.peer_choking
    assert feed(s, m.Choke()) == [Choked(requests_dropped=False)] and s.peer_choking
    assert feed(s, m.Interested()) == [InterestChanged(True)] and s.peer_interested
    assert feed(s, m.Interested()) == []                      # no change, no event
    assert feed(s, m.NotInterested()) == [InterestChanged(False)] and not s.peer_interested
    assert feed(s, m.NotInterested()) == []


def test_choke_and_unchoke_are_sent_once():
    s = session()
    s.choke()                                               # already choking
    assert sent(s) == []
    s.unchoke()
    s.unchoke()
    assert sent(s) == [m.Unchoke()] and not s.am_choking
    s.choke()
    s.choke()
    assert sent(s) == [m.Choke()] and s.am_choking


@pytest.mark.parametrize(("fast", "dropped"), [(True, False), (False, True)])
def test_choked_event_says_whether_our_requests_were_dropped(fast, dropped):
    s = session(fast=fast, peer_summary=m.Bitfield(b"\xff\xc0"))
    assert feed(s, m.Unchoke(), m.Choke()) == [Unchoked(), Choked(requests_dropped=dropped)]


# --- our interest -------------------------------------------------------------------------------

def test_interest_follows_what_the_peer_has_that_we_need():
    a, b, _, seen_b = connected(a_have=(), b_have={1, 2})
    assert a.am_interested and a.useful == 2 and b.peer_interested

    a.local.add(1)
    a.we_have(1)                                            # b has 2 still
    assert pump(a, b) == ([], [])
    assert a.am_interested and a.useful == 1

    a.local.add(2)
    a.we_have(2)                                            # nothing left that b has
    assert pump(a, b) == ([], [InterestChanged(False)])
    assert not a.am_interested and not b.peer_interested

    b.local.add(5)
    b.we_have(5)                                            # b tells a, which needs piece 5
    assert pump(a, b) == ([PeerHas((5,))], [InterestChanged(True)])
    assert a.am_interested and b.peer_interested and a.useful == 1


def test_we_have_sends_a_have_only_to_peers_that_lack_the_piece():
    s = session(have=(), peer_summary=m.Bitfield(b"\x80\x00"))   # the peer has piece 0
    assert sent(s) == []                                          # interested was sent by session()
    s.local.add(0)
    s.we_have(0)
    assert sent(s) == [m.NotInterested()]
    s.local.add(4)
    s.we_have(4)
    assert sent(s) == [m.Have(4)]


def test_we_have_before_the_handshake_goes_into_the_bitfield():
    s = fresh(())
    s.local.add(3)
    s.we_have(3)
    assert s.data_to_send(0) == b""
    s.receive_data(peer_handshake())
    s.next_events(0)
    assert sent(s) == [m.Bitfield(b"\x10\x00")]


def test_a_useless_bitfield_leaves_us_uninterested():
    s = session(have={0, 1})
    assert feed(s, m.Bitfield(b"\xc0\x00")) == [PeerHas([0, 1])]
    assert not s.am_interested and s.useful == 0
    assert sent(s) == []


def test_haves_of_pieces_we_have_or_do_not_want_do_not_interest_us():
    s = PeerSession(config(ID_A), SIZES, LocalPieces(COUNT, have={0}, wanted={0, 1}), initiator=False, now=0)
    s.receive_data(peer_handshake())
    s.next_events(0)
    sent(s)
    assert feed(s, m.HaveNone(), m.Have(0), m.Have(5)) == [PeerHas([]), PeerHas((0,)), PeerHas((5,))]
    assert not s.am_interested and sent(s) == []
    assert feed(s, m.Have(1)) == [PeerHas((1,))]
    assert s.am_interested and sent(s) == [m.Interested()]


def test_a_repeated_have_is_no_news():
    s = session(have=(), peer_summary=m.HaveNone())
    assert feed(s, m.Have(4)) == [PeerHas((4,))]
    assert feed(s, m.Have(4)) == []
    assert s.useful == 1


@pytest.mark.parametrize("message", [m.Have(COUNT), m.Have(2 ** 32 - 1)])
def test_have_of_a_piece_that_does_not_exist(message):
    refuses(session(have=(), peer_summary=m.HaveNone()), message, match="does not exist")


# --- requests from the peer ------------------------------------------------------------------

BAD_BLOCKS = [
    (0, 0, 0),                              # nothing
    (0, 0, BLOCK_SIZE + 1),                 # more than 16 KiB
    (0, 0, 32 * KIB),
    (COUNT, 0, 1),                          # no such piece
    (2 ** 32 - 1, 0, BLOCK_SIZE),
    (0, 32 * KIB, 1),                       # starts at the end of the piece
    (0, 32 * KIB - BLOCK_SIZE + 1, BLOCK_SIZE),   # runs past it
    (9, 0, 5001),                           # the short last piece
    (9, 4096, 1000),
    (9, 2 ** 32 - 1, 1),
]


@pytest.mark.parametrize("block", BAD_BLOCKS, ids=str)
@pytest.mark.parametrize("cls", [m.Request, m.Cancel, m.RejectRequest], ids=lambda c: c.__name__)
def test_requests_cancels_and_rejects_are_checked_against_the_torrent(cls, block):
    refuses(session(unchoked=True, peer_summary=m.HaveNone()), cls(*block))


@pytest.mark.parametrize("block", [(0, 0, BLOCK_SIZE), (0, BLOCK_SIZE, BLOCK_SIZE), (9, 0, 5000), (9, 4999, 1),
                                   (8, 32 * KIB - 1, 1)], ids=str)
def test_requests_at_the_edges_are_fine(block):
    s = session(unchoked=True, peer_summary=m.HaveNone())
    assert feed(s, m.Request(*block)) == [m.Request(*block)]
    assert list(s.requests_in) == [Block(*block)]


def test_request_is_served_with_send_block():
    s = session(unchoked=True, peer_summary=m.HaveNone())
    assert feed(s, m.Request(1, BLOCK_SIZE, 4)) == [m.Request(1, BLOCK_SIZE, 4)]
    assert feed(s, m.Request(1, BLOCK_SIZE, 4)) == []          # the same request again: already queued
    assert s.send_block(Block(1, BLOCK_SIZE, 4), b"abcd", now=3.0) is True
    assert s.data_to_send(3.0) == b"\x00\x00\x00\x0d\x07\x00\x00\x00\x01\x00\x00\x40\x00abcd"
    assert s.uploaded == 4 and s.last_payload_at == 3.0 and s.idle_for(5.0) == 2.0
    assert s.requests_in == {}
    assert s.send_block(Block(1, BLOCK_SIZE, 4), b"abcd", now=3.0) is False   # answered already


@pytest.mark.parametrize(("fast", "answer"), [(False, []), (True, [m.RejectRequest(2, 0, BLOCK_SIZE)])])
def test_request_while_choked(fast, answer):
    s = session(fast=fast, peer_fast=fast, peer_summary=m.Bitfield(b"\x00\x00"))
    assert feed(s, m.Request(2, 0, BLOCK_SIZE)) == []
    assert sent(s) == answer
    assert s.requests_in == {}


@pytest.mark.parametrize(("fast", "answer"), [(False, []), (True, [m.RejectRequest(2, 0, BLOCK_SIZE)])])
def test_request_for_a_piece_we_lack(fast, answer):
    s = session(have={0, 1}, fast=fast, peer_fast=fast, unchoked=True, peer_summary=m.Bitfield(b"\x00\x00"))
    assert feed(s, m.Request(2, 0, BLOCK_SIZE)) == []
    assert sent(s) == answer
    assert s.requests_in == {}


def test_requests_beyond_the_queue_limit_are_rejected():
    s = session(unchoked=True, peer_summary=m.HaveNone())
    requests = [m.Request(0, begin, 1) for begin in range(MAX_REQUESTS_IN + 1)]
    assert feed(s, *requests) == requests[:MAX_REQUESTS_IN]
    assert len(s.requests_in) == MAX_REQUESTS_IN
    assert sent(s) == [m.RejectRequest(0, MAX_REQUESTS_IN, 1)]


def test_a_deep_pipeline_is_not_a_flood_but_requests_we_could_never_serve_are():
    """libtorrent pipelines hundreds of requests in one read: beyond our queue they are
    rejected, not counted as a flood. Requests while choked count: they are pointless."""
    s = session(unchoked=True, peer_summary=m.HaveNone())
    deep = [m.Request(0, begin, 1) for begin in range(MAX_REQUESTS_IN + MAX_CONTROL_PER_SECOND + 1)]
    assert len(feed(s, *deep)) == MAX_REQUESTS_IN
    choked = session(peer_summary=m.HaveNone())
    refuses(choked, *[m.Request(0, begin, 1) for begin in range(MAX_CONTROL_PER_SECOND + 1)], match="flood")


@pytest.mark.parametrize("fast", [True, False])
def test_choke_drops_queued_requests(fast):
    s = session(fast=fast, peer_fast=fast, unchoked=True, peer_summary=m.Bitfield(b"\x00\x00"))
    feed(s, m.Request(0, 0, BLOCK_SIZE), m.Request(3, BLOCK_SIZE, 100))
    s.choke()
    rejects = [m.RejectRequest(0, 0, BLOCK_SIZE), m.RejectRequest(3, BLOCK_SIZE, 100)]
    assert sent(s) == [m.Choke()] + (rejects if fast else [])    # choke first, then the rejects (BEP 6)
    assert s.requests_in == {}
    assert s.send_block(Block(0, 0, BLOCK_SIZE), bytes(BLOCK_SIZE), now=1.0) is False
    assert sent(s) == [] and s.uploaded == 0


@pytest.mark.parametrize(("fast", "answer"), [(False, []), (True, [m.RejectRequest(4, 0, 10)])])
def test_cancel_of_a_queued_request(fast, answer):
    s = session(fast=fast, peer_fast=fast, unchoked=True, peer_summary=m.Bitfield(b"\x00\x00"))
    feed(s, m.Request(4, 0, 10), m.Request(5, 0, 10))
    assert feed(s, m.Cancel(4, 0, 10)) == []
    assert sent(s) == answer                  # BEP 6: every request gets a block or a reject
    assert list(s.requests_in) == [Block(5, 0, 10)]
    assert s.send_block(Block(4, 0, 10), bytes(10), now=0) is False
    assert s.send_block(Block(5, 0, 10), bytes(10), now=0) is True


def test_cancel_of_a_request_we_never_queued_is_ignored():
    s = session(unchoked=True, peer_summary=m.HaveNone())
    assert feed(s, m.Cancel(4, 0, 10)) == []
    assert sent(s) == []


# --- our requests and what comes back -------------------------------------------------------

def test_request_and_cancel_frames():
    s = session()
    s.request([Block(1, 0, BLOCK_SIZE), Block(9, 0, 5000)])
    s.cancel(Block(1, 0, BLOCK_SIZE))
    assert sent(s) == [m.Request(1, 0, BLOCK_SIZE), m.Request(9, 0, 5000), m.Cancel(1, 0, BLOCK_SIZE)]


def test_reject_request_becomes_block_rejected():
    s = session(have=(), peer_summary=m.HaveAll())
    assert feed(s, m.RejectRequest(1, 0, BLOCK_SIZE)) == [BlockRejected(Block(1, 0, BLOCK_SIZE))]


def test_blocks_are_handed_over_and_counted():
    s = session(have=(), peer_summary=m.HaveAll())
    events = feed(s, m.Piece(3, BLOCK_SIZE, b"\x01" * 100), now=7.0)
    assert events == [BlocksReceived([m.Piece(3, BLOCK_SIZE, b"\x01" * 100)], size=100)]
    assert s.downloaded == 100 and s.last_payload_at == 7.0


def test_a_run_of_blocks_is_one_event_and_other_messages_keep_their_place():
    s = session(have=(), peer_summary=m.HaveAll())
    one, two, three = (m.Piece(i, 0, bytes([i]) * (10 + i)) for i in (1, 2, 3))
    events = feed(s, one, two, m.Choke(), three, m.Unchoke())
    assert events == [BlocksReceived([one, two], size=23), Choked(requests_dropped=False),
                      BlocksReceived([three], size=13), Unchoked()]
    assert s.downloaded == 36


@pytest.mark.parametrize("index", [COUNT, 2 ** 32 - 1])
def test_block_of_a_piece_that_does_not_exist(index):
    refuses(session(have=(), peer_summary=m.HaveAll()), m.Piece(index, 0, b"x"), match="does not exist")


def test_a_whole_exchange_between_two_sessions():
    a, b, _, _ = connected(a_have=(), b_have=ALL)
    a.request([Block(0, 0, BLOCK_SIZE)])                    # choked: b rejects it (fast)
    seen_a, seen_b = pump(a, b)
    assert seen_a == [BlockRejected(Block(0, 0, BLOCK_SIZE))] and seen_b == []

    b.unchoke()
    pump(a, b)
    assert a.can_request(0)
    a.request([Block(9, 0, 5000)])
    _, seen_b = pump(a, b, now=2.0)
    assert seen_b == [m.Request(9, 0, 5000)]
    assert b.send_block(Block(9, 0, 5000), b"\x07" * 5000, now=2.5)
    seen_a, _ = pump(a, b, now=3.0)
    assert seen_a == [BlocksReceived([m.Piece(9, 0, b"\x07" * 5000)], size=5000)]
    assert a.downloaded == b.uploaded == 5000


# --- allowed fast and suggest ---------------------------------------------------------------------

def test_allowed_fast_lets_us_request_while_choked():
    s = session(have=(), peer_summary=m.Bitfield(b"\xfe\x00"))   # the peer has pieces 0..6
    assert feed(s, m.AllowedFast(3), m.AllowedFast(8)) == [m.AllowedFast(3), m.AllowedFast(8)]
    assert s.allowed_fast == {3, 8}
    assert s.peer_choking
    assert s.can_request(3)
    assert not s.can_request(4)                                  # not allowed while choked
    assert not s.can_request(8)                                  # allowed, but the peer lacks it
    feed(s, m.Unchoke())
    assert s.can_request(4) and s.can_request(3) and not s.can_request(7)


def test_nothing_can_be_requested_before_the_peer_says_what_it_has():
    s = session(have=())
    assert not any(s.can_request(i) for i in ALL)


def test_allowed_fast_of_a_piece_that_does_not_exist():
    refuses(session(peer_summary=m.HaveNone()), m.AllowedFast(COUNT), match="does not exist")


def test_suggest_is_checked_and_handed_over():
    s = session(have=(), peer_summary=m.HaveAll())
    assert feed(s, m.Suggest(COUNT - 1)) == [m.Suggest(COUNT - 1)]
    refuses(s, m.Suggest(COUNT), match="does not exist")


def test_we_grant_no_allowed_fast_pieces():
    s = session(peer_summary=m.HaveNone())
    assert feed(s, m.Request(0, 0, 1)) == []
    assert sent(s) == [m.RejectRequest(0, 0, 1)]


# --- other messages --------------------------------------------------------------------------------

def test_keep_alive_and_unknown_ids_are_ignored_and_port_is_handed_over():
    s = session(peer_summary=m.HaveNone())
    assert feed(s, m.Port(6881), m.KeepAlive(), m.Unknown(10, b""), m.Unknown(200, b"\xff" * 7)) == [m.Port(6881)]
    assert sent(s) == []


def test_malformed_frames_are_protocol_errors():
    s = session(peer_summary=m.HaveNone())
    s.receive_data(b"\x00\x00\x00\x02\x04\x00")                 # a have with a 1-byte payload
    with pytest.raises(ProtocolError):
        s.next_events(0)
    s = session(peer_summary=m.HaveNone())
    s.receive_data(b"\x7f\xff\xff\xff")                         # a 2 GiB length prefix
    with pytest.raises(ProtocolError, match="exceeds"):
        s.next_events(0)


# --- receiving ---------------------------------------------------------------------------------

def test_a_block_arriving_in_small_pieces():
    s = session(have=(), peer_summary=m.HaveAll())
    data = m.Piece(2, 0, bytes(range(256)) * 64).encode()
    for start in range(0, len(data) - 1000, 1000):
        s.receive_data(data[start:start + 1000])
        assert s.next_events(0) == []
    s.receive_data(data[start + 1000:])
    assert s.next_events(0) == [BlocksReceived([m.Piece(2, 0, bytes(range(256)) * 64)], size=BLOCK_SIZE)]


def test_more_than_the_receive_buffer_in_one_read():
    s = session(have=(), peer_summary=m.HaveAll())
    blocks = [m.Piece(i % COUNT, 0, bytes([i]) * 4096) for i in range(40)]
    blocks += [m.Piece(i % 9, BLOCK_SIZE, bytes([i]) * BLOCK_SIZE) for i in range(20)]   # 480 KiB in all
    s.receive_data(b"".join(b.encode() for b in blocks))
    events = s.next_events(0)
    assert events == [BlocksReceived(blocks, size=40 * 4096 + 20 * BLOCK_SIZE)]


def test_zero_copy_receive():
    s = session(have=(), peer_summary=m.HaveNone())
    frame = m.Have(6).encode()
    space = s.get_buffer()
    assert len(space) >= len(frame) and s.buffered == 0
    space[:len(frame)] = frame
    space.release()
    s.commit(len(frame))
    assert s.buffered == len(frame)
    assert s.next_events(0) == [PeerHas((6,))]


# --- the flood guard ----------------------------------------------------------------------------

def test_more_control_messages_than_the_limit_in_one_second():
    s = session()                                                 # nothing counted yet
    assert feed(s, *[m.KeepAlive()] * MAX_CONTROL_PER_SECOND, now=0.5) == []   # the limit itself is fine
    refuses(s, m.KeepAlive(), match="flood", now=0.9)


def test_more_than_the_limit_in_a_single_read():
    refuses(session(), *[m.Unknown(99, b"")] * (MAX_CONTROL_PER_SECOND + 1), match="flood", now=0.2)


def test_the_limit_counts_across_reads_within_the_second():
    s = session()
    for i in range(10):
        feed(s, *[m.Interested(), m.NotInterested()] * (MAX_CONTROL_PER_SECOND // 20), now=0.05 * i)
    refuses(s, m.KeepAlive(), match="flood", now=0.6)


def test_the_same_number_spread_over_time_is_fine():
    s = session(peer_summary=m.HaveNone())
    for second in range(1, 6):
        feed(s, *[m.KeepAlive()] * MAX_CONTROL_PER_SECOND, now=float(second))
    assert s.phase is Phase.RUNNING


def test_blocks_are_not_counted_as_control_messages():
    s = session(have=(), peer_summary=m.HaveAll())
    events = feed(s, *[m.Piece(0, 0, b"x")] * (MAX_CONTROL_PER_SECOND + 1), now=0.5)
    assert len(events) == 1 and len(events[0].blocks) == MAX_CONTROL_PER_SECOND + 1


# --- time ---------------------------------------------------------------------------------------

def test_handshake_deadline():
    s = fresh(now=100.0)
    assert s.tick(105.0) is None
    assert s.tick(110.0) is None
    reason = s.tick(110.5)
    assert reason is not None and "handshake" in reason
    late = fresh(now=100.0)
    late.receive_data(peer_handshake())
    late.next_events(109.0)
    assert late.tick(111.0) is None                             # the handshake came in time


def test_inactivity_deadline():
    s = session(now=0.0)
    assert s.tick(INACTIVITY_TIMEOUT) is None
    reason = s.tick(INACTIVITY_TIMEOUT + 0.5)
    assert reason is not None and "nothing received" in reason
    s = session(now=0.0)
    feed(s, m.KeepAlive(), now=100.0)                            # any message counts, a keep-alive too
    assert s.tick(100.0 + INACTIVITY_TIMEOUT) is None
    assert s.tick(100.5 + INACTIVITY_TIMEOUT) is not None


def test_a_partial_message_is_not_yet_a_sign_of_life():
    s = session(now=0.0)
    s.receive_data(m.Have(1).encode()[:5])
    assert s.next_events(100.0) == []
    assert s.tick(INACTIVITY_TIMEOUT + 1) is not None


def test_keep_alive_after_a_quiet_minute():
    s = session(now=0.0)                                          # drained at t=0
    assert s.tick(KEEPALIVE_SECONDS) is None
    assert s.data_to_send(KEEPALIVE_SECONDS) == b""
    assert s.tick(KEEPALIVE_SECONDS + 0.5) is None
    assert s.data_to_send(KEEPALIVE_SECONDS + 0.5) == b"\x00\x00\x00\x00"
    assert s.tick(KEEPALIVE_SECONDS + 1) is None                  # just sent: nothing more
    assert s.data_to_send(KEEPALIVE_SECONDS + 1) == b""


def test_anything_sent_postpones_the_keep_alive():
    s = session(now=0.0)
    s.unchoke()
    assert s.data_to_send(50.0) == m.Unchoke().encode()
    assert s.tick(50.0 + KEEPALIVE_SECONDS) is None
    assert s.data_to_send(50.0 + KEEPALIVE_SECONDS) == b""
    s.tick(50.5 + KEEPALIVE_SECONDS)
    assert s.data_to_send(50.5 + KEEPALIVE_SECONDS) == m.KeepAlive().encode()


def test_no_keep_alive_when_something_is_queued():
    s = session(now=0.0)
    s.request([Block(0, 0, 1)])
    s.tick(KEEPALIVE_SECONDS + 1)
    assert sent(s, KEEPALIVE_SECONDS + 1) == [m.Request(0, 0, 1)]


# --- before the metadata (magnet links) ---------------------------------------------------------

def metadata_session(*, fast=False):
    s = PeerSession(config(ID_A, fast=fast, body=BODY_A), None, None, initiator=True, now=0.0)
    s.receive_data(peer_handshake())
    assert kinds(s.next_events(0)) == [HandshakeReceived]
    return s


def test_metadata_only_session_takes_any_bitfield_and_have_on_trust():
    s = metadata_session()
    assert s.metadata_only
    assert sent(s) == [m.Extended(0, BODY_A)]                     # no bitfield: we have nothing
    assert feed(s, m.Bitfield(b"\xff\xff\xff")) == []             # any length, spare bits set
    assert feed(s, m.Have(123456), m.Have(0), m.Unchoke()) == [Unchoked()]
    assert s.phase is Phase.RUNNING and not s.am_interested
    assert sent(s) == []


def test_metadata_only_session_still_refuses_a_second_bitfield():
    s = metadata_session()
    feed(s, m.Bitfield(b"\x01"))
    refuses(s, m.Bitfield(b"\x01"), match="must come first")


def test_metadata_only_session_hands_over_extended_messages():
    s = metadata_session()
    assert kinds(feed(s, m.Extended(0, BODY_B))) == [ExtensionHandshakeReceived]
    assert feed(s, m.Extended(1, b"d8:msg_typei2e5:piecei0ee")) == [m.Extended(1, b"d8:msg_typei2e5:piecei0ee")]


def test_metadata_only_session_with_fast_says_have_none_not_have_all():
    """With no pieces known, 'every piece' is vacuously true: the session must still not
    claim to be a seed (a seed peer would drop us, others would request blocks)."""
    s = metadata_session(fast=True)
    assert s.fast
    assert m.HaveAll() not in sent(s)


# --- a closed session ---------------------------------------------------------------------------

def test_a_session_that_raised_refuses_everything_after():
    s = session(peer_summary=m.HaveNone())
    refuses(s, m.Have(COUNT))
    s.receive_data(m.KeepAlive().encode())
    with pytest.raises(ProtocolError, match="closed"):
        s.next_events(1.0)
    assert s.phase is Phase.CLOSED


def test_a_handshake_failure_also_closes_the_session():
    s = fresh()
    s.receive_data(peer_handshake(info_hash=OTHER_HASH) + m.HaveNone().encode())
    with pytest.raises(ProtocolError):
        s.next_events(0)
    s.receive_data(peer_handshake())
    with pytest.raises(ProtocolError, match="closed"):
        s.next_events(0)


# --- the DHT bit and the PORT message (BEP 5) ------------------------------------------------

def dht_pair(a_port, b_port):
    a = PeerSession(SessionConfig(INFO_HASH, ID_A, dht_port=a_port), SIZES, LocalPieces(COUNT), initiator=True, now=0)
    b = PeerSession(SessionConfig(INFO_HASH, ID_B, dht_port=b_port), SIZES, LocalPieces(COUNT, ALL),
                    initiator=False, now=0)
    return a, b


def test_dht_nodes_are_exchanged_when_both_set_the_bit():
    a, b = dht_pair(6881, 7000)
    seen_a, seen_b = pump(a, b)
    assert a.peer_handshake.supports_dht and b.peer_handshake.supports_dht
    assert [e for e in seen_a if isinstance(e, m.Port)] == [m.Port(7000)]
    assert [e for e in seen_b if isinstance(e, m.Port)] == [m.Port(6881)]


def test_no_port_message_to_a_peer_without_the_dht_bit():
    a, b = dht_pair(6881, None)
    seen_a, seen_b = pump(a, b)
    assert b.peer_handshake.supports_dht and not a.peer_handshake.supports_dht
    assert not any(isinstance(e, m.Port) for e in seen_a + seen_b)


def test_port_comes_after_the_bitfield_and_does_not_end_its_moment():
    a, b = dht_pair(6881, 7000)
    b.receive_data(a.data_to_send(0))
    b.next_events(0)
    out = MessageReader()
    out.write(b.data_to_send(0)[68:])
    kinds_sent = [type(message) for message in out.messages()]
    assert kinds_sent.index(m.HaveAll) < kinds_sent.index(m.Port)
    s = fresh(have=())
    s.receive_data(peer_handshake())
    s.next_events(0)
    events = feed(s, m.Port(6881), m.Bitfield.of(bytearray([1] * COUNT)))
    assert m.Port(6881) in events and any(isinstance(e, PeerHas) for e in events)


def test_a_port_of_zero_is_ignored():
    assert not any(isinstance(e, m.Port) for e in feed(session(), m.Port(0)))
