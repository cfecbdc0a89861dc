"""What a peer session reports: one small event per thing the received bytes meant.

Received blocks come as BlocksReceived: the Piece messages themselves, one event
for each run of them that nothing else interrupts. A request we should serve is
the Request message (after the session checked it); so are BEP 52's hash
request (to answer), hashes and hash reject (replies to ours). The rest are below.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.core import messages as m
from app.core.extension import ExtensionHandshake
from app.core.peer_wire import Handshake
from app.core.pieces import Block


@dataclass(slots=True)
class BlocksReceived:
    """Blocks that arrived one after another, in order, with their total size. Blocks
    come in bursts (a read holds about twenty), and the engine stores a burst in one
    call: per 16 KiB, a call and an event less. Each block's data is a view of the
    receive buffer (see peer_wire.MessageReader): copy it before the session reads again."""
    blocks: list[m.Piece]
    size: int = 0


@dataclass(frozen=True, slots=True)
class HandshakeReceived:
    handshake: Handshake


@dataclass(frozen=True, slots=True)
class PeerHas:
    """The peer announced pieces (bitfield, have_all or have): the new ones only."""
    pieces: Sequence[int]


@dataclass(frozen=True, slots=True)
class Choked:
    """The peer choked us. Without the fast extension every request we had out is
    dropped (`requests_dropped`); with it, each gets a piece or a reject_request."""
    requests_dropped: bool


@dataclass(frozen=True, slots=True)
class Unchoked:
    pass


@dataclass(frozen=True, slots=True)
class InterestChanged:
    """The peer's interest in our pieces changed."""
    interested: bool


@dataclass(frozen=True, slots=True)
class BlockRejected:
    block: Block


@dataclass(frozen=True, slots=True)
class ExtensionHandshakeReceived:
    handshake: ExtensionHandshake


Event = (BlocksReceived | HandshakeReceived | PeerHas | Choked | Unchoked | InterestChanged | BlockRejected
         | ExtensionHandshakeReceived | m.Request | m.Extended | m.Suggest | m.AllowedFast
         | m.HashRequest | m.Hashes | m.HashReject | m.Port)
