"""app/core/dht: routing table, tokens and peer store, transactions, the responder, and the
iterative lookup as a state machine driven by hand with an injected clock."""

from app.core.dht import krpc
from app.core.dht.krpc import NodeInfo, Query
from app.core.dht.lookup import Lookup
from app.core.dht.responder import Responder
from app.core.dht.routing import GOOD_FOR, RoutingTable, distance, random_id_in_bucket, shared_bits
from app.core.dht.tokens import MAX_PEERS_PER_TORRENT, PeerStore, TokenIssuer
from app.core.dht.transactions import Transactions
from app.core.tracker import PeerAddress

OWN = bytes(20)
H = b"\xff" * 20


def nid(value: int) -> bytes:
    return value.to_bytes(20, "big")


def node(value: int, port: int | None = None) -> NodeInfo:
    return NodeInfo(nid(value), "127.0.0.1", port or 1000 + value % 60000)


# --- routing table ------------------------------------------------------------------------

def test_distance_and_shared_bits():
    assert distance(nid(5), nid(3)) == 6
    assert shared_bits(OWN, nid(1)) == 159 and shared_bits(OWN, b"\x80" + bytes(19)) == 0


def test_a_bucket_holds_k_nodes_and_keeps_spares():
    table = RoutingTable(OWN, k=8)
    far = [NodeInfo(b"\x80" + bytes([i]) + bytes(18), "127.0.0.1", 2000 + i) for i in range(12)]
    added = [table.add(n, 0.0, replied=True) for n in far]
    assert added == [True] * 8 + [False] * 4
    assert len(table) == 8
    # failures make a node bad; a bad node gives its place to a spare
    table.failed(far[0].id)
    assert table.get(far[0].id) is not None
    table.failed(far[0].id)
    assert table.get(far[0].id) is None and table.get(far[8].id) is not None


def test_liveness_good_questionable_bad():
    table = RoutingTable(OWN)
    table.add(node(7), 0.0, replied=True)
    entry = table.get(nid(7))
    assert entry is not None and entry.good(10.0)
    assert not entry.good(GOOD_FOR + 1) and table.questionable(GOOD_FOR + 1, 8) == [node(7)]
    table.failed(nid(7))
    table.failed(nid(7))
    assert entry.bad() and table.closest(nid(7)) == []


def test_closest_sorts_by_xor_and_skips_own_id():
    table = RoutingTable(OWN)
    for value in (1, 2, 3, 8, 9, 100):
        table.add(node(value), 0.0)
    assert not table.add(NodeInfo(OWN, "127.0.0.1", 1), 0.0)
    assert [int.from_bytes(n.id, "big") for n in table.closest(nid(8), 3)] == [8, 9, 1]


def test_an_address_that_changes_id_is_replaced():
    table = RoutingTable(OWN)
    table.add(NodeInfo(nid(1), "127.0.0.1", 5000), 0.0)
    table.add(NodeInfo(nid(2), "127.0.0.1", 5000), 0.0)
    assert len(table) == 1 and table.get(nid(1)) is None


def test_refresh_target_lands_in_its_bucket():
    for index in (0, 5, 159):
        target = random_id_in_bucket(OWN, index, b"\xaa" * 20)
        assert shared_bits(OWN, target) == index


# --- tokens and the peer store --------------------------------------------------------------

def test_tokens_are_bound_to_the_ip_and_expire_after_two_rotations():
    secrets = iter([b"s1", b"s2", b"s3", b"s4"])
    issuer = TokenIssuer(lambda: next(secrets), now=0.0)
    token = issuer.issue("10.0.0.1", H, 0.0)
    assert issuer.valid(token, "10.0.0.1", H, 100.0)
    assert not issuer.valid(token, "10.0.0.2", H, 100.0)          # another IP
    assert not issuer.valid(token, "10.0.0.1", OWN, 100.0)         # another info hash
    assert not issuer.valid(b"bogus", "10.0.0.1", H, 100.0)
    assert issuer.valid(token, "10.0.0.1", H, 350.0)               # the previous secret still counts
    assert not issuer.valid(token, "10.0.0.1", H, 700.0)           # two rotations later: gone


def test_peer_store_is_bounded_and_expires():
    store = PeerStore()
    for port in range(1, MAX_PEERS_PER_TORRENT + 50):
        store.add(H, PeerAddress("10.0.0.1", port), 0.0)
    assert len(store.get(H, 1.0, limit=10_000)) == MAX_PEERS_PER_TORRENT
    assert store.get(H, 31 * 60.0) == []


# --- transactions -------------------------------------------------------------------------

def test_transactions_match_only_our_id_from_the_address_asked():
    ids = iter([b"t1", b"t2"])
    pending: Transactions[str] = Transactions(lambda: next(ids))
    asked = PeerAddress("10.0.0.1", 1)
    tid = pending.open(asked, 0.0, "ping")
    assert tid == b"t1"
    assert pending.match(b"zz", asked) is None                          # wrong transaction id
    assert pending.match(tid, PeerAddress("10.0.0.9", 1)) is None       # a stranger's reply
    assert pending.match(tid, asked) == "ping"
    assert pending.match(tid, asked) is None                            # only once
    pending.open(asked, 0.0, "late")
    assert [p.context for p in pending.expire(5.0, 2.0)] == ["late"] and len(pending) == 0


def test_transactions_are_bounded():
    counter = iter(range(10_000))
    pending: Transactions[None] = Transactions(lambda: next(counter).to_bytes(2, "big"), limit=3)
    assert [pending.open(PeerAddress("10.0.0.1", 1), 0.0, None) is not None for _ in range(4)] == \
        [True, True, True, False]


# --- the responder ------------------------------------------------------------------------

def responder() -> Responder:
    return Responder(RoutingTable(OWN), TokenIssuer(lambda: b"secret", 0.0), PeerStore())


def test_get_peers_then_announce_with_the_token():
    r = responder()
    asker = PeerAddress("10.0.0.1", 7000)
    reply = krpc.decode_message(r.answer(Query(b"t1", krpc.GET_PEERS, nid(9), H), asker, 0.0))
    assert isinstance(reply, krpc.Response) and reply.token and reply.values == ()
    ok = r.answer(Query(b"t2", krpc.ANNOUNCE_PEER, nid(9), H, reply.token, 6881), asker, 1.0)
    assert isinstance(krpc.decode_message(ok), krpc.Response)
    again = krpc.decode_message(r.answer(Query(b"t3", krpc.GET_PEERS, nid(10), H), PeerAddress("10.0.0.2", 1), 2.0))
    assert isinstance(again, krpc.Response) and again.values == (PeerAddress("10.0.0.1", 6881),)


def test_announce_with_a_bogus_token_is_refused():
    r = responder()
    bad = r.answer(Query(b"t2", krpc.ANNOUNCE_PEER, nid(9), H, b"bogus", 6881), PeerAddress("10.0.0.1", 1), 0.0)
    assert krpc.decode_message(bad) == krpc.ErrorReply(b"t2", 203, "invalid token")


def test_read_only_queriers_stay_out_of_the_table():
    r = responder()
    r.answer(Query(b"t", krpc.PING, nid(9), read_only=True), PeerAddress("10.0.0.1", 1), 0.0)
    r.answer(Query(b"t", krpc.PING, nid(10)), PeerAddress("10.0.0.2", 1), 0.0)
    assert r.table.get(nid(9)) is None and r.table.get(nid(10)) is not None


# --- the lookup ---------------------------------------------------------------------------

def test_lookup_asks_alpha_closest_first_then_converges():
    seeds = [node(v) for v in (50, 40, 30, 20, 10)]
    lookup = Lookup(nid(0), OWN + b"", seeds, alpha=3, k=2, timeout=2.0)
    first = lookup.next_queries(0.0)
    assert [int.from_bytes(n.id, "big") for n in first] == [10, 20]   # k=2: only the 2 closest matter
    assert lookup.next_queries(0.0) == []                              # all that matter are in flight
    new = lookup.on_reply(node(10).address, nid(10), [node(1), node(2)], [PeerAddress("10.0.0.1", 80)], b"tk")
    assert new == [PeerAddress("10.0.0.1", 80)]
    assert [int.from_bytes(n.id, "big") for n in lookup.next_queries(0.1)] == [1, 2]   # 1 still in flight
    lookup.on_reply(node(1).address, nid(1))
    lookup.on_reply(node(20).address, nid(20))
    assert lookup.next_queries(0.2) == [] and not lookup.done
    lookup.on_reply(node(2).address, nid(2), [], [PeerAddress("10.0.0.1", 80)])   # a peer already known
    assert lookup.done and list(lookup.peers) == [PeerAddress("10.0.0.1", 80)]
    assert [n.id for n, _ in lookup.closest_replied(2)] == [nid(1), nid(2)]


def test_lookup_timeouts_by_the_injected_clock():
    lookup = Lookup(nid(0), OWN, [node(1), node(2)], alpha=3, k=8, timeout=2.0)
    lookup.next_queries(10.0)
    assert lookup.next_deadline() == 12.0
    assert lookup.expire(11.9) == []
    assert sorted(n.id for n in lookup.expire(12.0)) == [nid(1), nid(2)]
    assert lookup.done and lookup.closest_replied() == []


def test_replies_from_addresses_never_asked_are_ignored():
    lookup = Lookup(nid(0), OWN, [node(1)], alpha=1)
    assert lookup.on_reply(PeerAddress("10.9.9.9", 1), nid(5), [node(3)], [PeerAddress("1.2.3.4", 5)]) == []
    assert lookup.on_reply(node(1).address, nid(1)) == []      # known but not asked yet
    assert not lookup.peers and len(lookup.candidates) == 1


def test_a_node_answering_with_itself_ends_the_lookup():
    lookup = Lookup(nid(0), OWN, [node(1)], alpha=3)
    for _ in range(3):
        for asked in lookup.next_queries(0.0):
            lookup.on_reply(asked.address, asked.id, [asked, NodeInfo(OWN, "127.0.0.1", 9)])
    assert lookup.done and lookup.queries == 1


def test_an_endless_supply_of_new_nodes_hits_the_query_budget():
    lookup = Lookup(nid(0), OWN, [node(10_000)], alpha=3, max_queries=20)
    fresh = iter(range(1, 10**6))
    rounds = 0
    while not lookup.done:
        rounds += 1
        assert rounds < 100
        for asked in lookup.next_queries(0.0):
            closer = [node(100_000 - next(fresh)) for _ in range(16)]   # each batch nearer the target
            lookup.on_reply(asked.address, asked.id, closer)
    assert lookup.queries == 20 and len(lookup.candidates) <= 200


def test_only_nodes_that_answered_are_worth_saving():
    table = RoutingTable(OWN)
    table.add(node(1), 0.0, replied=True)
    table.add(node(2), 0.0)                      # only heard of, in someone's list
    assert table.nodes(0.0, answered_only=True) == [node(1)]
    assert sorted(table.nodes(0.0)) == sorted([node(1), node(2)])
