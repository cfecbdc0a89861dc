"""A DHT node (BEP 5) over asyncio UDP: one socket per address family.

The protocol is in app.core.dht (codec, routing table, tokens, lookup); this
module sends what it decides and feeds it what arrives. It answers others'
queries (rate-limited per source), unless read-only (BEP 43), and everything
it does runs in the background of a download: nothing here may stall one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.core.dht import krpc
from app.core.dht.krpc import NodeInfo, Response
from app.core.dht.lookup import Lookup
from app.core.dht.node_id import AddressVote, is_valid_node_id, node_id_for
from app.core.dht.responder import Responder
from app.core.dht.routing import RoutingTable, random_id_in_bucket
from app.core.dht.tokens import PeerStore, TokenIssuer
from app.core.dht.transactions import Transactions
from app.core.tracker import PeerAddress
from app.io import dht_state, trace

log = logging.getLogger(__name__)

DEFAULT_ROUTERS = (("router.bittorrent.com", 6881), ("router.utorrent.com", 6881),
                   ("dht.transmissionbt.com", 6881), ("dht.libtorrent.org", 25401))
QUERY_TIMEOUT = 1.5
RESOLVE_TIMEOUT = 2.0
QUERIES_PER_SECOND = 20       # from one source IP; beyond, its queries are dropped
ALL_QUERIES_PER_SECOND = 500
REFRESH_CHECK = 60.0         # seconds between looks for buckets unchanged for 15 minutes
READY_NODES = 8              # nodes known when lookups need not wait for the bootstrap to end
MAX_PEER_CONTACTS = 200      # swarm peers' nodes (PORT messages) pinged in one run
UNKNOWN_ID = bytes(20)        # routers' ids are not known before they answer


@dataclass(frozen=True)
class DhtConfig:
    port: int = 6881                       # tried first; any free port otherwise
    bootstrap: tuple[tuple[str, int], ...] | None = None   # None: the public routers
    read_only: bool = False                # BEP 43: ask, never answer
    state_path: Path | None = field(default_factory=dht_state.default_state_path)
    hosts: tuple[str, ...] = ("0.0.0.0", "::")
    query_timeout: float = QUERY_TIMEOUT


@dataclass
class LookupResult:
    peers: list[PeerAddress]
    closest: list[tuple[NodeInfo, bytes | None]]   # nodes nearest the target, with their tokens
    queries: int = 0


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, node: DhtNode) -> None:
        self.node = node

    def datagram_received(self, data: bytes, addr: tuple) -> None:   # type: ignore[type-arg]
        try:
            self.node._on_datagram(data, PeerAddress(str(addr[0]), int(addr[1])))
        except Exception:   # one odd datagram must never end the node
            log.debug("DHT datagram from %s not handled", addr, exc_info=True)

    def error_received(self, exc: Exception) -> None:
        log.debug("DHT socket: %s", exc)


class DhtNode:
    def __init__(self, config: DhtConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        saved = dht_state.load_state(config.state_path)
        self._saved_nodes = saved.nodes
        self.external_ip = saved.external_ip
        self.node_id = our_node_id(saved.node_id, saved.external_ip)
        self._address_vote = AddressVote()   # what nodes say our address is (their replies' `ip`)
        self.table = RoutingTable(self.node_id)
        self.responder = Responder(self.table, TokenIssuer(lambda: os.urandom(16), clock()), PeerStore())
        self._transactions: Transactions[asyncio.Future[Response]] = Transactions(lambda: os.urandom(2))
        self._transports: dict[int, asyncio.DatagramTransport] = {}
        self._routers: list[PeerAddress] = []
        self._rate: dict[str, int] = {}
        self._rate_total = 0
        self._rate_second = 0
        self.ready = asyncio.Event()
        self.port: int | None = None
        self._bootstrap_task: asyncio.Task[None] | None = None
        self._contacted: set[PeerAddress] = set()             # nodes named by swarm peers (contact)
        self._contact_tasks: set[asyncio.Task[bytes]] = set()

    # --- start and stop ---------------------------------------------------------------

    async def start(self) -> DhtNode:
        loop = asyncio.get_running_loop()
        for host in self.config.hosts:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            for port in dict.fromkeys((self.port or self.config.port, 0)):
                try:
                    transport, _ = await loop.create_datagram_endpoint(
                        lambda: _Protocol(self), sock=_udp_socket(family, host, port))
                except OSError:
                    continue
                self._transports[family] = transport
                self.port = self.port or transport.get_extra_info("sockname")[1]
                break
        if not self._transports:
            raise OSError("cannot open a UDP socket for the DHT")
        log.info("DHT node %s on UDP port %s", self.node_id.hex()[:12], self.port)
        self._bootstrap_task = asyncio.create_task(self._bootstrap())
        return self

    async def close(self) -> None:
        if self._bootstrap_task is not None:
            self._bootstrap_task.cancel()
        for task in list(self._contact_tasks):
            task.cancel()
        for transport in self._transports.values():
            transport.close()
        self._transports.clear()
        nodes = self.table.nodes(self.clock(), answered_only=True)   # hearsay is not worth keeping
        if nodes:
            external = self._address_vote.winner() or self.external_ip
            dht_state.save_state(self.config.state_path, self.node_id, nodes, external)

    async def __aenter__(self) -> DhtNode:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _bootstrap(self) -> None:
        """Saved nodes and routers, then a lookup of our own id fills the table."""
        try:
            hosts = list(DEFAULT_ROUTERS if self.config.bootstrap is None else self.config.bootstrap)
            self._routers = await resolve_async(hosts, RESOLVE_TIMEOUT)
            seeds = self._saved_nodes + [NodeInfo(UNKNOWN_ID, a.host, a.port) for a in self._routers]
            if seeds:
                await self.lookup(self.node_id, seeds=seeds, want_peers=False)
            log.info("DHT bootstrap done: %d nodes known", len(self.table))
        finally:
            self.ready.set()
        while True:   # a long run (seeding) keeps its table fresh: BEP 5's bucket refresh
            await asyncio.sleep(REFRESH_CHECK)
            for index in self.table.stale_buckets(self.clock())[:2]:
                await self.lookup(random_id_in_bucket(self.node_id, index, os.urandom(20)), want_peers=False)

    # --- datagrams ---------------------------------------------------------------------

    def _send(self, data: bytes, address: PeerAddress) -> bool:
        transport = self._transports.get(socket.AF_INET6 if ":" in address.host else socket.AF_INET)
        if transport is None or transport.is_closing():
            return False
        transport.sendto(data, (address.host, address.port))
        if trace.ACTIVE is not None:
            trace.ACTIVE.krpc_datagram(trace.SENT, address, data)
        return True

    def _on_datagram(self, data: bytes, source: PeerAddress) -> None:
        if trace.ACTIVE is not None:
            trace.ACTIVE.krpc_datagram(trace.RECEIVED, source, data)
        try:
            message = krpc.decode_message(data)
        except krpc.KrpcError:
            return
        if isinstance(message, krpc.Query):
            if not self.config.read_only and self._allow(source.host):
                self._send(self.responder.answer(message, source, self.clock()), source)
            return
        future = self._transactions.match(message.tid, source)
        if future is None or future.done():
            return   # an id we never used, or a reply from an address we did not ask
        if isinstance(message, krpc.ErrorReply):
            future.set_exception(krpc.KrpcError(f"error {message.code}: {message.message}"))
        else:
            if message.seen_as is not None:
                self._address_vote.add(message.sender, message.seen_as.host)
            future.set_result(message)

    def _allow(self, host: str) -> bool:
        """Incoming query rate limit: per source IP and overall, per second."""
        second = int(self.clock())
        if second != self._rate_second:
            self._rate_second, self._rate_total = second, 0
            self._rate.clear()
        count = self._rate.get(host, 0) + 1
        if count > QUERIES_PER_SECOND or self._rate_total >= ALL_QUERIES_PER_SECOND or len(self._rate) > 4096:
            return False
        self._rate[host] = count
        self._rate_total += 1
        return True

    async def query(self, address: PeerAddress, build: Callable[[bytes], bytes],
                    timeout: float | None = None) -> Response:
        """One query and its reply; TimeoutError, KrpcError (an error reply) or OSError."""
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        tid = self._transactions.open(address, self.clock(), future)
        if tid is None:
            raise OSError("too many DHT queries in flight")
        try:
            if not self._send(build(tid), address):
                raise OSError(f"no socket for {address}")
            async with asyncio.timeout(timeout or self.config.query_timeout):
                return await future
        finally:
            self._transactions.cancel(tid)

    def contact(self, address: PeerAddress) -> None:
        """A swarm peer's node (BEP 5 PORT message): pinged in the background, and added to
        the table if it answers. Each address once per run, and only so many in all."""
        if address in self._contacted or len(self._contacted) >= MAX_PEER_CONTACTS:
            return
        self._contacted.add(address)
        task = asyncio.create_task(self.ping(address))
        self._contact_tasks.add(task)
        task.add_done_callback(self._contact_done)

    def _contact_done(self, task: asyncio.Task[bytes]) -> None:
        self._contact_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("DHT node from a PORT message did not answer: %s", task.exception())

    async def ping(self, address: PeerAddress) -> bytes:
        reply = await self.query(address, lambda tid: krpc.ping(tid, self.node_id, self.config.read_only))
        self.table.add(NodeInfo(reply.sender, address.host, address.port), self.clock(), replied=True)
        return reply.sender

    # --- lookups -----------------------------------------------------------------------

    def _want(self) -> tuple[bytes, ...]:
        return (b"n4", b"n6") if len(self._transports) > 1 else ()

    async def lookup(self, target: bytes, *, want_peers: bool = True, seeds: Sequence[NodeInfo] = (),
                     on_peers: Callable[[list[PeerAddress]], None] | None = None) -> LookupResult:
        """An iterative find_node or get_peers; `on_peers` hears of peers as they come."""
        start = list(seeds) or self.table.closest(target, 16) or \
            [NodeInfo(UNKNOWN_ID, a.host, a.port) for a in self._routers]
        lookup = Lookup(target, self.node_id, start, timeout=self.config.query_timeout)
        ro, want = self.config.read_only, self._want()

        def build(tid: bytes) -> bytes:
            if want_peers:
                return krpc.get_peers(tid, self.node_id, target, ro, want)
            return krpc.find_node(tid, self.node_id, target, ro, want)
        pending: dict[asyncio.Task[Response], NodeInfo] = {}
        try:
            while True:
                for node in lookup.next_queries(self.clock()):
                    pending[asyncio.create_task(self.query(node.address, build))] = node
                if not pending:
                    break
                # Wake up now and then too: a slow query frees its slot (Lookup.next_queries).
                done, _ = await asyncio.wait(pending, timeout=0.3, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    self._settle(lookup, pending.pop(task), task, on_peers)
        finally:
            for task in pending:
                task.cancel()
        return LookupResult(list(lookup.peers), lookup.closest_replied(), lookup.queries)

    def _settle(self, lookup: Lookup, node: NodeInfo, task: asyncio.Task[Response],
                on_peers: Callable[[list[PeerAddress]], None] | None) -> None:
        now = self.clock()
        try:
            reply = task.result()
        except (TimeoutError, OSError, krpc.KrpcError):
            lookup.on_failure(node.address)
            if node.id != UNKNOWN_ID:
                self.table.failed(node.id)
            return
        self.table.add(NodeInfo(reply.sender, node.host, node.port), now, replied=True)
        for other in reply.nodes + reply.nodes6:
            self.table.add(other, now)
        if len(self.table) >= READY_NODES:
            self.ready.set()   # enough to start lookups while the bootstrap goes on
        new = lookup.on_reply(node.address, reply.sender, reply.nodes + reply.nodes6, reply.values, reply.token)
        if new and on_peers is not None:
            on_peers(new)

    async def get_peers(self, info_hash: bytes, on_peers: Callable[[list[PeerAddress]], None] | None = None,
                        ready_timeout: float = 5.0) -> LookupResult:
        """Peers of a torrent, after the bootstrap (waited for at most `ready_timeout`)."""
        try:
            async with asyncio.timeout(ready_timeout):
                await self.ready.wait()
        except TimeoutError:
            pass
        return await self.lookup(info_hash, on_peers=on_peers)

    async def announce(self, info_hash: bytes, port: int | None, result: LookupResult) -> int:
        """announce_peer to the closest nodes that gave a token; how many accepted.
        Without a port (None), the nodes store our UDP source port (implied_port)."""
        targets = [(node, token) for node, token in result.closest if token is not None]

        async def one(node: NodeInfo, token: bytes) -> bool:
            try:
                await self.query(node.address, lambda tid: krpc.announce_peer(
                    tid, self.node_id, info_hash, port or self.port or 0, token,
                    implied_port=port is None, read_only=self.config.read_only))
            except (TimeoutError, OSError, krpc.KrpcError):
                return False
            return True
        results = await asyncio.gather(*(one(n, t) for n, t in targets))
        return sum(results)


def our_node_id(saved: bytes | None, external_ip: str | None) -> bytes:
    """The saved id while it suits our external address (BEP 42), else a new one made for
    that address; random when the address is not known yet."""
    if external_ip is None:
        return saved or os.urandom(20)
    if saved is not None and is_valid_node_id(saved, external_ip):
        return saved
    filler = os.urandom(18)
    return node_id_for(external_ip, filler[0], filler[1:])


def _udp_socket(family: int, host: str, port: int) -> socket.socket:
    """A bound UDP socket; an IPv6 one is IPv6 only, so both families can share one port number."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def resolve_async(hosts: list[tuple[str, int]], timeout: float) -> list[PeerAddress]:
    """dht_state.resolve in a daemon thread: exiting never waits for a hung resolver."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[list[PeerAddress]] = loop.create_future()

    def deliver(found: list[PeerAddress]) -> None:
        if not future.done():
            future.set_result(found)

    def work() -> None:
        found = dht_state.resolve(hosts, timeout)
        try:
            loop.call_soon_threadsafe(deliver, found)
        except RuntimeError:
            pass   # the loop is gone
    threading.Thread(target=work, daemon=True).start()
    try:
        async with asyncio.timeout(timeout + 0.5):
            return await future
    except TimeoutError:
        return []
