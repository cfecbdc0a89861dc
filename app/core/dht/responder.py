"""Our answers to other nodes' queries (BEP 5): what a good DHT citizen replies.

ping: our id. find_node: the closest nodes we know. get_peers: a token bound
to the asker's IP, with the peers announced for that info hash, or the
closest nodes. announce_peer: stored if the token is ours for that IP. Every
querier (unless read-only, BEP 43) is a node we heard from.
"""

from __future__ import annotations

from app.core.dht import krpc
from app.core.dht.krpc import NodeInfo, Query, ReplyBody
from app.core.dht.routing import K, RoutingTable
from app.core.dht.tokens import PeerStore, TokenIssuer
from app.core.tracker import PeerAddress


class Responder:
    def __init__(self, table: RoutingTable, tokens: TokenIssuer, store: PeerStore) -> None:
        self.table = table
        self.tokens = tokens
        self.store = store

    def answer(self, query: Query, source: PeerAddress, now: float) -> bytes:
        """The datagram to send back to `source`."""
        own_id = self.table.own_id
        if not query.read_only:
            self.table.add(NodeInfo(query.sender, source.host, source.port), now, replied=True)
        if query.method == krpc.PING:
            return krpc.encode_response(query.tid, own_id, seen_as=source)
        if query.method == krpc.FIND_NODE and query.target is not None:
            return krpc.encode_response(query.tid, own_id, self._nodes(query, query.target, source), source)
        if query.method == krpc.GET_PEERS and query.target is not None:
            body = self._nodes(query, query.target, source)
            values = self.store.get(query.target, now)
            token = self.tokens.issue(source.host, query.target, now)
            return krpc.encode_response(query.tid, own_id, ReplyBody(body.nodes, body.nodes6, values, token),
                                        source)
        if query.method == krpc.ANNOUNCE_PEER and query.target is not None:
            if query.token is None or not self.tokens.valid(query.token, source.host, query.target, now):
                return krpc.encode_error(query.tid, krpc.PROTOCOL_ERROR, "invalid token")
            port = source.port if query.implied_port or query.port is None else query.port
            self.store.add(query.target, PeerAddress(source.host, port), now)
            return krpc.encode_response(query.tid, own_id, seen_as=source)
        return krpc.encode_error(query.tid, krpc.METHOD_UNKNOWN, "method unknown")

    def _nodes(self, query: Query, target: bytes, source: PeerAddress) -> ReplyBody:
        """Nodes of the family the asker is on, plus the other family when it asks (BEP 32 `want`)."""
        ipv6 = ":" in source.host
        want4 = b"n4" in query.want or (not query.want and not ipv6)
        want6 = b"n6" in query.want or (not query.want and ipv6)
        nodes4: list[NodeInfo] = self.table.closest(target, K, family=4) if want4 else []
        nodes6: list[NodeInfo] = self.table.closest(target, K, family=6) if want6 else []
        return ReplyBody(nodes4, nodes6)
