"""The DHT beside the trackers: peers for a torrent, and our announce.

`open_dht` starts a node only when it has somewhere to start from (bootstrap
routers or a saved table) and never for a private torrent (BEP 27).
`DhtFeed` runs next to a swarm: a get_peers lookup at once, its peers handed
to the swarm as they arrive, an announce of our listening port to the nodes
that gave tokens, and the same again every few minutes. The swarm never waits
for it when other sources give peers; it only holds off declaring "no peers"
while the first lookup runs (`pending`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from app.core.tracker import PeerAddress
from app.io import dht_state
from app.io.dht import DhtConfig, DhtNode

log = logging.getLogger(__name__)

RELOOKUP_SECONDS = 300.0
RETRY_SECONDS = 30.0          # sooner when the last lookup found nobody


@contextlib.asynccontextmanager
async def open_dht(config: DhtConfig | None, private: bool = False) -> AsyncIterator[DhtNode | None]:
    """A running node, or None when the DHT is off, pointless, or cannot open a socket."""
    if config is None or private:
        yield None
        return
    if config.bootstrap == () and not dht_state.load_state(config.state_path).nodes:
        yield None   # no router and no saved node: nobody to talk to
        return
    try:
        node = await DhtNode(config).start()
    except OSError as exc:
        log.info("DHT off: %s", exc)
        yield None
        return
    try:
        yield node
    finally:
        await node.close()


class DhtFeed:
    def __init__(self, node: DhtNode, info_hash: bytes, add_peers: Callable[[list[PeerAddress]], None],
                 port: Callable[[], int | None], also_as: tuple[bytes, ...] = ()) -> None:
        self.node = node
        self.info_hash = info_hash
        self.names = (info_hash, *also_as)   # a hybrid is also looked up and announced by its v2 hash
        self.add_peers = add_peers
        self.port = port            # our TCP port to announce; None: do not announce (not listening)
        self.lookups = 0
        self.found = 0
        self._running = True

    def pending(self) -> bool:
        """The first lookup has not finished: the swarm should not give up yet."""
        return self._running and self.lookups == 0

    def _on_peers(self, peers: list[PeerAddress]) -> None:
        self.found += len(peers)
        self.add_peers(peers)

    async def run(self) -> None:
        try:
            while True:
                found = 0
                for name in self.names:
                    found += await self._lookup_and_announce(name)
                await asyncio.sleep(RELOOKUP_SECONDS if found else RETRY_SECONDS)
        finally:
            self._running = False

    async def _lookup_and_announce(self, name: bytes) -> int:
        result = await self.node.get_peers(name, self._on_peers)
        if name == self.info_hash:
            self.lookups += 1
        log.info("DHT lookup %d of %s: %d peers from %d queries", self.lookups, name.hex()[:12],
                 len(result.peers), result.queries)
        port = self.port()
        if port:
            # Same TCP and UDP port: implied_port, so a NAT's mapping of our UDP port is what is stored.
            implied = port == self.node.port
            accepted = await self.node.announce(name, None if implied else port, result)
            log.info("DHT announce of port %d%s: %d nodes accepted", port, " (implied)" if implied else "", accepted)
        return len(result.peers)
