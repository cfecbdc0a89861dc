"""Grader-like fakes on 127.0.0.1: they check what the CodeCrafters tester checks.

See shared/GRADER.md. Each fake records every violation of the grader's rules in
`violations` (a list of strings), so a test asserts `fake.violations == []` as well as on
the CLI's output. All reads have timeouts; servers run in a daemon thread until stop().
"""
from __future__ import annotations

import asyncio
import hashlib
import http.server
import os
import random
import socket
import struct
import threading
import urllib.parse
from dataclasses import dataclass, field

from .bencoding import bdecode_prefix, bencode
from .net import HOST, free_port

PSTR = b"\x13BitTorrent protocol"
ZERO_RESERVED = bytes(8)
EXT_RESERVED = bytes([0, 0, 0, 0, 0, 0x10, 0, 0])
READ_TIMEOUT = 9.0  # the grader's stage would have failed by then anyway


def full_bitfield(num_pieces: int) -> bytes:
    """A bitfield payload with every one of `num_pieces` pieces set (spare bits clear)."""
    bits = bytearray((num_pieces + 7) // 8)
    for i in range(num_pieces):
        bits[i // 8] |= 0x80 >> (i % 8)
    return bytes(bits)


class BackgroundLoop:
    """An asyncio event loop running in a daemon thread."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()


async def cancel_other_tasks(*, wait: bool = False) -> None:
    """Cancel every other task of the running loop; with `wait`, also wait (5 s at most)
    until they are finished, so no coroutine is left to be garbage-collected after its loop
    is closed."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    if wait and tasks:
        await asyncio.wait(tasks, timeout=5)


class Service:
    """start() / stop(), and `with service:` for the two."""

    def start(self):
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class LoopService(Service):
    """Something served from its own BackgroundLoop: start() runs `_open` there, stop() runs
    `_close` and ends the loop."""

    _bg: BackgroundLoop | None = None

    async def _open(self) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError

    def start(self):
        self._bg = BackgroundLoop()
        self._bg.run(self._open())
        return self

    def stop(self) -> None:
        if self._bg is None:
            return
        try:
            self._bg.run(self._close())
        finally:
            self._bg.close()
            self._bg = None


class TcpService(LoopService):
    """A TCP server on HOST:self.port calling `self._handle(reader, writer)` per connection.
    stop() closes it and cancels the sessions; `wait_for_sessions` also waits for them."""

    port: int
    wait_for_sessions = False
    _server: asyncio.base_events.Server | None = None

    async def _open(self) -> None:
        self._server = await asyncio.start_server(self._handle, HOST, self.port)

    async def _close(self) -> None:
        self._server.close()
        await cancel_other_tasks(wait=self.wait_for_sessions)

    async def _handle(self, reader, writer):
        raise NotImplementedError


class FakePeerBase(TcpService):
    """One listening socket on 127.0.0.1; subclasses implement `session`."""

    def __init__(self, info_hash: str, port: int | None = None):
        self.info_hash = bytes.fromhex(info_hash)
        self.port = port or free_port()
        self.violations: list[str] = []
        self.connections = 0
        self.completed = 0           # sessions that went through every grader check
        self.sent_peer_ids: list[str] = []

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def violation(self, text: str) -> None:
        self.violations.append(text)

    async def _handle(self, reader, writer):
        self.connections += 1
        try:
            await self.session(reader, writer)
        except TimeoutError:
            self.violation("timed out waiting for the client")
        except asyncio.IncompleteReadError as exc:
            self.violation(f"client closed the connection early ({len(exc.partial)} bytes "
                           f"of {exc.expected} read)")
        except (ConnectionError, OSError) as exc:
            self.violation(f"connection error: {exc!r}")
        finally:
            writer.close()

    async def read(self, reader, count: int) -> bytes:
        return await asyncio.wait_for(reader.readexactly(count), READ_TIMEOUT)

    async def read_message(self, reader) -> tuple[int | None, bytes]:
        (length,) = struct.unpack(">I", await self.read(reader, 4))
        if length == 0:
            return None, b""
        body = await self.read(reader, length)
        return body[0], body[1:]

    async def check_handshake(self, reader, allowed_reserved: tuple[bytes, ...]) -> bool:
        data = await self.read(reader, 68)
        ok = True
        if data[0] != 19 or data[1:20] != b"BitTorrent protocol":
            self.violation(f"bad protocol string {data[:20]!r}")
            ok = False
        if data[20:28] not in allowed_reserved:
            self.violation(f"reserved bytes {data[20:28].hex()} not in "
                           f"{[r.hex() for r in allowed_reserved]}")
            ok = False
        if data[28:48] != self.info_hash:
            self.violation(f"info hash {data[28:48].hex()} != {self.info_hash.hex()}")
            ok = False
        return ok

    def new_peer_id(self) -> bytes:
        peer_id = os.urandom(20)
        self.sent_peer_ids.append(peer_id.hex())
        return peer_id

    async def session(self, reader, writer):
        raise NotImplementedError


class HandshakePeer(FakePeerBase):
    """ca4: reads the 68-byte handshake, replies (reserved zero), closes immediately."""

    async def session(self, reader, writer):
        if not await self.check_handshake(reader, (ZERO_RESERVED, EXT_RESERVED)):
            return
        writer.write(PSTR + ZERO_RESERVED + self.info_hash + self.new_peer_id())
        await writer.drain()
        self.completed += 1


class MagnetPeer(FakePeerBase):
    """pk2/xi4/jk6 (mode "handshake") and ns5/zh1 (mode "info") magnet peer.

    Requires reserved exactly 00 00 00 00 00 10 00 00, replies with the same reserved,
    sends a bitfield and `d1:md11:ut_metadatai<R>ee13:metadata_sizei<N>ee`. The very next
    message must be the client's extension handshake. In "handshake" mode it then waits 1 s
    and closes; in "info" mode the next message must be a metadata request for piece 0,
    answered with the metadata, and the connection is closed.
    """

    def __init__(self, info_hash: str, metadata: bytes, num_pieces: int, *, mode: str,
                 ut_metadata_id: int | None = None, port: int | None = None,
                 linger: float = 1.0):
        super().__init__(info_hash, port)
        if mode not in ("handshake", "info"):
            raise ValueError(mode)
        if hashlib.sha1(metadata).digest() != self.info_hash:
            raise ValueError("metadata does not hash to the info hash")
        self.metadata = metadata
        self.mode = mode
        self.linger = linger
        self.ut_metadata_id = ut_metadata_id or random.randint(1, 255)
        self.bitfield = full_bitfield(num_pieces)
        self.client_ut_metadata_ids: list[int] = []
        self.request_ext_ids: list[int] = []    # the extension id byte of metadata requests
        self.metadata_sent = 0

    async def session(self, reader, writer):
        if not await self.check_handshake(reader, (EXT_RESERVED,)):
            return
        writer.write(PSTR + EXT_RESERVED + self.info_hash + self.new_peer_id())
        writer.write(struct.pack(">IB", 1 + len(self.bitfield), 5) + self.bitfield)
        ext = b"\x00" + (b"d1:md11:ut_metadatai%dee13:metadata_sizei%dee"
                         % (self.ut_metadata_id, len(self.metadata)))
        writer.write(struct.pack(">IB", 1 + len(ext), 20) + ext)
        await writer.drain()

        msg_id, payload = await self.read_message(reader)
        if msg_id != 20:
            self.violation(f"expected message id: 20, actual: {msg_id}")
            return
        if payload[:1] != b"\x00":
            self.violation(f"extension handshake has extension id {payload[:1]!r}, not 0")
            return
        try:
            handshake = bdecode_prefix(payload, 1)[0]
            client_id = handshake[b"m"][b"ut_metadata"]
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            self.violation(f"bad extension handshake {payload!r}: {exc!r}")
            return
        if not isinstance(client_id, int) or not 1 <= client_id <= 255:
            self.violation(f"client ut_metadata id {client_id!r} not in 1..255")
            return
        self.client_ut_metadata_ids.append(client_id)

        if self.mode == "handshake":
            self.completed += 1
            await asyncio.sleep(self.linger)
            return

        msg_id, payload = await self.read_message(reader)
        if msg_id != 20:
            self.violation(f"expected metadata request (id 20), got message id {msg_id}")
            return
        self.request_ext_ids.append(payload[0] if payload else -1)
        try:
            request = bdecode_prefix(payload, 1)[0]
        except (ValueError, IndexError) as exc:
            self.violation(f"bad metadata request {payload!r}: {exc!r}")
            return
        if request != {b"msg_type": 0, b"piece": 0}:
            self.violation(f"metadata request is {request!r}, want msg_type 0 piece 0")
            return
        header = b"d8:msg_typei1e5:piecei0e10:total_sizei%dee" % len(self.metadata)
        body = bytes([client_id]) + header + self.metadata
        writer.write(struct.pack(">IB", 1 + len(body), 20) + body)
        await writer.drain()
        self.metadata_sent += 1
        self.completed += 1


# ---------------------------------------------------------------- tracker

@dataclass
class TrackedTorrent:
    length: int
    peers: list[str]                 # "ip:port" strings returned in compact form


@dataclass
class AnnounceRecord:
    path: str
    params: dict[str, bytes]
    failure: str | None = None
    peers_returned: list[str] = field(default_factory=list)


def compact(peers: list[str]) -> bytes:
    out = b""
    for peer in peers:
        host, _, port = peer.rpartition(":")
        out += socket.inet_aton(host) + struct.pack(">H", int(port))
    return out


def raw_query(query: str) -> dict[str, bytes]:
    """Parse like Go's url.ParseQuery: '+' is a space, %XX are raw bytes; the first wins."""
    out: dict[str, bytes] = {}
    for part in query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        key = urllib.parse.unquote(key.replace("+", " "))
        out.setdefault(key, urllib.parse.unquote_to_bytes(value.replace("+", " ")))
    return out


class GraderTracker(Service):
    """fi9/pk2-style HTTP tracker: GET /announce with the grader's checks."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.torrents: dict[bytes, TrackedTorrent] = {}
        self.requests: list[AnnounceRecord] = []
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def announce_url(self) -> str:
        return f"http://{HOST}:{self.port}/announce"

    @property
    def violations(self) -> list[str]:
        return [r.failure for r in self.requests if r.failure]

    def add(self, info_hash: str, length: int, peers: list[str]) -> None:
        self.torrents[bytes.fromhex(info_hash)] = TrackedTorrent(length, list(peers))

    def answer(self, path: str, query: str) -> tuple[int, dict[str, str], bytes]:
        if path == "/announce/":
            return 301, {"Location": "/announce"}, b""
        if path != "/announce":
            return 404, {}, b"not found"
        params = raw_query(query)
        record = AnnounceRecord(path, params)
        self.requests.append(record)

        def fail(reason: str):
            record.failure = reason
            return 200, {}, bencode({"failure reason": reason})

        info_hash = params.get("info_hash")
        if info_hash is None:
            return fail("info_hash missing")
        if len(info_hash) == 40:
            return fail("info_hash must be 20 bytes, don't use hexadecimal")
        if len(info_hash) != 20:
            return fail(f"info_hash must be 20 bytes, got {len(info_hash)}")
        torrent = self.torrents.get(info_hash)
        if torrent is None:
            return fail(f"unknown info_hash {info_hash.hex()}")
        peer_id = params.get("peer_id")
        if peer_id is None or len(peer_id) != 20:
            return fail(f"peer_id must be 20 bytes, got {peer_id!r}")
        numbers = {}
        for key in ("port", "uploaded", "downloaded", "left"):
            raw = params.get(key)
            if raw is None or not raw.isdigit():
                return fail(f"{key} missing or not a number: {raw!r}")
            numbers[key] = int(raw)
        if numbers["port"] > 65536:
            return fail(f"port out of range: {numbers['port']}")
        if params.get("compact") != b"1":
            return fail(f"compact must be 1, got {params.get('compact')!r}")
        if numbers["left"] == 0:
            record.failure = "left=0: a seeder gets no peers (use a placeholder like left=1)"
            return 200, {}, bencode({"interval": 60})
        if numbers["left"] > torrent.length:
            return fail(f"left={numbers['left']} is larger than the file ({torrent.length}); "
                        "use a placeholder value like left=1")
        record.peers_returned = list(torrent.peers)
        body = bencode({"complete": len(torrent.peers), "incomplete": 1, "interval": 60,
                        "min interval": 60, "peers": compact(torrent.peers)})
        return 200, {}, body

    def start(self):
        tracker = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the stdlib's name)
                path, _, query = self.path.partition("?")
                status, headers, body = tracker.answer(path, query)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer((HOST, self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None
