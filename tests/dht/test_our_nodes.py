"""Our own DHT nodes talking to each other in-process: over IPv6 (BEP 32, nodes6 and
18-byte peers), with announce_peer and its token, and read-only nodes (BEP 43)."""
from __future__ import annotations

import asyncio
import os

from app.core.tracker import PeerAddress
from app.io.dht import DhtConfig, DhtNode


def config(*bootstrap: tuple[str, int], read_only: bool = False) -> DhtConfig:
    return DhtConfig(port=0, bootstrap=tuple(bootstrap), state_path=None, read_only=read_only,
                     query_timeout=1.0)


def test_announce_and_get_peers_over_ipv6():
    info_hash = os.urandom(20)

    async def run() -> tuple[list[PeerAddress], int, bytes, bytes]:
        async with DhtNode(config()) as a:
            boot = ("::1", a.port)
            async with DhtNode(config(boot)) as b, DhtNode(config(boot, read_only=True)) as c:
                result = await b.get_peers(info_hash)
                accepted = await b.announce(info_hash, 4242, result)
                found = await c.get_peers(info_hash)
                pinged = await c.ping(PeerAddress("::1", a.port))
                return found.peers, accepted, pinged, a.node_id
    peers, accepted, pinged, a_id = asyncio.run(run())
    assert accepted >= 1
    assert PeerAddress("::1", 4242) in peers
    assert pinged == a_id


def test_read_only_node_answers_nobody_and_stays_out_of_tables():
    async def run() -> tuple[bool, int]:
        async with DhtNode(config()) as a, DhtNode(config(("127.0.0.1", a.port), read_only=True)) as ro:
            await ro.ready.wait()
            try:
                await a.ping(PeerAddress("127.0.0.1", ro.port))
                answered = True
            except TimeoutError:
                answered = False
            return answered, len(a.table)
    answered, table = asyncio.run(run())
    assert not answered and table == 0
