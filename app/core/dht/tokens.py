"""Tokens (BEP 5) and the peers others announce to us.

Our tokens: a node that asked us get_peers gets a token bound to its IP (not
its port, as libtorrent does), which it must hand back with announce_peer. The
secret changes every 5 minutes and the previous one stays valid, so a token
lives 5 to 10 minutes. Secrets come from the caller: the core draws no
randomness of its own.

The store keeps announced peers for 30 minutes, bounded per torrent and in
the number of torrents, so announcers cannot make it grow without end.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable

from app.core.tracker import PeerAddress

ROTATE_EVERY = 300.0
TOKEN_LENGTH = 8
PEER_TTL = 30 * 60.0
MAX_TORRENTS = 1000
MAX_PEERS_PER_TORRENT = 200
VALUES_PER_REPLY = 50          # a reply's values stay well inside one datagram


class TokenIssuer:
    def __init__(self, new_secret: Callable[[], bytes], now: float) -> None:
        self._new_secret = new_secret
        self._current = new_secret()
        self._previous = self._current
        self._rotated_at = now

    def _rotate(self, now: float) -> None:
        if now - self._rotated_at >= ROTATE_EVERY:
            self._previous, self._current = self._current, self._new_secret()
            self._rotated_at = now

    @staticmethod
    def _token(secret: bytes, host: str, info_hash: bytes) -> bytes:
        return hashlib.sha1(secret + ipaddress.ip_address(host).packed + info_hash).digest()[:TOKEN_LENGTH]

    def issue(self, host: str, info_hash: bytes, now: float) -> bytes:
        self._rotate(now)
        return self._token(self._current, host, info_hash)

    def valid(self, token: bytes, host: str, info_hash: bytes, now: float) -> bool:
        self._rotate(now)
        return token in (self._token(self._current, host, info_hash), self._token(self._previous, host, info_hash))


class PeerStore:
    def __init__(self) -> None:
        self._torrents: dict[bytes, dict[PeerAddress, float]] = {}   # info hash -> address -> expiry

    def add(self, info_hash: bytes, peer: PeerAddress, now: float) -> None:
        peers = self._torrents.get(info_hash)
        if peers is None:
            if len(self._torrents) >= MAX_TORRENTS:
                self._expire(now)
                if len(self._torrents) >= MAX_TORRENTS:
                    return
            peers = self._torrents[info_hash] = {}
        peers.pop(peer, None)
        if len(peers) >= MAX_PEERS_PER_TORRENT:
            peers.pop(next(iter(peers)))      # the oldest announce gives way
        peers[peer] = now + PEER_TTL

    def get(self, info_hash: bytes, now: float, limit: int = VALUES_PER_REPLY) -> list[PeerAddress]:
        peers = self._torrents.get(info_hash, {})
        live = [p for p, expiry in peers.items() if expiry > now]
        return live[-limit:]

    def _expire(self, now: float) -> None:
        for info_hash in list(self._torrents):
            peers = self._torrents[info_hash]
            for peer in [p for p, expiry in peers.items() if expiry <= now]:
                del peers[peer]
            if not peers:
                del self._torrents[info_hash]
