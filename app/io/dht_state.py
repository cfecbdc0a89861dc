"""The DHT's small state file, and bootstrap addresses resolved off the loop.

The routing table is saved on exit (our node id and up to 200 nodes, compact)
under the user's cache directory ($XDG_CACHE_HOME, else ~/.cache), and read
on the next start, so a restart needs no bootstrap router. Any problem with
the file means starting afresh: it is a cache, never an error.

Host names are resolved in a daemon thread with a deadline: a resolver that
hangs (no network) must neither stall a download nor keep the process from
exiting, which the event loop's own executor would do.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import threading
from pathlib import Path
from typing import NamedTuple

from app.core import bencode
from app.core.dht import krpc
from app.core.dht.krpc import NodeInfo
from app.core.errors import BencodeError
from app.core.tracker import PeerAddress

log = logging.getLogger(__name__)

STATE_NODES = 200
STATE_NAME = "dht-state.benc"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bittorrent-toolkit"


def default_state_path() -> Path:
    return cache_dir() / STATE_NAME


class SavedState(NamedTuple):
    node_id: bytes | None
    nodes: list[NodeInfo]
    external_ip: str | None = None   # our address as other nodes saw it (BEP 42 ids are made for it)


def load_state(path: Path | None) -> SavedState:
    """Our saved node id, nodes and external address; empty when there is nothing usable."""
    if path is None:
        return SavedState(None, [])
    try:
        data = bencode.decode(path.read_bytes()[:64 * 1024])
    except (OSError, BencodeError):
        return SavedState(None, [])
    if not isinstance(data, dict):
        return SavedState(None, [])
    node_id = data.get(b"id")
    nodes4, nodes6 = data.get(b"nodes"), data.get(b"nodes6")
    nodes = list(krpc.decode_nodes(nodes4, limit=STATE_NODES)) if isinstance(nodes4, bytes) else []
    if isinstance(nodes6, bytes):
        nodes += krpc.decode_nodes(nodes6, krpc.NODE6_LENGTH, STATE_NODES)
    raw_ip = data.get(b"ip")
    try:
        external = str(ipaddress.ip_address(raw_ip)) if isinstance(raw_ip, bytes) and len(raw_ip) in (4, 16) else None
    except ValueError:
        external = None
    return SavedState(node_id if isinstance(node_id, bytes) and len(node_id) == krpc.ID_LENGTH else None,
                      nodes, external)


def save_state(path: Path | None, node_id: bytes, nodes: list[NodeInfo], external_ip: str | None = None) -> None:
    if path is None:
        return
    nodes = nodes[:STATE_NODES]
    state = {b"id": node_id,
             b"nodes": krpc.encode_nodes([n for n in nodes if ":" not in n.host]),
             b"nodes6": krpc.encode_nodes([n for n in nodes if ":" in n.host])}
    if external_ip is not None:
        state[b"ip"] = ipaddress.ip_address(external_ip).packed
    body = bencode.encode(state)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_bytes(body)
        os.replace(tmp, path)
    except OSError as exc:
        log.debug("cannot save the DHT state to %s: %s", path, exc)


def parse_host_port(text: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port`, for --dht-bootstrap."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad address {text!r}; expected HOST:PORT")
    return host, int(port)


def resolve(hosts: list[tuple[str, int]], timeout: float) -> list[PeerAddress]:
    """IP literals at once; names in daemon threads, whatever answers within `timeout`."""
    found: list[PeerAddress] = []
    names: list[tuple[str, int]] = []
    for host, port in hosts:
        try:
            found.append(PeerAddress(str(ipaddress.ip_address(host)), port))
        except ValueError:
            names.append((host, port))
    if not names:
        return found
    results: list[PeerAddress] = []
    lock = threading.Lock()

    def lookup(host: str, port: int) -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except OSError:
            return
        with lock:
            results.extend(PeerAddress(str(info[4][0]), port) for info in infos[:4])

    threads = [threading.Thread(target=lookup, args=name, daemon=True) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout / len(threads))
    with lock:
        return found + list(dict.fromkeys(results))
