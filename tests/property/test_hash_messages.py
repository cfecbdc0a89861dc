"""Properties of the BEP 52 hash messages and the hash exchange: frames round trip,
arbitrary payloads parse or raise ProtocolError (never anything else), every answer we
give proves itself against the root, and any change to an answer is caught."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.core import messages as msg
from app.core.errors import ProtocolError
from app.core.hash_exchange import answer_hash_request, verified_nodes
from app.core.merkle import next_power_of_two
from app.core.peer_wire import MessageReader
from support.properties import property_settings
from support.v2_layers import make_info

SETTINGS = property_settings(200)
HEIGHT = 2   # support.v2_layers: 4 blocks a piece

u32 = st.integers(0, 2**32 - 1)
roots = st.binary(min_size=32, max_size=32)


@SETTINGS
@given(roots, u32, u32, u32, u32, st.sampled_from([msg.HashRequest, msg.HashReject]))
def test_request_and_reject_round_trip(root, base, index, length, proof, cls):
    message = cls(root, base, index, length, proof)
    assert MessageReader().feed(message.encode()) == [message]


@SETTINGS
@given(roots, u32, u32, st.integers(1, 600), st.integers(0, 12), st.data())
def test_hashes_round_trip(root, base, index, length, proof, data):
    count = length + msg.uncle_count(length, proof)
    hashes = tuple(data.draw(st.lists(roots, min_size=count, max_size=count)))
    message = msg.Hashes(root, base, index, length, proof, hashes)
    assert MessageReader().feed(message.encode()) == [message]


@SETTINGS
@given(st.sampled_from([21, 22, 23]), st.binary(max_size=200))
def test_any_payload_parses_or_is_a_protocol_error(message_id, payload):
    try:
        parsed = msg.parse_message(message_id, payload)
    except ProtocolError:
        return
    assert parsed.encode()[5:] == payload


@SETTINGS
@given(st.integers(2, 2100), st.data())
def test_every_answer_proves_itself_and_every_change_is_caught(pieces, data):
    info = make_info([pieces], seed=pieces)
    root = info.files[0].pieces_root
    width = next_power_of_two(pieces)
    top = width.bit_length() - 1                      # the root's level above the piece layer
    level = data.draw(st.integers(0, top - 1))
    layer_width = width >> level
    length = 2 ** data.draw(st.integers(1, min(9, layer_width.bit_length() - 1)))
    index = length * data.draw(st.integers(0, layer_width // length - 1))
    reply = answer_hash_request(info, msg.HashRequest(root, HEIGHT + level, index, length, top - level - 1))
    assert isinstance(reply, msg.Hashes)
    assert verified_nodes(reply, root, top - level) == reply.base
    if level == 0:
        assert reply.base[:max(0, pieces - index)] == info.piece_layers[root][index:index + length]
    spoilt = list(reply.hashes)
    at = data.draw(st.integers(0, len(spoilt) - 1))
    spoilt[at] = bytes(a ^ 1 for a in spoilt[at])
    try:
        verified_nodes(msg.Hashes(*reply.key, tuple(spoilt)), root, top - level)
    except ProtocolError:
        return
    raise AssertionError("a changed hash was accepted")
