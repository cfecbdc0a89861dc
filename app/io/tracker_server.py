"""Serve app.core.tracker_server.Registry over HTTP with asyncio.

A deliberately small HTTP/1.0 server: one GET per connection, request size and
read time capped, `Connection: close`. Only /announce exists; other paths get
404, requests we cannot parse get 400.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from app.core.tracker_server import DEFAULT_INTERVAL, Registry, parse_query
from app.io import trace

log = logging.getLogger(__name__)

MAX_REQUEST = 8192        # an announce is well under 1 KiB; refuse to buffer more
READ_TIMEOUT = 10.0       # a client that sends nothing must not hold a connection forever
ANNOUNCE_PATH = "/announce"
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


@dataclass
class TrackerServer:
    """A running tracker; `port` is the bound port (useful when 0 was asked for)."""
    server: asyncio.AbstractServer
    registry: Registry
    host: str
    port: int
    _sweeper: asyncio.Task | None = field(default=None, repr=False)

    @property
    def announce_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{ANNOUNCE_PATH}"

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        self.server.close()
        await self.server.wait_closed()


async def start_tracker(host: str = "127.0.0.1", port: int = 0, *, interval: int = DEFAULT_INTERVAL,
                        registry: Registry | None = None,
                        clock: Callable[[], float] = time.monotonic) -> TrackerServer:
    """Listen on host:port (0 picks a free port) and serve announces until closed."""
    registry = registry or Registry(interval=interval)
    server = await asyncio.start_server(
        lambda reader, writer: _serve_connection(reader, writer, registry, clock),
        host, port, limit=MAX_REQUEST)
    bound = server.sockets[0].getsockname()[1]
    tracker = TrackerServer(server, registry, host, bound)
    tracker._sweeper = asyncio.create_task(_sweep(registry, clock))
    log.info("tracker listening on %s", tracker.announce_url)
    return tracker


async def _sweep(registry: Registry, clock: Callable[[], float]) -> None:
    """Forget silent peers of every swarm, not only of the swarms still announced to."""
    while True:
        await asyncio.sleep(registry.interval)
        gone = registry.expire(clock())
        if gone:
            log.info("expired %d silent peers", gone)


async def _serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            registry: Registry, clock: Callable[[], float]) -> None:
    client_ip = (writer.get_extra_info("peername") or ("",))[0]
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
        status, body = respond(head, client_ip, registry, clock())
        writer.write(http_response(status, body))
        await asyncio.wait_for(writer.drain(), READ_TIMEOUT)
    except asyncio.LimitOverrunError:
        writer.write(http_response(400, b"request too large\n"))
        await _discard_rest(reader, writer)
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        pass  # the client went away or stalled; nobody is left to answer
    finally:
        writer.close()


async def _discard_rest(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Closing a socket with unread input makes the kernel send a reset, which can destroy
    our reply before the client reads it; so flush the reply, then read (a bounded amount
    of) what the client is still sending."""
    await asyncio.wait_for(writer.drain(), READ_TIMEOUT)
    if writer.can_write_eof():
        writer.write_eof()
    budget = 16 * MAX_REQUEST
    while budget > 0:  # every pass reads at least one byte or ends
        chunk = await asyncio.wait_for(reader.read(min(budget, MAX_REQUEST)), READ_TIMEOUT)
        if not chunk:
            break
        budget -= len(chunk)


def respond(head: bytes, client_ip: str, registry: Registry, now: float) -> tuple[int, bytes]:
    """The status and body for one request head (request line and headers)."""
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        return 400, b"malformed request line\n"
    method, target, _version = parts
    if method != b"GET":
        return 405, b"only GET is supported\n"
    path, _, query = target.partition(b"?")
    if urlsplit(path.decode("latin-1")).path != ANNOUNCE_PATH:
        return 404, b"not found: this tracker only serves /announce\n"
    reply = registry.handle(query, client_ip, now)
    if trace.ACTIVE is not None:
        trace.ACTIVE.announce_served(client_ip, target.decode("latin-1"), reply)
    if log.isEnabledFor(logging.INFO):
        log.info("announce from %s %s: %s", client_ip, _summary(query), reply[:60])
    return 200, reply


def _summary(query: bytes) -> str:
    """What a watcher of a demo wants to see: which torrent, which port, which event."""
    params = parse_query(query)
    fields = {k: params[k][0] for k in ("info_hash", "port", "left", "event") if k in params}
    if "info_hash" in fields:
        fields["info_hash"] = fields["info_hash"].hex()[:12].encode()
    return " ".join(f"{k}={v.decode('latin-1')}" for k, v in fields.items())


def http_response(status: int, body: bytes) -> bytes:
    head = (f"HTTP/1.0 {status} {REASONS[status]}\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
            + ("Allow: GET\r\n" if status == 405 else "") + "\r\n")
    return head.encode() + body


class BackgroundTracker:
    """The tracker on its own event loop in a daemon thread, for synchronous callers
    (tests, or a command that is not asyncio-based). Use as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 interval: int = DEFAULT_INTERVAL, start_timeout: float = 10.0) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tracker", daemon=True)
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            start_tracker(host, port, interval=interval), self._loop)
        try:
            self.server: TrackerServer = future.result(start_timeout)
        except BaseException:
            self._stop_loop()
            raise

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def announce_url(self) -> str:
        return self.server.announce_url

    @property
    def registry(self) -> Registry:
        return self.server.registry

    def stop(self, timeout: float = 5.0) -> None:
        if self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self.server.close(), self._loop).result(timeout)
        self._stop_loop(timeout)

    def _stop_loop(self, timeout: float = 5.0) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> BackgroundTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
