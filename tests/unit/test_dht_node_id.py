"""BEP 42 node ids (app/core/dht/node_id.py) and how our node picks its id (app/io/dht.py,
app/io/dht_state.py). The vectors are BEP 42's own table."""
from __future__ import annotations

import asyncio
import os

import pytest

from app.core.dht.krpc import NodeInfo, decode_message, encode_response
from app.core.dht.node_id import AddressVote, crc32c, is_exempt, is_valid_node_id, node_id_for
from app.core.tracker import PeerAddress
from app.io.dht import DhtConfig, DhtNode, our_node_id
from app.io.dht_state import load_state, save_state

# (IP, rand, the id's first 3 bytes in BEP 42's example: only their top 21 bits are fixed)
VECTORS = [("124.31.75.21", 1, "5fbfbf"), ("21.75.31.124", 86, "5a3ce9"), ("65.23.51.170", 22, "a5d432"),
           ("84.124.73.14", 65, "1b0321"), ("43.213.53.83", 90, "e56f6c")]


def test_crc32c_check_value():
    assert crc32c(b"123456789") == 0xE3069283   # the CRC-32C catalogue's check value


@pytest.mark.parametrize(("ip", "rand", "prefix"), VECTORS)
def test_bep42_vectors(ip, rand, prefix):
    node_id = node_id_for(ip, rand, os.urandom(17))
    expected = bytes.fromhex(prefix)
    assert node_id[:2] == expected[:2] and node_id[2] & 0xF8 == expected[2] & 0xF8
    assert node_id[-1] == rand and len(node_id) == 20
    assert is_valid_node_id(node_id, ip)


def test_an_id_made_for_one_address_does_not_suit_another():
    node_id = node_id_for("124.31.75.21", 1, bytes(17))
    assert not is_valid_node_id(node_id, "21.75.31.124")
    spoiled = bytes([node_id[0] ^ 0x80]) + node_id[1:]
    assert not is_valid_node_id(spoiled, "124.31.75.21")
    assert not is_valid_node_id(node_id[:19], "124.31.75.21")


def test_ipv6_ids():
    node_id = node_id_for("2001:db8:85a3::8a2e:370:7334", 7, os.urandom(17))
    assert is_valid_node_id(node_id, "2001:db8:85a3::8a2e:370:7334")
    assert not is_valid_node_id(node_id, "2001:db9:85a3::8a2e:370:7334")


@pytest.mark.parametrize("ip", ["127.0.0.1", "10.1.2.3", "192.168.0.9", "172.16.5.5", "::1", "fe80::1"])
def test_local_and_private_addresses_are_exempt(ip):
    assert is_exempt(ip) and is_valid_node_id(os.urandom(20), ip)


def test_the_address_vote_needs_three_distinct_nodes_and_a_clear_winner():
    vote = AddressVote()
    vote.add(b"a" * 20, "8.8.8.8")
    vote.add(b"a" * 20, "8.8.8.8")   # the same node twice counts once
    vote.add(b"b" * 20, "8.8.8.8")
    vote.add(b"z" * 20, "127.0.0.1")   # a local view of us says nothing
    assert vote.winner() is None
    vote.add(b"c" * 20, "8.8.8.8")
    assert vote.winner() == "8.8.8.8"
    for voter in (b"d", b"e", b"f"):
        vote.add(voter * 20, "9.9.9.9")
    assert vote.winner() is None   # a tie


def test_our_id_follows_the_known_address():
    fitting = node_id_for("84.124.73.14", 3, os.urandom(17))
    assert our_node_id(fitting, "84.124.73.14") == fitting
    replaced = our_node_id(b"\x00" * 20, "84.124.73.14")
    assert replaced != b"\x00" * 20 and is_valid_node_id(replaced, "84.124.73.14")
    assert our_node_id(b"\x01" * 20, None) == b"\x01" * 20      # address unknown: keep it
    assert len(our_node_id(None, None)) == 20


def test_the_state_file_keeps_our_address(tmp_path):
    path = tmp_path / "state.benc"
    node = NodeInfo(b"n" * 20, "10.0.0.7", 6881)
    save_state(path, b"i" * 20, [node], "84.124.73.14")
    saved = load_state(path)
    assert saved.node_id == b"i" * 20 and saved.nodes == [node] and saved.external_ip == "84.124.73.14"
    save_state(path, b"i" * 20, [node])
    assert load_state(path).external_ip is None


class _Replier(asyncio.DatagramProtocol):
    """A node that answers every query and tells the asker it is seen as 84.124.73.14."""

    def __init__(self, own_id: bytes) -> None:
        self.own_id = own_id

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        query = decode_message(data)
        self.transport.sendto(encode_response(query.tid, self.own_id, seen_as=PeerAddress("84.124.73.14", 6881)),
                              addr)


def test_nodes_reporting_our_address_give_the_next_run_a_fitting_id(tmp_path):
    """Replies carry `ip`, our address as each node sees it; once three agree it goes into
    the state file, and the next node starts with a BEP 42 id made for it."""
    config = DhtConfig(port=0, bootstrap=(), state_path=tmp_path / "state.benc", hosts=("127.0.0.1",))

    async def run() -> None:
        loop = asyncio.get_running_loop()
        repliers = [await loop.create_datagram_endpoint(lambda i=i: _Replier(bytes([i]) * 20),
                                                        local_addr=("127.0.0.1", 0)) for i in range(1, 4)]
        try:
            async with DhtNode(config) as node:
                for transport, _ in repliers:
                    await node.ping(PeerAddress("127.0.0.1", transport.get_extra_info("sockname")[1]))
        finally:
            for transport, _ in repliers:
                transport.close()
    asyncio.run(run())
    assert load_state(config.state_path).external_ip == "84.124.73.14"
    assert is_valid_node_id(DhtNode(config).node_id, "84.124.73.14")
