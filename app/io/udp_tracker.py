"""Announce to a UDP tracker (BEP 15) over an asyncio datagram socket.

All packet handling lives in app.core.udp_tracker; this module only resolves
the host, sends, waits and retransmits.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from collections.abc import Callable
from typing import TypeVar

from app.core.errors import TrackerError
from app.core.tracker import AnnounceRequest, AnnounceResponse
from app.core.udp_tracker import (
    FIRST_WAIT,
    ConnectionIdCache,
    build_announce_request,
    build_connect_request,
    parse_announce_response,
    parse_connect_response,
    parse_udp_url,
    retry_timeouts,
)

T = TypeVar("T")

# Shared by every announce in this process, keyed by (ip, port) of the tracker.
CONNECTION_IDS = ConnectionIdCache()


async def announce_udp(url: str, request: AnnounceRequest, *, timeout: float = 15.0,
                       first_wait: float = FIRST_WAIT) -> AnnounceResponse:
    """Connect (unless a connection id is cached) and announce, all within `timeout` s.

    Unanswered packets are sent again after first_wait * 2**n seconds.
    Raises TrackerError if the tracker refuses, or stays silent for `timeout`.
    """
    host, port = parse_udp_url(url)
    family, address = await _resolve(url, host, port)
    loop = asyncio.get_running_loop()
    receiver = _Receiver()
    try:
        transport, _ = await loop.create_datagram_endpoint(
            lambda: receiver, remote_addr=address, family=family)
    except OSError as exc:
        raise TrackerError(f"{url}: cannot open a UDP socket: {exc}") from exc
    try:
        exchange = _Exchange(transport, receiver, retry_timeouts(timeout, first_wait),
                             deadline=loop.time() + timeout)
        return await _connect_and_announce(exchange, address[:2], request,
                                           ipv6=family == socket.AF_INET6)
    except _OutOfTime:
        detail = f" (last error: {receiver.last_error})" if receiver.last_error else ""
        raise TrackerError(f"{url}: no reply within {timeout:g} s{detail}") from None
    except TrackerError as exc:
        if str(exc).startswith(url):
            raise
        raise TrackerError(f"{url}: {exc}") from exc
    finally:
        transport.close()


async def _connect_and_announce(exchange: _Exchange, key: tuple, request: AnnounceRequest,
                                *, ipv6: bool) -> AnnounceResponse:
    # One transaction id per step: a late reply to an earlier copy still counts.
    connect_tid, announce_tid = secrets.randbits(32), secrets.randbits(32)
    packet_for = lambda cid: build_announce_request(cid, announce_tid, request)  # noqa: E731
    parse = lambda data: parse_announce_response(data, announce_tid, ipv6=ipv6)  # noqa: E731
    cached = CONNECTION_IDS.get(key, time.monotonic())
    if cached is not None:
        # One short try with the cached id; silence may mean the tracker forgot it.
        response = await _announce_step(exchange, key, packet_for(cached), parse, exchange.waits[:1])
        if response is not None:
            return response
        CONNECTION_IDS.forget(key)
    connection_id = await exchange.ask(build_connect_request(connect_tid),
                                       lambda data: parse_connect_response(data, connect_tid))
    if connection_id is None:
        raise _OutOfTime
    CONNECTION_IDS.put(key, connection_id, time.monotonic())
    response = await _announce_step(exchange, key, packet_for(connection_id), parse)
    if response is None:
        CONNECTION_IDS.forget(key)
        raise _OutOfTime
    return response


async def _announce_step(exchange: _Exchange, key: tuple, packet: bytes,
                         parse: Callable[[bytes], AnnounceResponse | None],
                         waits: tuple[float, ...] | None = None) -> AnnounceResponse | None:
    try:
        return await exchange.ask(packet, parse, waits)
    except TrackerError:
        CONNECTION_IDS.forget(key)  # some trackers refuse a stale id this way
        raise


REFUSED = b""   # queued by _Receiver when the port is closed; no real datagram is empty here


class _OutOfTime(Exception):
    """Every wait of the retry schedule has passed without the reply we need."""


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.datagrams: asyncio.Queue[bytes] = asyncio.Queue()
        self.last_error: Exception | None = None

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.datagrams.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable: nothing listens there. Waiting out the whole
        # retry schedule for a closed port would cost the user seconds per tracker.
        self.last_error = exc
        if isinstance(exc, ConnectionRefusedError):
            self.datagrams.put_nowait(REFUSED)


class _Exchange:
    """Sends packets and waits for the matching reply, within one overall deadline."""

    def __init__(self, transport: asyncio.DatagramTransport, receiver: _Receiver,
                 waits: tuple[float, ...], *, deadline: float) -> None:
        self._transport = transport
        self._receiver = receiver
        self.waits = waits
        self._deadline = deadline

    async def ask(self, packet: bytes, parse: Callable[[bytes], T | None],
                  waits: tuple[float, ...] | None = None) -> T | None:
        """Send `packet`, again after each wait of the schedule (BEP 15 starts it
        afresh for every request), until `parse` accepts a reply. None when the
        schedule runs out; _OutOfTime when the overall deadline passes."""
        loop = asyncio.get_running_loop()
        for wait in self.waits if waits is None else waits:
            if loop.time() >= self._deadline:
                raise _OutOfTime
            until = min(loop.time() + wait, self._deadline)
            self._transport.sendto(packet)
            while (left := until - loop.time()) > 0:  # bounded by the deadline
                try:
                    async with asyncio.timeout(left):
                        data = await self._receiver.datagrams.get()
                except TimeoutError:
                    break
                if data is REFUSED:
                    raise TrackerError("connection refused (no tracker on that port)")
                reply = parse(data)
                if reply is not None:
                    return reply
        if loop.time() >= self._deadline:
            raise _OutOfTime
        return None


async def _resolve(url: str, host: str, port: int) -> tuple[int, tuple]:
    """Address family and socket address of the tracker (first result wins)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise TrackerError(f"{url}: cannot resolve {host}: {exc}") from exc
    if not infos:
        raise TrackerError(f"{url}: cannot resolve {host}")
    family, _, _, _, address = infos[0]
    return family, address
