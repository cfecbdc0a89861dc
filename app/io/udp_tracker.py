"""Announce to a UDP tracker (BEP 15) over an asyncio datagram socket.

All packet handling lives in app.core.udp_tracker; this module only resolves
the host, sends, waits and retransmits.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from typing import Callable, TypeVar

from app.core.errors import TrackerError
from app.core.tracker import AnnounceRequest, AnnounceResponse
from app.core.udp_tracker import (FIRST_WAIT, ConnectionIdCache, build_announce_request,
                                  build_connect_request, parse_announce_response,
                                  parse_connect_response, parse_udp_url, retry_timeouts)

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
    finally:
        transport.close()


async def _connect_and_announce(exchange: _Exchange, key: tuple, request: AnnounceRequest,
                                *, ipv6: bool) -> AnnounceResponse:
    # One transaction id per step: a late reply to an earlier copy still counts.
    connect_tid, announce_tid = secrets.randbits(32), secrets.randbits(32)
    while True:  # each pass uses up at least one wait; _OutOfTime ends the loop
        connection_id = CONNECTION_IDS.get(key, time.monotonic())
        if connection_id is None:
            connection_id = await exchange.ask(
                build_connect_request(connect_tid),
                lambda data: parse_connect_response(data, connect_tid))
            if connection_id is None:
                continue
            CONNECTION_IDS.put(key, connection_id, time.monotonic())
        packet = build_announce_request(connection_id, announce_tid, request)
        try:
            response = await exchange.ask(
                packet, lambda data: parse_announce_response(data, announce_tid, ipv6=ipv6))
        except TrackerError:
            CONNECTION_IDS.forget(key)  # some trackers refuse a stale id this way
            raise
        if response is not None:
            return response
        # Silence may mean the tracker forgot our id (e.g. it restarted): get a new one.
        CONNECTION_IDS.forget(key)


class _OutOfTime(Exception):
    """Every wait of the retry schedule has passed without the reply we need."""


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.datagrams: asyncio.Queue[bytes] = asyncio.Queue()
        self.last_error: OSError | None = None

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.datagrams.put_nowait(data)

    def error_received(self, exc: OSError) -> None:
        # e.g. ICMP port unreachable; the tracker may still come up, so keep waiting
        self.last_error = exc


class _Exchange:
    """Sends packets and waits for the matching reply, one retry-schedule wait at a time."""

    def __init__(self, transport: asyncio.DatagramTransport, receiver: _Receiver,
                 waits: tuple[float, ...], *, deadline: float) -> None:
        self._transport = transport
        self._receiver = receiver
        self._waits = iter(waits)
        self._deadline = deadline

    async def ask(self, packet: bytes, parse: Callable[[bytes], T | None]) -> T | None:
        """Send `packet` and return the first reply `parse` accepts, or None when
        this wait ends first. Raises _OutOfTime when no waits are left."""
        loop = asyncio.get_running_loop()
        wait = next(self._waits, None)
        if wait is None or loop.time() >= self._deadline:
            raise _OutOfTime
        until = min(loop.time() + wait, self._deadline)
        self._transport.sendto(packet)
        while (left := until - loop.time()) > 0:  # bounded by the deadline
            try:
                data = await asyncio.wait_for(self._receiver.datagrams.get(), left)
            except asyncio.TimeoutError:
                break
            reply = parse(data)
            if reply is not None:
                return reply
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
