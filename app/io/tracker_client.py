"""Talking to trackers: HTTP(S) announces via requests; the codecs are in app.core.tracker."""

from __future__ import annotations

import asyncio
import logging

from app.core.errors import TrackerError
from app.core.tiers import TrackerTiers
from app.core.tracker import AnnounceRequest, AnnounceResponse, announce_url, parse_announce_response

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20      # a real announce reply is a few KiB; refuse to buffer more
MAX_REDIRECTS = 5
USER_AGENT = "py-bittorrent-toolkit/0.1"


def announce_http(url: str, request: AnnounceRequest, timeout: float = 10.0) -> AnnounceResponse:
    """One blocking HTTP(S) announce. Any failure raises TrackerError naming the tracker."""
    import requests  # imported here: it costs ~80 ms, and most commands never need it
    with requests.Session() as session:
        session.max_redirects = MAX_REDIRECTS
        try:
            with session.get(announce_url(url, request), timeout=timeout, stream=True,
                             headers={"User-Agent": USER_AGENT}) as reply:
                if reply.status_code != 200:
                    raise TrackerError(f"{url}: HTTP {reply.status_code}")
                body = reply.raw.read(MAX_BODY + 1, decode_content=True)
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


async def announce(url: str, request: AnnounceRequest, timeout: float = 10.0) -> AnnounceResponse:
    """Announce to one tracker of any supported scheme."""
    scheme = url.split(":", 1)[0].lower()
    if scheme in ("http", "https"):
        return await asyncio.to_thread(announce_http, url, request, timeout)
    if scheme == "udp":
        from app.io.udp_tracker import announce_udp
        return await announce_udp(url, request, timeout=timeout)
    raise TrackerError(f"{url}: unsupported tracker scheme {scheme!r}")


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
