"""Magnet links (BEP 9): `magnet:?xt=urn:btih:<hash>&dn=<name>&tr=<tracker>&x.pe=<peer>`."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlsplit

from app.core.errors import MagnetError

BTIH_PREFIX = "urn:btih:"


@dataclass(frozen=True)
class MagnetLink:
    info_hash: bytes
    display_name: str | None
    trackers: tuple[str, ...]
    peers: tuple[str, ...]   # x.pe peer hints, as "host:port"

    @property
    def tracker_tiers(self) -> tuple[tuple[str, ...], ...]:
        """Each tr= is its own tier, tried in the order given."""
        return tuple((t,) for t in self.trackers)


def parse_magnet(link: str) -> MagnetLink:
    """Parse a magnet link; the info hash may be 40 hex or 32 base32 characters."""
    try:
        parts = urlsplit(link.strip())
    except ValueError as exc:  # e.g. an unbalanced '[' in what looks like a host
        raise MagnetError(f"malformed magnet link: {exc}") from exc
    if parts.scheme.lower() != "magnet":
        raise MagnetError("not a magnet link (expected 'magnet:?...')")
    params = parse_qsl(parts.query, keep_blank_values=True)
    hashes = [v for k, v in params if k == "xt" and v.lower().startswith(BTIH_PREFIX)]
    if not hashes:
        raise MagnetError("magnet link has no 'xt=urn:btih:' info hash")
    return MagnetLink(
        info_hash=_parse_btih(hashes[0][len(BTIH_PREFIX):]),
        display_name=next((v for k, v in params if k == "dn" and v), None),
        trackers=_unique(v for k, v in params if k == "tr" and v),
        peers=_unique(v for k, v in params if k == "x.pe" and v),
    )


_HEX = frozenset("0123456789abcdefABCDEF")
_BASE32 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


def _parse_btih(text: str) -> bytes:
    # Check the alphabet first: fromhex skips spaces and b32decode takes '=' padding.
    try:
        if len(text) == 40 and set(text) <= _HEX:
            return bytes.fromhex(text)
        if len(text) == 32 and set(text.upper()) <= _BASE32:
            return base64.b32decode(text.upper())
    except (ValueError, binascii.Error) as exc:
        raise MagnetError(f"bad info hash {text!r} in magnet link") from exc
    raise MagnetError(f"info hash {text!r} must be 40 hex or 32 base32 characters")


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def format_magnet(info_hash: bytes, name: str | None = None, trackers: Iterable[str] = ()) -> str:
    """The inverse of parse_magnet: `magnet:?xt=urn:btih:<hex>&dn=<name>&tr=<url>...`,
    every value percent-encoded so that `&`, `=` or spaces in it survive."""
    link = "magnet:?xt=" + BTIH_PREFIX + info_hash.hex()
    if name:
        link += "&dn=" + quote(name, safe="")
    return link + "".join("&tr=" + quote(url, safe="") for url in trackers)
