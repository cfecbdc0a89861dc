"""Hostile DHT nodes: malformed KRPC, wrong transaction ids, a node list as large as a
datagram holds, replies from addresses never asked, a node that answers with itself, and
bogus tokens. None may raise, grow memory without bound, or stall our node or a download."""
from __future__ import annotations

import asyncio
import os
import socket
import threading
import time

import pytest

from app.core import bencode
from app.core.dht import krpc
from app.io.dht import DhtConfig, DhtNode
from support.checks import assert_ok
from support.cli import run_cli
from support.net import free_port


class EvilNode:
    """A UDP 'node' on 127.0.0.1 whose every answer is some kind of trouble (`mode`)."""

    def __init__(self, mode: str):
        self.mode = mode
        self.id = os.urandom(20)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # a second address, never asked
        self.other.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received = 0
        self.stopped = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stopped:
            try:
                data, addr = self.sock.recvfrom(65536)
            except OSError:
                continue
            self.received += 1
            try:
                query = bencode.decode(data)
                tid = query[b"t"]
            except Exception:
                continue
            for reply, via in self._replies(tid):
                via.sendto(reply, addr)

    def _replies(self, tid: bytes):
        me = krpc.NodeInfo(self.id, "127.0.0.1", self.port)
        if self.mode == "garbage":
            return [(b"d1:t" + tid, self.sock), (os.urandom(300), self.sock), (b"i42e", self.sock)]
        if self.mode == "wrong-tid":
            return [(krpc.encode_response(b"XX" + tid, self.id, krpc.ReplyBody([me])), self.sock)]
        if self.mode == "stranger":
            return [(krpc.encode_response(tid, self.id, krpc.ReplyBody([me])), self.other)]
        if self.mode == "itself":
            return [(krpc.encode_response(tid, self.id, krpc.ReplyBody([me] * 8, token=b"tok")), self.sock)]
        if self.mode == "huge":   # as many random nodes as one datagram holds (a 10,000-entry list cannot fit)
            nodes = b"".join(os.urandom(20) + bytes([127, 0, 0, 1]) + os.urandom(2) for _ in range(2400))
            reply = bencode.encode({b"t": tid, b"y": b"r", b"r": {b"id": self.id, b"nodes": nodes,
                                                                 b"token": b"tok"}})
            return [(reply, self.sock)]
        if self.mode == "bogus-token":
            return [(krpc.encode_error(tid, 203, "invalid token"), self.sock)]
        raise AssertionError(self.mode)

    def stop(self) -> None:
        self.stopped = True
        self.sock.close()
        self.other.close()


@pytest.fixture
def evil(request):
    node = EvilNode(request.param)
    yield node
    node.stop()


async def lookup_against(evil: EvilNode) -> tuple[float, int, list]:
    config = DhtConfig(port=0, bootstrap=(("127.0.0.1", evil.port),), state_path=None, hosts=("0.0.0.0",),
                       query_timeout=0.5)
    async with DhtNode(config) as node:
        started = time.monotonic()
        result = await node.get_peers(os.urandom(20), ready_timeout=3)
        await node.announce(os.urandom(20), 6881, result)
        return time.monotonic() - started, len(node.table), result.peers


@pytest.mark.parametrize("evil", ["garbage", "wrong-tid", "stranger", "itself", "huge", "bogus-token"],
                         indirect=True)
def test_lookup_survives_a_hostile_node(evil):
    seconds, table_size, peers = asyncio.run(lookup_against(evil))
    # "huge" hands out thousands of dead nodes: the query budget, not their number, bounds it
    assert seconds < 8, f"{evil.mode}: the lookup took {seconds:.1f} s"
    assert table_size <= 200 and peers == []
    assert evil.received <= 120, f"{evil.mode}: {evil.received} queries sent to one node"


@pytest.mark.parametrize("evil", ["itself"], indirect=True)
def test_queries_flood_is_rate_limited(evil):
    """Our node answers a flood of pings from one address only up to its per-second limit."""
    async def flood() -> int:
        config = DhtConfig(port=0, bootstrap=(), state_path=None, hosts=("0.0.0.0",))
        async with DhtNode(config) as node:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
            for i in range(300):
                sock.sendto(krpc.ping(i.to_bytes(2, "big"), os.urandom(20)), ("127.0.0.1", node.port))
            await asyncio.sleep(0.3)
            answers = 0
            while True:
                try:
                    sock.recv(2048)
                except BlockingIOError:
                    break
                answers += 1
            sock.close()
            return answers
    answers = asyncio.run(flood())
    assert 0 < answers <= 40


@pytest.mark.parametrize("evil", ["itself", "huge"], indirect=True)
def test_download_with_other_sources_is_not_stalled_by_the_dht(evil, single_swarm, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    spec = single_swarm.spec
    started = time.monotonic()
    result = run_cli("download", "-o", tmp_path / "out.bin", "--port", free_port(),
                     "--dht-bootstrap", f"127.0.0.1:{evil.port}", spec.torrent_path, timeout=30)
    assert_ok(result)
    assert (tmp_path / "out.bin").read_bytes() == spec.payload()
    assert time.monotonic() - started < 10
