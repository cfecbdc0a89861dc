"""BEP 52's hash messages on a peer connection: the part of PeerSession (app.core.session)
that sends hash requests, matches the replies, and passes on requests to answer.

A connection speaks them only when it is v2 (`v2`, decided at the handshake): libtorrent
drops a peer that sends them otherwise. Answers come from app.core.hash_exchange.
"""

from __future__ import annotations

from app.core import messages as m
from app.core.errors import ProtocolError
from app.core.session_events import Event

HashKey = tuple[bytes, int, int, int, int]   # pieces root, base layer, index, length, proof layers


class HashMessages:
    """Mixed into PeerSession, which provides `_send` and `metadata_only`."""
    metadata_only: bool

    def __init__(self) -> None:
        self.v2 = False                             # the connection speaks BEP 52's hash messages
        self.hash_requests_out: dict[HashKey, None] = {}   # ours, unanswered

    def _send(self, data: bytes) -> None:
        raise NotImplementedError

    def _on_hash_message(self, message: m.HashRequest | m.Hashes | m.HashReject) -> Event | None:
        """BEP 52. A request is the engine's to answer (app.core.hash_exchange); before the
        metadata there is nothing to answer from, so it is rejected here. Replies must
        match a request we sent; an unmatched reject is ignored, as libtorrent does."""
        if not self.v2:
            raise ProtocolError(f"{type(message).__name__} on a connection without BitTorrent v2")
        if isinstance(message, m.HashRequest):
            if self.metadata_only:
                self._send(m.HashReject(*message.key).encode())
                return None
            return message
        if message.key not in self.hash_requests_out:
            if isinstance(message, m.Hashes):
                raise ProtocolError("hashes that were never asked for")
            return None
        del self.hash_requests_out[message.key]
        return message

    def request_hashes(self, request: m.HashRequest) -> None:
        """BEP 52: ask for hashes (whatever our choke state); only on a v2 connection."""
        if not self.v2:
            raise ValueError("hash requests need a BitTorrent v2 connection")
        self.hash_requests_out[request.key] = None
        self._send(request.encode())

    def send_hashes(self, answer: m.Hashes | m.HashReject) -> None:
        """Answer one of their hash requests (app.core.hash_exchange.answer_hash_request)."""
        self._send(answer.encode())
