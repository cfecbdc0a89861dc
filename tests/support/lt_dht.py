"""A small DHT of libtorrent nodes on loopback, in-process, for the DHT and PEX tests.

Each node listens on its own /24 (127.A.i.1, A random per run) on a port checked
free for TCP and UDP first, with the settings ../shared/REAL-PEERS.md lists:
explicit listen and outgoing interfaces, no public bootstrap, restrict_*_ips off,
no port retry, and a raised dht_block_ratelimit (our client queries from 127.0.0.1).
A node may also seed a torrent (all pieces, or some in upload mode).
"""
from __future__ import annotations

import random
import socket
import time
from pathlib import Path

import libtorrent as lt

from support.torrents import TorrentSpec, garble_pieces


def _free_on(ip: str) -> int:
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((ip, 0))
            port = tcp.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.bind((ip, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port on {ip}")


def lt_session(ip: str, port: int, dht: bool = True) -> lt.session:
    return lt.session({
        "listen_interfaces": f"{ip}:{port}", "outgoing_interfaces": ip,
        "listen_system_port_fallback": False, "max_retry_port_bind": 0,
        "enable_dht": dht, "dht_bootstrap_nodes": "",
        "dht_restrict_routing_ips": False, "dht_restrict_search_ips": False,
        "dht_block_ratelimit": 100000,
        "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "enable_outgoing_utp": False, "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True, "unchoke_slots_limit": -1,
        "close_redundant_connections": False,   # a partial (upload-mode) peer keeps its seeder, for PEX
        "alert_mask": lt.alert.category_t.dht_notification | lt.alert.category_t.status_notification
        | lt.alert.category_t.dht_operation_notification,
    })


class LtNode:
    def __init__(self, ip: str, dht: bool = True):
        self.ip = ip
        self.port = _free_on(ip)
        self.session = lt_session(ip, self.port, dht)
        self.handle = None

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    def seed(self, spec: TorrentSpec, copy_root: Path, have: list[int] | None = None) -> None:
        """Serve `spec` from a private copy of its data; `have` (a subset of pieces) means upload mode."""
        import shutil
        shutil.copytree(spec.data_root, copy_root)
        if have is not None:
            garble_pieces(spec, [i for i in range(spec.num_pieces) if i not in have], copy_root)
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(str(spec.torrent_path))
        params.save_path = str(copy_root)
        params.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
        if have is not None:
            params.flags |= lt.torrent_flags.upload_mode
        self.handle = self.session.add_torrent(params)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            status = self.handle.status()
            if have is None and status.state == lt.torrent_status.seeding:
                return
            if have is not None and status.state not in (lt.torrent_status.checking_files,
                                                         lt.torrent_status.checking_resume_data) \
                    and sum(status.pieces) == len(have):
                return
            time.sleep(0.05)
        raise TimeoutError(f"libtorrent node {self.address} did not finish checking")

    def get_peers(self, info_hash: str, timeout: float = 5.0) -> set[str]:
        """A DHT lookup from this node: the peers it returns (ip:port)."""
        self.session.pop_alerts()
        target = lt.sha1_hash(bytes.fromhex(info_hash))
        self.session.dht_get_peers(target)
        found: set[str] = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.session.wait_for_alert(100)
            for alert in self.session.pop_alerts():
                # only this lookup's reply: an earlier lookup's may still arrive
                if isinstance(alert, lt.dht_get_peers_reply_alert) and alert.info_hash == target:
                    found.update(f"{ip}:{port}" for ip, port in alert.peers())
                    return found
        return found


class LtDht:
    """`count` DHT nodes that know each other; node 0 is the one to bootstrap from."""

    def __init__(self, count: int = 6):
        self.net = random.randrange(30, 250)
        self.nodes = [LtNode(f"127.{self.net}.{i + 1}.1") for i in range(count)]
        deadline = time.monotonic() + 10
        while not all(n.session.is_dht_running() for n in self.nodes):
            if time.monotonic() > deadline:
                raise TimeoutError("libtorrent DHT nodes did not start")
            time.sleep(0.05)
        for node in self.nodes:
            for other in self.nodes:
                if other is not node:
                    node.session.add_dht_node((other.ip, other.port))
        time.sleep(0.5)   # let them ping each other into their tables

    @property
    def bootstrap(self) -> str:
        return self.nodes[0].address

    def add_node(self) -> LtNode:
        node = LtNode(f"127.{self.net}.{len(self.nodes) + 1}.1")
        deadline = time.monotonic() + 10
        while not node.session.is_dht_running():
            if time.monotonic() > deadline:
                raise TimeoutError("libtorrent DHT node did not start")
            time.sleep(0.05)
        for other in self.nodes:
            node.session.add_dht_node((other.ip, other.port))
        self.nodes.append(node)
        time.sleep(0.3)
        return node

    def announced(self, info_hash: str, address: str, timeout: float = 10.0, via: int = 1) -> bool:
        """Whether a lookup from node `via` finds `address` (retried until `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if address in self.nodes[via].get_peers(info_hash, 2.0):
                return True
            time.sleep(0.3)
        return False

    def close(self) -> None:
        for node in self.nodes:
            del node.session
        self.nodes.clear()
