"""Hostile trackers on 127.0.0.1: an HTTP one (asyncio, raw HTTP/1.0 so it can misbehave
at will) and a UDP one. Each runs in a background thread until stop(); every wait is bounded.

HTTP modes:
  not_bencode    200 with an HTML body
  http500        500 Internal Server Error
  peers_not_6    200 with a compact `peers` of 7 bytes
  huge           200 without Content-Length, streaming a 50 MiB `peers` string
  redirect_loop  302 to itself, forever
  failure        200 with `failure reason`
  hang           reads the request and never answers
  trickle        200, then a body one byte every 0.2 s, never finishing in any useful
                 time: a tracker that is alive but useless
UDP modes (EvilUdpTracker):
  wrong_tid      answers a connect with the wrong transaction id, then stays silent
  short_announce answers the announce with 8 bytes (action, transaction id)
  error          answers the announce with an error (action 3)
  odd_peers      answers the announce with a peer list of 5 bytes
"""
from __future__ import annotations

import asyncio
import struct

from support.bencoding import bencode
from support.fakes import LoopService, TcpService
from support.net import HOST, free_port

HTTP_MODES = ("not_bencode", "http500", "peers_not_6", "huge", "redirect_loop", "failure",
              "hang", "trickle")
HUGE_SIZE = 50 << 20
LIFETIME = 30.0  # no connection is served longer than this


def _checked(mode: str, modes: tuple[str, ...]) -> str:
    if mode not in modes:
        raise ValueError(mode)
    return mode


class EvilHttpTracker(TcpService):
    wait_for_sessions = True

    def __init__(self, mode: str):
        self.mode = _checked(mode, HTTP_MODES)
        self.port = free_port()
        self.requests: list[str] = []       # request targets (path?query)
        self.bytes_sent = 0
        self.closed_early = 0               # connections the client closed mid-body

    @property
    def announce_url(self) -> str:
        return f"http://{HOST}:{self.port}/announce"

    async def _handle(self, reader, writer):
        try:
            await asyncio.wait_for(self._serve(reader, writer), LIFETIME)
        except (TimeoutError, ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _send(self, writer, data: bytes) -> None:
        writer.write(data)
        self.bytes_sent += len(data)
        await writer.drain()

    async def _serve(self, reader, writer):
        request_line = await asyncio.wait_for(reader.readline(), 10)
        while (await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b"\n", b""):
            pass
        parts = request_line.decode("latin-1").split()
        target = parts[1] if len(parts) > 1 else "/"
        self.requests.append(target)
        mode = self.mode

        def response(status: str, body: bytes, headers: str = "") -> bytes:
            return (f"HTTP/1.0 {status}\r\nContent-Type: text/plain\r\n{headers}"
                    f"Content-Length: {len(body)}\r\n\r\n").encode() + body

        if mode == "hang":
            await reader.read()  # until the client gives up
        elif mode == "not_bencode":
            await self._send(writer, response("200 OK", b"<html><body>tracker down</body></html>"))
        elif mode == "http500":
            await self._send(writer, response("500 Internal Server Error", b"oops"))
        elif mode == "peers_not_6":
            await self._send(writer, response("200 OK", bencode(
                {"interval": 60, "peers": b"\x0a\x00\x00\x01\x1a\xe1\x07"})))
        elif mode == "failure":
            await self._send(writer, response("200 OK", bencode(
                {"failure reason": "hostile tracker says no"})))
        elif mode == "redirect_loop":
            await self._send(writer, response("302 Found", b"", f"Location: {target}\r\n"))
        elif mode == "huge":
            await self._send(writer, b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n"
                             + b"d8:intervali60e5:peers%d:" % HUGE_SIZE)
            chunk = bytes(64 * 1024)
            try:
                for _ in range(HUGE_SIZE // len(chunk)):
                    await self._send(writer, chunk)
                await self._send(writer, b"e")
            except (ConnectionError, OSError):
                self.closed_early += 1
                raise
        elif mode == "trickle":
            body = bencode({"interval": 60, "peers": b"\x0a\x00\x00\x01\x1a\xe1" * 5000})
            await self._send(writer, (f"HTTP/1.0 200 OK\r\nContent-Length: {len(body)}\r\n\r\n"
                                      ).encode())
            for byte in body:
                await self._send(writer, bytes([byte]))
                await asyncio.sleep(0.2)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, tracker: EvilUdpTracker):
        self.tracker = tracker
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        tracker = self.tracker
        tracker.packets += 1
        if len(data) < 16:
            return
        if tracker.mode == "wrong_tid":
            _, action, tid = struct.unpack(">QII", data[:16])
            if action == 0 and not tracker.answered:  # once, with a transaction id off
                tracker.answered = True
                self.transport.sendto(struct.pack(">IIQ", 0, tid ^ 0x5A5A5A5A,
                                                  0x1122334455667788), addr)
            return
        connection_id, action, tid = struct.unpack(">QII", data[:16])
        if action == 0:  # connect: answered correctly
            self.transport.sendto(struct.pack(">IIQ", 0, tid, 0x1122334455667788), addr)
        elif action == 1:  # announce
            tracker.answered = True
            if tracker.mode == "short_announce":  # action and transaction id, nothing more
                self.transport.sendto(struct.pack(">II", 1, tid), addr)
            elif tracker.mode == "error":
                self.transport.sendto(struct.pack(">II", 3, tid) + b"hostile says no", addr)
            elif tracker.mode == "odd_peers":  # peers part not a multiple of 6
                self.transport.sendto(struct.pack(">IIIII", 1, tid, 60, 0, 1)
                                      + b"\x0a\x00\x00\x01\x1a", addr)


UDP_MODES = ("wrong_tid", "short_announce", "error", "odd_peers")


class EvilUdpTracker(LoopService):
    """wrong_tid: one connect reply with a transaction id that does not match, then silence.
    short_announce: the announce reply is 8 bytes (what opentracker sends for an unknown
    torrent). error: an action-3 error reply. odd_peers: a peer list of 5 bytes."""

    def __init__(self, mode: str = "wrong_tid"):
        self.mode = _checked(mode, UDP_MODES)
        self.port = free_port()
        self.packets = 0
        self.answered = False
        self._transport = None

    @property
    def announce_url(self) -> str:
        return f"udp://{HOST}:{self.port}/announce"

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=(HOST, self.port))

    async def _close(self) -> None:
        self._transport.close()
