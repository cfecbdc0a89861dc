"""Talking to trackers: HTTP(S) announces via requests; the codecs are in app.core.tracker."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from app.core.errors import TrackerError
from app.core.tiers import TrackerTiers
from app.core.tracker import AnnounceRequest, AnnounceResponse, announce_url, parse_announce_response
from app.io import trace

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20      # a real announce reply is a few KiB; refuse to buffer more
MAX_REDIRECTS = 5
USER_AGENT = "py-bittorrent-toolkit/0.1"


def announce_http(url: str, request: AnnounceRequest, timeout: float = 10.0) -> AnnounceResponse:
    """One blocking HTTP(S) announce. Any failure raises TrackerError naming the tracker."""
    import requests  # imported here: it costs ~80 ms, and most commands never need it
    deadline = time.monotonic() + timeout
    with requests.Session() as session:
        session.max_redirects = MAX_REDIRECTS
        try:
            with session.get(announce_url(url, request), timeout=timeout, stream=True,
                             headers={"User-Agent": USER_AGENT}) as reply:
                if reply.status_code != 200:
                    raise TrackerError(f"{url}: HTTP {reply.status_code}")
                body = _read_body(reply, url, deadline)
        except requests.TooManyRedirects as exc:
            raise TrackerError(f"{url}: too many redirects") from exc
        except requests.RequestException as exc:
            raise TrackerError(f"{url}: {_reason(exc)}") from exc
    if len(body) > MAX_BODY:
        raise TrackerError(f"{url}: reply larger than {MAX_BODY} bytes")
    try:
        response = parse_announce_response(body)
    except TrackerError as exc:
        raise TrackerError(f"{url}: {exc}") from exc
    if response.warning:
        log.warning("tracker %s warns: %s", url, response.warning)
    return response


def _read_body(reply, url: str, deadline: float) -> bytes:
    """At most MAX_BODY + 1 bytes, and no later than `deadline`: requests' own
    timeout bounds each read, so a tracker trickling bytes could last forever."""
    body = bytearray()
    for chunk in reply.iter_content(16 * 1024):
        body += chunk
        if len(body) > MAX_BODY:
            break
        if time.monotonic() > deadline:
            raise TrackerError(f"{url}: reply still incomplete after the timeout")
    return bytes(body)


async def announce(url: str, request: AnnounceRequest, timeout: float = 10.0) -> AnnounceResponse:
    """Announce to one tracker of any supported scheme (shown by --trace when it is on)."""
    tracer = trace.ACTIVE
    if tracer is None:
        return await _announce(url, request, timeout)
    tracer.announce_sent(url, request)
    try:
        reply = await _announce(url, request, timeout)
    except TrackerError as exc:
        tracer.announce_failed(url, exc)
        raise
    tracer.announce_received(url, reply)
    return reply


async def _announce(url: str, request: AnnounceRequest, timeout: float) -> AnnounceResponse:
    scheme = url.split(":", 1)[0].lower()
    if scheme in ("http", "https"):
        return await _in_daemon_thread(announce_http, timeout + 1.0, url, request, timeout)
    if scheme == "udp":
        from app.io.udp_tracker import announce_udp
        return await announce_udp(url, request, timeout=timeout)
    raise TrackerError(f"{url}: unsupported tracker scheme {scheme!r}")


async def _in_daemon_thread(function, deadline: float, *args):
    """Run a blocking call in a daemon thread and stop waiting after `deadline` s.

    Not asyncio.to_thread: a tracker that trickles bytes can keep the HTTP call
    going, and the default executor's threads hold up the process's exit."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def run() -> None:
        try:
            result = function(*args)
        except BaseException as exc:  # handed to the waiting coroutine
            loop.call_soon_threadsafe(_settle, future, None, exc)
        else:
            loop.call_soon_threadsafe(_settle, future, result, None)

    threading.Thread(target=run, daemon=True, name="tracker-http").start()
    try:
        async with asyncio.timeout(deadline):
            return await future
    except TimeoutError:
        raise TrackerError(f"{args[0]}: no complete reply within {deadline - 1.0:g} s") from None


def _settle(future: asyncio.Future, result, exc: BaseException | None) -> None:
    if future.done():
        return  # the caller gave up already
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _reason(exc: Exception) -> str:
    import requests
    if isinstance(exc, requests.ConnectionError):
        return "cannot connect"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return type(exc).__name__


async def announce_first(tiers: TrackerTiers, request: AnnounceRequest,
                         timeout: float = 10.0) -> tuple[str, AnnounceResponse]:
    """Try trackers tier by tier (BEP 12) until one answers, and promote it in its
    tier. When all fail, the error names every tracker and why."""
    failures = []
    for url in tiers:
        try:
            reply = await announce(url, request, timeout)
        except TrackerError as exc:
            log.info("tracker failed: %s", exc)
            failures.append(str(exc))
            continue
        tiers.promote(url)
        return url, reply
    if not failures:
        raise TrackerError("no tracker to ask (none listed; use --peer)")
    raise TrackerError("every tracker failed: " + "; ".join(failures))
