"""app/core/dht/krpc.py: KRPC messages against bytes written out by hand (BEP 5, BEP 32, BEP 43),
including what real nodes add (top-level ip and v, r.p, an r dict beside an error)."""

import pytest

from app.core.dht import krpc
from app.core.dht.krpc import ErrorReply, KrpcError, NodeInfo, Query, Response
from app.core.tracker import PeerAddress

A = b"A" * 20          # our id
B = b"B" * 20          # theirs
H = b"H" * 20          # an info hash


# --- our queries, byte for byte ------------------------------------------------------------

def test_ping_bytes():
    assert krpc.ping(b"aa", A) == b"d1:ad2:id20:" + A + b"e1:q4:ping1:t2:aa1:y1:qe"


def test_read_only_ping_carries_ro():
    assert krpc.ping(b"aa", A, read_only=True) == b"d1:ad2:id20:" + A + b"e1:q4:ping2:roi1e1:t2:aa1:y1:qe"


def test_find_node_bytes():
    assert krpc.find_node(b"aa", A, B) == \
        b"d1:ad2:id20:" + A + b"6:target20:" + B + b"e1:q9:find_node1:t2:aa1:y1:qe"


def test_get_peers_with_want_bytes():
    assert krpc.get_peers(b"aa", A, H, want=(b"n4", b"n6")) == \
        b"d1:ad2:id20:" + A + b"9:info_hash20:" + H + b"4:wantl2:n42:n6ee1:q9:get_peers1:t2:aa1:y1:qe"


def test_announce_peer_bytes():
    assert krpc.announce_peer(b"aa", A, H, 6881, b"tok", implied_port=True) == (
        b"d1:ad2:id20:" + A + b"12:implied_porti1e9:info_hash20:" + H
        + b"4:porti6881e5:token3:toke1:q13:announce_peer1:t2:aa1:y1:qe")


# --- their replies ---------------------------------------------------------------------------

NODE = B + bytes([127, 0, 0, 2]) + b"\x1a\xe1"                 # 127.0.0.2:6881
NODE6 = A + bytes(15) + b"\x01" + b"\x1a\xe2"                  # [::1]:6882


def test_libtorrent_get_peers_reply_with_extra_keys():
    data = (b"d2:ip6:" + bytes([127, 0, 0, 1]) + b"\x30\x39"
            + b"1:rd2:id20:" + B + b"5:nodes26:" + NODE + b"1:pi12345e5:token4:\x01\x02\x03\x04"
            + b"6:valuesl6:" + bytes([10, 0, 0, 1]) + b"\x00\x50" + b"18:" + bytes(15) + b"\x01\x00\x51" + b"e"
            + b"e1:t2:aa1:v4:LT\x02\x001:y1:re")
    message = krpc.decode_message(data)
    assert message == Response(b"aa", B, (NodeInfo(B, "127.0.0.2", 6881),), (),
                               (PeerAddress("10.0.0.1", 80), PeerAddress("::1", 81)), b"\x01\x02\x03\x04",
                               PeerAddress("127.0.0.1", 12345))


def test_nodes6_are_decoded():
    data = b"d1:rd2:id20:" + B + b"6:nodes638:" + NODE6 + b"e1:t2:aa1:y1:re"
    reply = krpc.decode_message(data)
    assert isinstance(reply, Response) and reply.nodes6 == (NodeInfo(A, "::1", 6882),)


def test_error_reply_with_an_r_dict():
    data = b"d1:eli203e13:invalid tokene1:rd2:id20:" + B + b"e1:t2:aa1:y1:ee"
    assert krpc.decode_message(data) == ErrorReply(b"aa", 203, "invalid token")


def test_malformed_error_is_still_an_error():
    assert krpc.decode_message(b"d1:e3:bad1:t2:aa1:y1:ee") == ErrorReply(b"aa", krpc.GENERIC_ERROR, "malformed error")


# --- their queries ---------------------------------------------------------------------------

def test_announce_query_with_implied_port():
    data = (b"d1:ad2:id20:" + B + b"12:implied_porti1e9:info_hash20:" + H
            + b"4:porti0e5:token4:abcde1:q13:announce_peer1:t2:xy1:y1:qe")
    assert krpc.decode_message(data) == Query(b"xy", krpc.ANNOUNCE_PEER, B, H, b"abcd", 0, True)


def test_read_only_query():
    data = b"d1:ad2:id20:" + B + b"e1:q4:ping2:roi1e1:t2:xy1:y1:qe"
    query = krpc.decode_message(data)
    assert isinstance(query, Query) and query.read_only


# --- hostile input -----------------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    b"", b"garbage", b"i42e", b"le", b"d1:y1:qe",                          # not KRPC at all
    b"d1:t0:1:y1:re",                                                       # empty transaction id
    b"d1:rd2:id3:abce1:t2:aa1:y1:re",                                       # short node id
    b"d1:ad2:id20:" + B + b"e1:q9:get_peers1:t2:aa1:y1:qe",                 # get_peers without info_hash
    b"d1:ad2:id20:" + B + b"9:info_hash20:" + H + b"4:porti0e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe",
    b"d1:t2:aa1:y1:ze",                                                     # unknown type
])
def test_malformed_datagrams_raise_only_krpc_error(data):
    with pytest.raises(KrpcError):
        krpc.decode_message(data)


def test_ten_thousand_nodes_are_cut_to_the_bound():
    nodes = b"".join(i.to_bytes(20, "big") + bytes([127, 0, 0, 1]) + (1000 + i % 60000).to_bytes(2, "big")
                     for i in range(10_000))
    data = b"d1:rd2:id20:" + B + b"5:nodes" + str(len(nodes)).encode() + b":" + nodes + b"e1:t2:aa1:y1:re"
    reply = krpc.decode_message(data)
    assert isinstance(reply, Response) and len(reply.nodes) == krpc.MAX_NODES


def test_ragged_nodes_and_port_zero_are_skipped():
    zero_port = B + bytes([127, 0, 0, 3]) + b"\x00\x00"
    nodes = NODE + zero_port + b"tail"
    reply = krpc.decode_message(b"d1:rd2:id20:" + B + b"5:nodes" + str(len(nodes)).encode() + b":" + nodes
                                + b"e1:t2:aa1:y1:re")
    assert isinstance(reply, Response) and reply.nodes == (NodeInfo(B, "127.0.0.2", 6881),)


def test_values_of_the_wrong_type_are_ignored():
    reply = krpc.decode_message(b"d1:rd2:id20:" + B + b"6:valuesli1e3:abc6:" + bytes([1, 2, 3, 4, 0, 0])
                                + b"ee1:t2:aa1:y1:re")
    assert isinstance(reply, Response) and reply.values == ()


def test_our_reply_round_trips():
    body = krpc.ReplyBody([NodeInfo(B, "127.0.0.2", 6881)], [NodeInfo(A, "::1", 6882)],
                          [PeerAddress("10.0.0.1", 80)], b"tok")
    data = krpc.encode_response(b"zz", A, body, PeerAddress("127.0.0.9", 999))
    assert krpc.decode_message(data) == Response(b"zz", A, (NodeInfo(B, "127.0.0.2", 6881),),
                                                 (NodeInfo(A, "::1", 6882),), (PeerAddress("10.0.0.1", 80),),
                                                 b"tok", PeerAddress("127.0.0.9", 999))
