"""Magnet links (BEP 9): `magnet:?xt=urn:btih:<hash>&dn=<name>&tr=<tracker>&x.pe=<peer>&ws=<url>`.

A v2 torrent (BEP 52) is named by `xt=urn:btmh:1220<64 hex>`: a multihash whose
prefix 0x12 0x20 says sha2-256, 32 bytes. A hybrid torrent's link may carry both
`btih` and `btmh`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlsplit

from app.core.errors import MagnetError

BTIH_PREFIX = "urn:btih:"
BTMH_PREFIX = "urn:btmh:"
SHA256_MULTIHASH = "1220"   # multihash code 0x12 (sha2-256), digest length 0x20


@dataclass(frozen=True)
class MagnetLink:
    info_hash: bytes         # the 20 bytes used on the wire: btih, else the v2 hash truncated
    display_name: str | None
    trackers: tuple[str, ...]
    peers: tuple[str, ...]   # x.pe peer hints, as "host:port"
    info_hash_v2: bytes | None = None   # btmh: the full SHA-256 of the info dict (v2, hybrid)
    web_seeds: tuple[str, ...] = ()     # ws=: HTTP(S) mirrors of the data (BEP 19)

    @property
    def has_v1_hash(self) -> bool:
        """Whether `info_hash` is a SHA-1 (from btih) rather than a truncated v2 hash."""
        return self.info_hash_v2 is None or self.info_hash != self.info_hash_v2[:20]

    @property
    def tracker_tiers(self) -> tuple[tuple[str, ...], ...]:
        """Each tr= is its own tier, tried in the order given."""
        return tuple((t,) for t in self.trackers)


def parse_magnet(link: str) -> MagnetLink:
    """Parse a magnet link; a btih hash may be 40 hex or 32 base32 characters, a btmh
    one must be 1220 and 64 hex characters (SHA-256)."""
    try:
        parts = urlsplit(link.strip())
    except ValueError as exc:  # e.g. an unbalanced '[' in what looks like a host
        raise MagnetError(f"malformed magnet link: {exc}") from exc
    if parts.scheme.lower() != "magnet":
        raise MagnetError("not a magnet link (expected 'magnet:?...')")
    params = parse_qsl(parts.query, keep_blank_values=True)
    v1 = [v[len(BTIH_PREFIX):] for k, v in params if k == "xt" and v.lower().startswith(BTIH_PREFIX)]
    v2 = [v[len(BTMH_PREFIX):] for k, v in params if k == "xt" and v.lower().startswith(BTMH_PREFIX)]
    if not v1 and not v2:
        raise MagnetError("magnet link has no 'xt=urn:btih:' or 'xt=urn:btmh:' info hash")
    info_hash_v2 = _parse_btmh(v2[0]) if v2 else None
    return MagnetLink(
        info_hash=_parse_btih(v1[0]) if v1 else _parse_btmh(v2[0])[:20],
        display_name=next((v for k, v in params if k == "dn" and v), None),
        trackers=_unique(v for k, v in params if k == "tr" and v),
        peers=_unique(v for k, v in params if k == "x.pe" and v),
        info_hash_v2=info_hash_v2,
        web_seeds=web_seed_urls(v for k, v in params if k == "ws"),
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


def _parse_btmh(text: str) -> bytes:
    if not (set(text) <= _HEX and len(text) % 2 == 0 and len(text) >= 4):
        raise MagnetError(f"btmh hash {text!r} must be a multihash in hex (1220 and 64 hex characters)")
    if text[:4] != SHA256_MULTIHASH:
        raise MagnetError(f"btmh hash {text!r}: only sha2-256 multihashes (prefix 1220) are supported")
    if len(text) != 4 + 64:
        raise MagnetError(f"btmh hash {text!r}: a sha2-256 multihash is 1220 and 64 hex characters")
    return bytes.fromhex(text[4:])


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def format_magnet(info_hash: bytes | None, name: str | None = None, trackers: Iterable[str] = (),
                  info_hash_v2: bytes | None = None) -> str:
    """The inverse of parse_magnet: `magnet:?xt=urn:btih:<hex>&dn=<name>&tr=<url>...`,
    every value percent-encoded so that `&`, `=` or spaces in it survive.

    With `info_hash_v2`, `xt=urn:btmh:1220<hex>` follows btih (a hybrid), or stands alone
    when `info_hash` is None or only the v2 hash truncated (a v2-only torrent's
    `Info.info_hash`), so `format_magnet(info.info_hash, ..., info.info_hash_v2)` fits all."""
    topics = []
    if info_hash is not None and (info_hash_v2 is None or info_hash != info_hash_v2[:20]):
        topics.append(BTIH_PREFIX + info_hash.hex())
    if info_hash_v2 is not None:
        topics.append(BTMH_PREFIX + SHA256_MULTIHASH + info_hash_v2.hex())
    if not topics:
        raise ValueError("a magnet link needs an info hash")
    link = "magnet:?" + "&".join("xt=" + topic for topic in topics)
    if name:
        link += "&dn=" + quote(name, safe="")
    return link + "".join("&tr=" + quote(url, safe="") for url in trackers)


def web_seed_urls(candidates: Iterable[str]) -> tuple[str, ...]:
    """Web seeds (BEP 19), from a .torrent's url-list or a magnet's ws=: only http(s)
    URLs are kept, once each, in order; others are ignored."""
    urls: list[str] = []
    for candidate in candidates:
        url = candidate.strip()
        if url.lower().startswith(("http://", "https://")) and url not in urls:
            urls.append(url)
    return tuple(urls)
