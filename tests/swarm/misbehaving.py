"""Raw-socket troublemakers for the robustness tests (threads, blocking sockets, 127/8 only).

- RawPeer: a listening socket on 127.0.0.x whose every accepted connection is handled by
  one of the BEHAVIOURS below (a 2 GiB length prefix, a bitfield and then garbage, the wrong
  info hash, hanging up at once). It counts connections and notes how each one ended.
- refusing_address: an address whose port is bound but not listening, so connecting to it
  is refused.
- announce_from: an HTTP announce to opentracker sent from a chosen 127.0.0.x source
  address, so opentracker lists that address as a peer.
- ConnectionFlood: hundreds of connections to one port from distinct 127.77.x.y source
  addresses (valid handshakes that then stay silent, garbage, or nothing at all); they are
  held open until close().

Every socket operation has a timeout and every thread is joined with a bound.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import random
import selectors
import socket
import struct
import threading
import time
import urllib.parse
from dataclasses import dataclass, field

from support.bencoding import bdecode
from support.fakes import full_bitfield
from support.wire import PSTR

CONNECTION_LIMIT = 10.0   # no handler keeps a connection longer than this


def handshake_bytes(info_hash: bytes, reserved: bytes = bytes(8)) -> bytes:
    return PSTR + reserved + info_hash + b"-RB0001-" + os.urandom(12)


def message(msg_id: int, payload: bytes = b"") -> bytes:
    return struct.pack(">IB", len(payload) + 1, msg_id) + payload


def read_exactly(conn: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            break
        data += chunk
    return data


def linger(conn: socket.socket, seconds: float = CONNECTION_LIMIT) -> str:
    """Read and discard until the client closes (or `seconds` pass); say which."""
    started = time.monotonic()
    deadline = started + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return f"still open after {seconds:.0f}s"
        conn.settimeout(left)
        try:
            if not conn.recv(65536):
                return f"client closed after {time.monotonic() - started:.2f}s"
        except TimeoutError:
            continue
        except OSError as exc:
            return f"client reset after {time.monotonic() - started:.2f}s ({exc.strerror})"


# --- behaviours: fn(peer, conn) -> how the session ended -------------------------------

def huge_length(peer: RawPeer, conn: socket.socket) -> str:
    """Handshake, bitfield, unchoke, then a message that claims to be 2 GiB long."""
    if len(read_exactly(conn, 68)) < 68:
        return "client sent no full handshake"
    conn.sendall(handshake_bytes(peer.info_hash) + message(5, full_bitfield(peer.num_pieces))
                 + message(1) + struct.pack(">IB", 1 << 31, 7) + bytes(16384))
    return linger(conn)


def bitfield_then_garbage(peer: RawPeer, conn: socket.socket) -> str:
    """Handshake and bitfield, then a `have` with a 2-byte payload and a run of junk."""
    if len(read_exactly(conn, 68)) < 68:
        return "client sent no full handshake"
    junk = random.Random(5).randbytes(2000)
    conn.sendall(handshake_bytes(peer.info_hash) + message(5, full_bitfield(peer.num_pieces))
                 + struct.pack(">IB", 3, 4) + b"\xff\xfe" + junk)
    return linger(conn)


def wrong_info_hash(peer: RawPeer, conn: socket.socket) -> str:
    """Answers the handshake for another torrent (and then offers everything)."""
    if len(read_exactly(conn, 68)) < 68:
        return "client sent no full handshake"
    other = hashlib.sha1(b"a torrent nobody asked for").digest()
    conn.sendall(handshake_bytes(other) + message(5, full_bitfield(peer.num_pieces)))
    return linger(conn)


def hang_up(peer: RawPeer, conn: socket.socket) -> str:
    """Accepts the connection and closes it at once, before reading anything."""
    return "closed by us at once"


BEHAVIOURS = {"huge_length": huge_length, "bitfield_then_garbage": bitfield_then_garbage,
              "wrong_info_hash": wrong_info_hash, "hang_up": hang_up}


class RawPeer:
    """A misbehaving peer listening on host:<ephemeral port> until stop()."""

    def __init__(self, host: str, behaviour: str, info_hash: str, num_pieces: int):
        self.behaviour = behaviour
        self._handler = BEHAVIOURS[behaviour]
        self.info_hash = bytes.fromhex(info_hash)
        self.num_pieces = num_pieces
        self.connections = 0
        self.endings: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self.host, self.port = self._sock.getsockname()
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def describe(self) -> str:
        return (f"{self.behaviour} at {self.address}: {self.connections} connections, "
                f"endings {self.endings}")

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5.0)
        try:
            self.endings.append(self._handler(self, conn))
        except OSError as exc:
            self.endings.append(f"connection error {exc!r}")
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._acceptor.join(2)
        self._sock.close()
        for thread in self._threads:
            thread.join(CONNECTION_LIMIT + 1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class RefusingAddress:
    """host:port bound but never listening: every connection to it is refused."""

    def __init__(self, host: str):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((host, 0))
        self.host, self.port = self._sock.getsockname()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def describe(self) -> str:
        return f"refusing at {self.address}"

    def stop(self) -> None:
        self._sock.close()


def announce_from(tracker_port: int, info_hash: str, host: str, port: int) -> dict:
    """Announce `host:port` to opentracker on 127.0.0.1, from a socket bound to `host`
    (opentracker lists the address a request comes from)."""
    query = {"info_hash": bytes.fromhex(info_hash), "peer_id": b"-RB0001-" + os.urandom(6).hex().encode(),
             "port": port, "uploaded": 0, "downloaded": 0, "left": 0, "event": "started",
             "compact": 1}
    path = "/announce?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
    conn = http.client.HTTPConnection("127.0.0.1", tracker_port, timeout=5,
                                      source_address=(host, 0))
    try:
        conn.request("GET", path)
        reply = conn.getresponse()
        body = reply.read()
    finally:
        conn.close()
    decoded = bdecode(body)
    if b"failure reason" in decoded:
        raise AssertionError(f"opentracker refused the announce of {host}:{port}: {decoded}")
    return decoded


# --- a connection flood against one listening port -----------------------------------------

@dataclass
class FloodReport:
    attempted: int = 0
    connected: int = 0
    refused_or_reset: int = 0
    handshakes_answered: int = 0      # silent handshakers that got a valid handshake back
    errors: dict[str, int] = field(default_factory=dict)

    def note_error(self, exc: OSError) -> None:
        self.refused_or_reset += 1
        key = type(exc).__name__
        self.errors[key] = self.errors.get(key, 0) + 1


class ConnectionFlood:
    """`count` connections to 127.0.0.1:port from distinct 127.77.x.y addresses: the first
    half send a valid handshake for `info_hash` and then nothing, a quarter send garbage, a
    quarter send nothing at all. Connects go out in small bursts (listen backlogs are
    finite); a refused or reset connection is counted, not raised. Everything stays open
    until close()."""

    def __init__(self, port: int, info_hash: str, count: int = 300, burst: int = 10,
                 pause: float = 0.01, budget: float = 15.0):
        self.port = port
        self.info_hash = bytes.fromhex(info_hash)
        self.count = count
        self.burst = burst
        self.pause = pause
        self.budget = budget      # seconds for all the connects; what is left is not tried
        self.report = FloodReport()
        self.sockets: list[socket.socket] = []
        self._handshakers: list[socket.socket] = []

    @staticmethod
    def source(i: int) -> str:
        return f"127.77.{i // 250}.{i % 250 + 1}"

    def kind(self, i: int) -> str:
        if i < self.count // 2:
            return "handshake"
        if i < self.count * 3 // 4:
            return "garbage"
        return "nothing"

    def payload(self, i: int) -> bytes:
        kind = self.kind(i)
        if kind == "handshake":
            return handshake_bytes(self.info_hash)
        if kind == "garbage":  # never a valid handshake: the first byte is not 19
            return b"\xff" + random.Random(i).randbytes(199)
        return b""

    def run(self) -> FloodReport:
        # interleave the kinds, so every burst holds some of each
        order = list(range(self.count))
        random.Random(9).shuffle(order)
        deadline = time.monotonic() + self.budget
        for n, i in enumerate(order):
            if time.monotonic() > deadline:
                break
            if n and n % self.burst == 0:
                time.sleep(self.pause)
            self.report.attempted += 1
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.settimeout(1.0)
            try:
                sock.bind((self.source(i), 0))
                sock.connect(("127.0.0.1", self.port))
                data = self.payload(i)
                if data:
                    sock.sendall(data)
            except OSError as exc:
                self.report.note_error(exc)
                sock.close()
                continue
            self.report.connected += 1
            self.sockets.append(sock)
            if self.kind(i) == "handshake":
                self._handshakers.append(sock)
        return self.report

    def collect_replies(self, seconds: float) -> int:
        """Read the handshake replies on the silent handshakers for up to `seconds`, until
        each one has answered or closed; count the valid replies (for the right torrent).
        Whatever follows a reply is left unread."""
        buffers = {sock: b"" for sock in self._handshakers}
        answered = 0
        selector = selectors.DefaultSelector()
        for sock in self._handshakers:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + seconds
        try:
            while selector.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                for key, _ in selector.select(min(left, 0.2)):
                    sock = key.fileobj
                    try:
                        chunk = sock.recv(68 - len(buffers[sock]))
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        chunk = b""
                    buffers[sock] += chunk
                    reply = buffers[sock]
                    if not chunk or len(reply) >= 68:
                        selector.unregister(sock)
                        if reply[:20] == PSTR and reply[28:48] == self.info_hash:
                            answered += 1
        finally:
            selector.close()
        self.report.handshakes_answered = answered
        return answered

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()
        self._handshakers.clear()
