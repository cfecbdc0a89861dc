"""BEP 52 hash messages: the wire format, answering from piece layers, fetching and
verifying layers, and two sessions exchanging them in memory."""

import hashlib

import pytest

from app.core import messages as m
from app.core.errors import ProtocolError
from app.core.hash_exchange import PieceTree, answer_hash_request, layer_request, verified_nodes
from app.core.layer_fetch import PieceLayerFetch, missing_layers
from app.core.merkle import pad_hash
from app.core.metainfo import FileEntry, Info
from app.core.peer_wire import decode_handshake, encode_handshake, reserved_bits
from app.core.pieces import LocalPieces
from app.core.session import HandshakeReceived, PeerSession, Phase, SessionConfig
from support.v2_layers import PIECE, make_info, random_layer

KIB = 1024
HEIGHT = 2                # PIECE is 4 blocks: the piece layer is at height 2
ROOT = bytes(range(32))


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def full_tree(layer, height=HEIGHT):
    """Every layer from the piece layer to the root, computed here independently."""
    width = 1
    while width < len(layer):
        width *= 2
    pad = bytes(32)
    for _ in range(height):
        pad = sha(pad + pad)
    nodes = list(layer) + [pad] * (width - len(layer))
    layers = [nodes]
    while len(nodes) > 1:
        nodes = [sha(nodes[i] + nodes[i + 1]) for i in range(0, len(nodes), 2)]
        layers.append(nodes)
    return layers


# --- messages -----------------------------------------------------------------------------

HEADER = ROOT + bytes.fromhex("00000002" "00000200" "00000200" "0000000a")


def test_hash_request_and_reject_frames():
    request = m.HashRequest(ROOT, 2, 512, 512, 10)
    assert request.encode() == b"\x00\x00\x00\x31\x15" + HEADER
    assert m.HashReject(ROOT, 2, 512, 512, 10).encode() == b"\x00\x00\x00\x31\x17" + HEADER
    assert m.parse_message(21, HEADER) == request
    assert m.parse_message(23, HEADER) == m.HashReject(*request.key)
    assert m.parse_message(23, HEADER) != request


def test_hashes_frame_and_its_count():
    hashes = tuple(bytes([i]) * 32 for i in range(3))
    message = m.Hashes(ROOT, 2, 0, 2, 1, hashes)      # 2 nodes and 1 uncle
    payload = ROOT + bytes.fromhex("00000002" "00000000" "00000002" "00000001") + b"".join(hashes)
    assert message.encode() == len(payload + b"x").to_bytes(4, "big") + b"\x16" + payload
    assert m.parse_message(22, payload) == message
    assert message.base == hashes[:2] and message.uncles == hashes[2:]


@pytest.mark.parametrize("length, proof_layers, uncles", [
    (2, 0, 0), (2, 1, 1), (2, 3, 3), (4, 1, 0), (4, 2, 1), (8, 2, 0), (8, 5, 3),
    (512, 8, 0), (512, 9, 1), (5, 2, 0), (5, 3, 1), (1, 0, 1)])
def test_uncle_count_follows_bep52(length, proof_layers, uncles):
    """The first log2(length) - 1 proof layers are implied by the nodes themselves."""
    assert m.uncle_count(length, proof_layers) == uncles


@pytest.mark.parametrize("message_id", [21, 23])
@pytest.mark.parametrize("size", [0, 47, 49, 80])
def test_request_and_reject_need_exactly_48_bytes(message_id, size):
    with pytest.raises(ProtocolError):
        m.parse_message(message_id, bytes(size))


@pytest.mark.parametrize("extra", [0, 1, 31, 33, 32 * 3, 32 * 5])
def test_hashes_of_the_wrong_size_or_count(extra):
    header = ROOT + bytes.fromhex("00000002" "00000000" "00000004" "00000003")   # 4 nodes + 2 uncles
    with pytest.raises(ProtocolError):
        m.parse_message(22, header + bytes(extra))
    assert len(m.parse_message(22, header + bytes(32 * 6)).hashes) == 6


def test_hashes_shorter_than_the_header():
    with pytest.raises(ProtocolError):
        m.parse_message(22, bytes(40))


def test_v2_reserved_bit():
    assert reserved_bits(v2=True) == bytes.fromhex("0000000000100010")
    assert reserved_bits(fast=True, v2=True) == bytes.fromhex("0000000000100014")
    assert reserved_bits() == bytes.fromhex("0000000000100000")   # unchanged by default
    assert decode_handshake(encode_handshake(bytes(20), bytes(20), reserved_bits(v2=True))).supports_v2
    assert not decode_handshake(encode_handshake(bytes(20), bytes(20), reserved_bits(fast=True))).supports_v2


# --- answering ----------------------------------------------------------------------------

@pytest.mark.parametrize("pieces", [2, 3, 5, 8, 13, 600, 1500])
def test_answers_every_aligned_range_with_its_uncles(pieces):
    layer = random_layer(pieces, pieces)
    tree = full_tree(layer)
    info = make_info([1])
    root = tree[-1][0]
    info = Info(**{**info.__dict__, "files": (FileEntry(("x",), pieces * PIECE, 0, root),),
                   "piece_layers": {root: tuple(layer)}})
    top = len(tree) - 1
    for level in range(top):
        width = len(tree[level])
        length = 2
        while length <= min(width, 1024):
            for index in sorted({0, width - length, length * ((width // length) // 2)}):
                proof = top - level - 1
                reply = answer_hash_request(info, m.HashRequest(root, HEIGHT + level, index, length, proof))
                assert isinstance(reply, m.Hashes), (level, index, length)
                assert list(reply.base) == tree[level][index:index + length]
                # uncles: the sibling of the subtree's top, then of each ancestor below the root
                span_level, position, uncles = level + length.bit_length() - 1, index // length, []
                while span_level < top:
                    uncles.append(tree[span_level][position ^ 1])
                    span_level, position = span_level + 1, position // 2
                assert list(reply.uncles) == uncles
                # our own verifier accepts our own answer
                assert list(verified_nodes(reply, root, top - level)) == tree[level][index:index + length]
            length *= 2


def test_fewer_proof_layers_give_fewer_uncles():
    info = make_info([1000])
    root = info.files[0].pieces_root
    reply = answer_hash_request(info, m.HashRequest(root, HEIGHT, 512, 512, 8))
    assert isinstance(reply, m.Hashes) and reply.uncles == ()
    reply = answer_hash_request(info, m.HashRequest(root, HEIGHT, 512, 4, 3))
    assert isinstance(reply, m.Hashes) and len(reply.uncles) == 2


@pytest.mark.parametrize("change", [
    {"base_layer": 0}, {"base_layer": 1},             # below the piece layer: leaves we do not keep
    {"base_layer": HEIGHT + 10},                       # the root layer (1000 pieces: 10 layers up)
    {"pieces_root": bytes(32)},                        # not a file of ours
    {"length": 3}, {"length": 1}, {"length": 0}, {"length": 1024 * 16},
    {"index": 256}, {"index": 1024 - 256, "length": 512},   # not a multiple of the length
    {"index": 1024},                                   # past the padded layer
    {"proof_layers": 10},                              # an uncle of the root
])
def test_rejects_what_cannot_be_answered(change):
    info = make_info([1000])
    fields = dict(pieces_root=info.files[0].pieces_root, base_layer=HEIGHT, index=512, length=512,
                  proof_layers=9)
    fields.update(change)
    request = m.HashRequest(**fields)
    assert answer_hash_request(info, request) == m.HashReject(*request.key)


def test_a_range_cut_short_by_the_end_of_the_layer():
    info = make_info([13])          # nodes 8..12 real, 13..15 padding
    root = info.files[0].pieces_root
    reply = answer_hash_request(info, m.HashRequest(root, HEIGHT, 8, 5, 3))
    assert isinstance(reply, m.Hashes) and len(reply.hashes) == 5 + 1
    assert list(verified_nodes(reply, root, 4)) == list(info.piece_layers[root][8:13])
    assert isinstance(answer_hash_request(info, m.HashRequest(root, HEIGHT, 8, 6, 3)), m.HashReject)


def test_no_answers_without_layers_or_for_small_files():
    info = make_info([40, 1], with_layers=False)
    for entry in info.files:
        request = m.HashRequest(entry.pieces_root, HEIGHT, 0, 2, 0)
        assert isinstance(answer_hash_request(info, request), m.HashReject)


def test_a_layer_that_does_not_match_its_root_is_never_served():
    info = make_info([8])
    root = info.files[0].pieces_root
    bad = Info(**{**info.__dict__, "piece_layers": {root: (bytes(32),) * 8}})
    assert isinstance(answer_hash_request(bad, m.HashRequest(root, HEIGHT, 0, 8, 2)), m.HashReject)


def test_padding_nodes_are_answered():
    info = make_info([5])
    root = info.files[0].pieces_root
    reply = answer_hash_request(info, m.HashRequest(root, HEIGHT, 4, 4, 2))
    assert isinstance(reply, m.Hashes)
    assert reply.base[1:] == (pad_hash(HEIGHT),) * 3
    assert PieceTree(info.piece_layers[root], PIECE).root == root


# --- fetching -----------------------------------------------------------------------------

def test_plan_covers_each_missing_layer_like_libtorrent():
    info = make_info([1000, 1, 5, 2], with_layers=False)
    fetch = PieceLayerFetch(info)
    roots = [f.pieces_root for f in info.files]
    assert [(r.pieces_root, r.base_layer, r.index, r.length, r.proof_layers) for r in fetch.requests()] == [
        (roots[0], HEIGHT, 0, 512, 9), (roots[0], HEIGHT, 512, 512, 9),
        (roots[2], HEIGHT, 0, 8, 2), (roots[3], HEIGHT, 0, 2, 0)]
    assert missing_layers(info) and not missing_layers(make_info([1000, 1, 5, 2]))


def test_fetch_assembles_the_layers_from_our_own_answers():
    full = make_info([1000, 1, 5, 2, 3000])
    fetch = PieceLayerFetch(make_info([1000, 1, 5, 2, 3000], with_layers=False))
    for request in reversed(fetch.requests()):
        reply = answer_hash_request(full, request)
        assert isinstance(reply, m.Hashes)
        assert fetch.add(reply)
        assert not fetch.add(reply)       # a second copy of an answer is no news
    assert fetch.complete
    result = fetch.result()
    assert dict(result.piece_layers) == dict(full.piece_layers)
    assert not missing_layers(result)


def test_hostile_replies_are_protocol_errors():
    full = make_info([1000])
    fetch = PieceLayerFetch(make_info([1000], with_layers=False))
    request = fetch.requests()[1]
    good = answer_hash_request(full, request)
    assert isinstance(good, m.Hashes)
    hashes = list(good.hashes)
    wrong_node = hashes[:]
    wrong_node[7] = bytes(32)
    wrong_uncle = hashes[:]
    wrong_uncle[-1] = bytes(32)
    swapped = hashes[:]
    swapped[0], swapped[1] = swapped[1], swapped[0]
    for bad in (wrong_node, wrong_uncle, swapped):
        with pytest.raises(ProtocolError, match="root"):
            fetch.add(m.Hashes(*request.key, tuple(bad)))
    # the right hashes under another header: not something we asked for
    with pytest.raises(ProtocolError, match="ask"):
        fetch.add(m.Hashes(request.pieces_root, HEIGHT, 512, 512, 10, tuple(hashes) + (bytes(32),)))
    with pytest.raises(ProtocolError, match="ask"):
        fetch.add(m.Hashes(bytes(32), *request.key[1:], good.hashes))
    assert not fetch.complete and len(fetch.requests()) == 2
    assert fetch.add(good)


def test_verifier_refuses_a_proof_that_stops_short_or_a_wrong_count():
    info = make_info([1000])
    root = info.files[0].pieces_root
    short = answer_hash_request(info, m.HashRequest(root, HEIGHT, 0, 512, 8))
    assert isinstance(short, m.Hashes)
    with pytest.raises(ProtocolError, match="reach"):
        verified_nodes(short, root, 10)
    with pytest.raises(ProtocolError):
        verified_nodes(m.Hashes(root, HEIGHT, 0, 512, 9, short.hashes[:-1] + (bytes(32), bytes(32))), root, 10)


def test_layer_request_is_cut_to_the_padded_layer():
    assert layer_request(ROOT, 5, PIECE, 0) == m.HashRequest(ROOT, HEIGHT, 0, 8, 2)
    assert layer_request(ROOT, 513, PIECE, 512) == m.HashRequest(ROOT, HEIGHT, 512, 512, 9)
    assert layer_request(ROOT, 2, 16 * KIB, 0) == m.HashRequest(ROOT, 0, 0, 2, 0)


# --- two sessions -------------------------------------------------------------------------

V1 = bytes(range(20))
V2 = bytes(range(100, 120))
ID_A = b"-PY0001-aaaaaaaaaaaa"
ID_B = b"-LT2000-bbbbbbbbbbbb"
SIZES = [PIECE] * 4


def v2_pair(a_config, b_config, sizes=SIZES):
    a = PeerSession(a_config, sizes, LocalPieces(len(sizes)) if sizes else None, initiator=True, now=0)
    b = PeerSession(b_config, sizes, LocalPieces(len(sizes), range(len(sizes))) if sizes else None,
                    initiator=False, now=0)
    return a, b


def pump(a, b):
    seen_a, seen_b = [], []
    for _ in range(20):
        to_b, to_a = a.data_to_send(0), b.data_to_send(0)
        b.receive_data(to_b)
        a.receive_data(to_a)
        new_a, new_b = a.next_events(0), b.next_events(0)
        seen_a += new_a
        seen_b += new_b
        if not (to_a or to_b or new_a or new_b):
            return seen_a, seen_b
    raise AssertionError("never quiet")


def config(peer_id, info_hash=V2, **kwargs):
    return SessionConfig(info_hash, peer_id, **kwargs)


def test_v2_torrent_pair_exchanges_hashes():
    info = make_info([4, 1])
    root = info.files[0].pieces_root
    a, b = v2_pair(config(ID_A, v2=True), config(ID_B, v2=True))
    hello = a.data_to_send(0)
    assert hello[20:28] == bytes.fromhex("0000000000100014")
    b.receive_data(hello)
    pump(a, b)
    assert a.v2 and b.v2
    request = layer_request(root, 4, PIECE, 0)
    a.request_hashes(request)
    _, seen_b = pump(a, b)
    assert seen_b == [request]
    b.send_hashes(answer_hash_request(info, request))
    seen_a, _ = pump(a, b)
    assert len(seen_a) == 1 and isinstance(seen_a[0], m.Hashes) and seen_a[0].key == request.key
    assert a.hash_requests_out == {}
    # a reject for an outstanding request is an event too
    other = m.HashRequest(root, 0, 0, 4, 1)
    a.request_hashes(other)
    _, seen_b = pump(a, b)
    b.send_hashes(answer_hash_request(info, seen_b[0]))
    seen_a, _ = pump(a, b)
    assert seen_a == [m.HashReject(*other.key)]


def test_hybrid_upgrade_to_the_v2_hash():
    """The initiator names the v1 hash with the v2 bit; the answer names the v2 hash."""
    a, b = v2_pair(config(ID_A, V1, v2=True, info_hash_v2=V2), config(ID_B, V1, v2=True, info_hash_v2=V2))
    a_hello = a.data_to_send(0)
    assert a_hello[28:48] == V1
    b.receive_data(a_hello)
    assert [type(e) for e in b.next_events(0)] == [HandshakeReceived]
    b_hello = b.data_to_send(0)
    assert b_hello[28:48] == V2 and b.v2
    a.receive_data(b_hello)
    a.next_events(0)
    assert a.v2


def test_hybrid_without_the_bit_stays_v1():
    a, b = v2_pair(config(ID_A, V1), config(ID_B, V1, v2=True, info_hash_v2=V2))
    pump(a, b)
    assert not a.v2 and not b.v2
    assert b.peer_handshake is not None and a.peer_handshake.info_hash == V1
    with pytest.raises(ValueError):
        a.request_hashes(m.HashRequest(ROOT, 0, 0, 2, 0))


def test_hybrid_peer_that_does_not_upgrade_stays_v1():
    a, b = v2_pair(config(ID_A, V1, v2=True, info_hash_v2=V2), config(ID_B, V1))
    pump(a, b)
    assert not a.v2 and not b.v2


def test_the_v2_hash_is_refused_when_we_do_not_speak_v2():
    a, b = v2_pair(config(ID_A, V2, v2=True), config(ID_B, V1, info_hash_v2=V2))
    with pytest.raises(ProtocolError, match="do not serve"):
        pump(a, b)


def answering_session(v2=True, sizes=SIZES):
    s = PeerSession(config(ID_A, v2=True), sizes, LocalPieces(len(sizes)) if sizes else None,
                    initiator=False, now=0)
    s.receive_data(encode_handshake(V2 if v2 else V1, ID_B, reserved_bits()))
    if not v2:
        with pytest.raises(ProtocolError):
            s.next_events(0)
        return None
    assert [type(e) for e in s.next_events(0)] == [HandshakeReceived]
    s.data_to_send(0)
    return s


def feed(s, *messages):
    s.receive_data(b"".join(message.encode() for message in messages))
    return s.next_events(0)


@pytest.mark.parametrize("message", [m.HashRequest(ROOT, 2, 0, 2, 0), m.HashReject(ROOT, 2, 0, 2, 0),
                                     m.Hashes(ROOT, 2, 0, 2, 0, (ROOT, ROOT))])
def test_hash_messages_on_a_v1_connection_are_protocol_errors(message):
    s = PeerSession(config(ID_A, V1), SIZES, LocalPieces(4), initiator=False, now=0)
    s.receive_data(encode_handshake(V1, ID_B, reserved_bits(v2=True)))
    s.next_events(0)
    assert not s.v2
    with pytest.raises(ProtocolError, match="v2"):
        feed(s, message)
    assert s.phase is Phase.CLOSED


def test_unasked_hashes_are_a_protocol_error_and_unasked_rejects_are_ignored():
    s = answering_session()
    assert feed(s, m.HashReject(ROOT, 2, 0, 2, 0)) == []
    with pytest.raises(ProtocolError, match="never asked"):
        feed(s, m.Hashes(ROOT, 2, 0, 2, 0, (ROOT, ROOT)))


def test_a_second_answer_to_one_request_is_unasked():
    s = answering_session()
    request = m.HashRequest(ROOT, 2, 0, 2, 0)
    s.request_hashes(request)
    assert feed(s, m.Hashes(*request.key, (ROOT, ROOT))) == [m.Hashes(*request.key, (ROOT, ROOT))]
    with pytest.raises(ProtocolError):
        feed(s, m.Hashes(*request.key, (ROOT, ROOT)))


def test_hash_requests_do_not_end_the_bitfield_moment():
    s = answering_session()
    assert feed(s, m.HashRequest(ROOT, 2, 0, 2, 0)) == [m.HashRequest(ROOT, 2, 0, 2, 0)]
    assert s.phase is Phase.BITFIELD


def test_before_the_metadata_hash_requests_are_rejected_by_the_session():
    s = answering_session(sizes=None)
    assert feed(s, m.HashRequest(ROOT, 2, 0, 2, 0)) == []
    assert m.parse_message(23, s.data_to_send(0)[5:]) == m.HashReject(ROOT, 2, 0, 2, 0)


def test_default_handshake_bytes_are_unchanged():
    s = PeerSession(SessionConfig(V1, ID_A, fast=False), None, None, initiator=True, now=0)
    assert s.data_to_send(0)[20:28] == bytes.fromhex("0000000000100000")


def test_trace_lines():
    from app.core import trace_format as fmt
    request = m.HashRequest(ROOT, 2, 0, 2, 1)
    assert fmt.format_message(request) == (
        f"hash_request pieces_root={ROOT.hex()} base_layer=2 index=0 length=2 proof_layers=1")
    assert fmt.format_message(m.Hashes(*request.key, (ROOT,) * 3)).endswith("proof_layers=1 (3 hashes)")
    assert fmt.format_message(m.HashReject(*request.key)).startswith("hash_reject pieces_root=")
    assert "v2 (BEP 52)" in fmt.reserved_names(reserved_bits(v2=True))
