"""Hostile peers during the piece-layer fetch (BEP 52 hashes): bad proofs, wrong counts,
answers to nothing asked, rejects, silence, and peers without v2. Each such peer is
dropped; the layers still come from an honest peer, or the fetch fails with a clear error.

The peers are in-process asyncio servers on 127.0.0.1 that run our own sans-IO session
and answer from the piece layers with app.core.hash_exchange, then spoil the answer."""
from __future__ import annotations

import asyncio
import os

import pytest

from app.core import messages as m
from app.core.errors import NoPeersError
from app.core.hash_exchange import answer_hash_request
from app.core.pieces import LocalPieces
from app.core.session import HandshakeReceived, PeerSession, SessionConfig
from app.core.tracker import PeerAddress
from app.io.peer import new_peer_id
from app.io.piece_layers import fetch_piece_layers
from support.v2_layers import make_info

FULL = make_info([1500, 1, 6, 2])
BARE = make_info([1500, 1, 6, 2], with_layers=False)
BAD = ["wrong_node", "wrong_uncle", "wrong_count", "other_range", "unasked", "reject", "silent", "v1",
       "close"]


def spoil(reply: m.Hashes | m.HashReject, behaviour: str) -> bytes:
    if behaviour == "reject" or isinstance(reply, m.HashReject):
        return m.HashReject(*reply.key[:5]).encode()
    hashes = list(reply.hashes)
    if behaviour == "wrong_node":
        hashes[1] = bytes(32)
    elif behaviour == "wrong_uncle" and reply.uncles:
        hashes[-1] = bytes(32)
    elif behaviour == "wrong_uncle":
        hashes[0], hashes[1] = hashes[1], hashes[0]
    elif behaviour == "wrong_count":
        hashes.append(bytes(32))
    elif behaviour == "other_range":
        return m.Hashes(reply.pieces_root, reply.base_layer, reply.index, reply.length,
                        reply.proof_layers + 1, (*reply.hashes, bytes(32))).encode()
    return m.Hashes(*reply.key, tuple(hashes)).encode()


async def serve_peer(behaviour: str, served: list[str]) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served.append(behaviour)
        sizes = [FULL.piece_size(i) for i in range(FULL.piece_count)]
        config = SessionConfig(FULL.info_hash, b"-FK0001-" + os.urandom(12), v2=behaviour != "v1")
        session = PeerSession(config, sizes, LocalPieces(len(sizes), range(len(sizes))), initiator=False, now=0)
        try:
            while data := await reader.read(65536):
                session.receive_data(data)
                out = []
                for event in session.next_events(0):
                    if isinstance(event, HandshakeReceived) and behaviour == "unasked":
                        out.append(m.Hashes(FULL.files[0].pieces_root, 2, 0, 2, 0, (bytes(32),) * 2).encode())
                    if isinstance(event, m.HashRequest):
                        if behaviour == "close":
                            return
                        if behaviour != "silent":
                            reply = answer_hash_request(FULL, event)
                            out.append(reply.encode() if behaviour == "good" else spoil(reply, behaviour))
                writer.write(session.data_to_send(0) + b"".join(out))
                await writer.drain()
        except Exception:
            pass
        finally:
            writer.close()
    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def fetch_from(behaviours: list[str], timeout: float = 3.0):
    servers, served = [], []
    for behaviour in behaviours:
        servers.append(await serve_peer(behaviour, served))
    peers = [PeerAddress("127.0.0.1", s.sockets[0].getsockname()[1]) for s in servers]
    try:
        return await fetch_piece_layers(BARE, peers, new_peer_id(), timeout=timeout), served
    finally:
        for server in servers:
            server.close()


def test_honest_peer_gives_every_layer():
    info, _ = asyncio.run(fetch_from(["good"]))
    assert dict(info.piece_layers) == dict(FULL.piece_layers)


def test_honest_peers_share_the_work():
    info, served = asyncio.run(fetch_from(["good", "good", "good"]))
    assert dict(info.piece_layers) == dict(FULL.piece_layers)
    assert len(served) == 3


@pytest.mark.parametrize("behaviour", BAD)
def test_a_hostile_peer_is_dropped_and_an_honest_one_finishes(behaviour):
    info, served = asyncio.run(fetch_from([behaviour, "good"], timeout=2.0))
    assert dict(info.piece_layers) == dict(FULL.piece_layers)
    assert sorted(served) == sorted([behaviour, "good"])


@pytest.mark.parametrize("behaviour", BAD)
def test_hostile_peers_alone_give_no_layers(behaviour):
    with pytest.raises(NoPeersError, match="piece layers"):
        asyncio.run(fetch_from([behaviour], timeout=1.0))


def test_nothing_to_fetch_touches_no_peer():
    info, served = asyncio.run(fetch_from_full())
    assert info is FULL and served == []


async def fetch_from_full():
    served: list[str] = []
    server = await serve_peer("good", served)
    try:
        port = server.sockets[0].getsockname()[1]
        return await fetch_piece_layers(FULL, [PeerAddress("127.0.0.1", port)], new_peer_id()), served
    finally:
        server.close()
