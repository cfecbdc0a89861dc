"""The DHT's and PEX's decoders fed random and mutated datagrams: a value or the project's
own error (KrpcError / ProtocolError), never another exception; and whatever query decodes,
our responder answers it with a datagram that decodes again."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from app.core.dht import krpc
from app.core.dht.responder import Responder
from app.core.dht.routing import RoutingTable
from app.core.dht.tokens import PeerStore, TokenIssuer
from app.core.errors import ProtocolError
from app.core.pex import encode_pex, parse_pex
from app.core.tracker import PeerAddress
from support.properties import given_tests, property_settings

EXAMPLES = 300
PROPERTIES = 3
SETTINGS = property_settings(EXAMPLES)

ID = st.binary(min_size=20, max_size=20)
TID = st.binary(min_size=1, max_size=4)
ADDRESS = st.builds(PeerAddress, st.sampled_from(["10.0.0.1", "127.0.0.2", "::1"]), st.integers(1, 65535))
NODE = st.builds(krpc.NodeInfo, ID, st.sampled_from(["10.0.0.1", "127.0.0.2"]), st.integers(1, 65535))


def valid_datagrams() -> st.SearchStrategy[bytes]:
    body = st.builds(krpc.ReplyBody, st.lists(NODE, max_size=8), st.just([]), st.lists(ADDRESS, max_size=8),
                     st.none() | st.binary(min_size=1, max_size=8))
    return st.one_of(
        st.builds(krpc.ping, TID, ID, st.booleans()),
        st.builds(krpc.find_node, TID, ID, ID),
        st.builds(krpc.get_peers, TID, ID, ID, st.booleans(), st.just((b"n4", b"n6"))),
        st.builds(lambda t, i, h, p, tok: krpc.announce_peer(t, i, h, p, tok), TID, ID, ID,
                  st.integers(1, 65535), st.binary(min_size=1, max_size=8)),
        st.builds(krpc.encode_response, TID, ID, body, st.none() | ADDRESS),
        st.builds(krpc.encode_error, TID, st.integers(200, 205), st.text(max_size=20)))


@st.composite
def mutated(draw, base):
    data = bytearray(draw(base))
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    for _ in range(draw(st.integers(1, 4))):
        pos = rng.randrange(len(data)) if data else 0
        op = draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
        if op == "flip" and data:
            data[pos] ^= 1 << rng.randrange(8)
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from([b"i", b"e", b"l", b"d", b"20:", b"1:q", b"0:"]))
        elif op == "delete":
            del data[pos:pos + rng.randrange(1, 8)]
        else:
            del data[pos:]
    return bytes(data)


def fuzz(valid):
    return st.binary(max_size=64) | valid | mutated(valid)


@SETTINGS
@given(fuzz(valid_datagrams()))
def test_krpc_decoder(data):
    try:
        krpc.decode_message(data)
    except krpc.KrpcError:
        pass


@SETTINGS
@given(fuzz(valid_datagrams()))
def test_responder_answers_whatever_decodes(data):
    try:
        message = krpc.decode_message(data)
    except krpc.KrpcError:
        return
    if isinstance(message, krpc.Query):
        responder = Responder(RoutingTable(bytes(20)), TokenIssuer(lambda: b"s", 0.0), PeerStore())
        reply = responder.answer(message, PeerAddress("10.0.0.9", 1234), 0.0)
        assert isinstance(krpc.decode_message(reply), krpc.Response | krpc.ErrorReply)


@SETTINGS
@given(fuzz(st.builds(encode_pex, st.lists(st.tuples(ADDRESS, st.integers(0, 255)), max_size=6),
                      st.lists(ADDRESS, max_size=4))))
def test_pex_decoder(body):
    try:
        parse_pex(body)
    except ProtocolError:
        pass


def test_property_count():
    assert len(given_tests(globals())) == PROPERTIES
