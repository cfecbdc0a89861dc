"""Piece picking: which blocks to ask which peer for, as a pure state machine.

Policy, in order:
1. finish pieces already started (fewer pieces half-done in memory);
2. otherwise start the rarest piece the peer has, ties broken at random by
   extent: the pieces of one extent in order, so they finish side by side and
   reach the disk in one write (app.core.write_batch);
3. endgame: once every missing block is requested, ask other peers for the
   blocks still outstanding, and cancel the spare copies when one arrives.

Peers are opaque hashable keys. The picker keeps each in-flight piece's
buffer, so the caller only verifies and stores complete pieces.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from app.core.errors import ProtocolError
from app.core.pieces import BLOCK_SIZE, Block, LocalPieces, PieceBuffer, blocks_of_piece
from app.core.selection import sequential_pick
from app.core.write_batch import extent_order

Peer = Hashable
# Endgame duplicates are bounded: each block is asked of at most this many
# peers, and a peer takes at most this many spare blocks per refill.
ENDGAME_COPIES = 2
ENDGAME_REQUESTS = 16


@dataclass
class _InFlight:
    """A piece being downloaded."""
    index: int
    buffer: PieceBuffer
    unrequested: list[Block]                   # popped from the end
    requesters: dict[int, set[Peer]] = field(default_factory=dict)  # begin -> peers asked
    sources: dict[int, Hashable] = field(default_factory=dict)  # begin received -> peer that sent it
    exclusive: bool = False                    # refetch of a piece that failed with mixed sources
    owner: Hashable | None = None              # the one peer allowed on an exclusive piece
    block_count: int = 0


@dataclass(frozen=True)
class BlockOutcome:
    """What a received block means: a complete piece to verify, and cancels to send."""
    piece: PieceBuffer | None = None   # the picker's buffer: hand it back with recycle()
    index: int | None = None
    cancels: tuple[tuple[Peer, Block], ...] = ()
    duplicate: bool = False


_DUPLICATE = BlockOutcome(duplicate=True)


class ReceivedBlock(Protocol):
    """A block as it arrives: messages.Piece is one."""
    @property
    def index(self) -> int: ...
    @property
    def begin(self) -> int: ...
    @property
    def block(self) -> bytes | bytearray | memoryview: ...


class _Received(NamedTuple):
    index: int  # type: ignore[assignment]  # shadows tuple.index(), which nothing here calls
    begin: int
    block: bytes | bytearray | memoryview


@dataclass(slots=True)
class Arrivals:
    """What a burst of received blocks means (on_blocks)."""
    new_bytes: int                              # blocks we did not have yet (not late copies)
    pieces: list[tuple[int, PieceBuffer]]       # completed: verify them, then recycle() the buffers
    cancels: list[tuple[Peer, Block]]           # endgame spares to cancel with other peers


class PiecePicker:
    def __init__(self, piece_sizes: Sequence[int], have: Iterable[int] = (),
                 wanted: Iterable[int] | None = None, max_active_pieces: int = 64,
                 rng: random.Random | None = None, block_size: int = BLOCK_SIZE,
                 sequential_window: int = 0, new_buffer: Callable[[int], PieceBuffer] = bytearray,
                 extent_pieces: int = 1) -> None:
        self.piece_sizes = list(piece_sizes)
        self.sequential_window = sequential_window   # > 0: --sequential (see selection.sequential_pick)
        self._sequential_start = 0                   # every piece below it is done or unwanted
        self.block_size = block_size
        self.max_active_pieces = max(1, max_active_pieces)
        self._rng = rng or random.Random()
        self.done: set[int] = set(have)
        wanted_set = set(range(len(self.piece_sizes)) if wanted is None else wanted)
        self.missing: set[int] = wanted_set - self.done   # not done, not in flight
        self.wanted = wanted_set
        self.local = LocalPieces(len(self.piece_sizes), self.done, wanted_set)   # the same, as bytes per piece
        self.availability = [0] * len(self.piece_sizes)
        self._tiebreak = extent_order(len(self.piece_sizes), max(1, extent_pieces), self._rng)
        self._order: list[int] = []
        self._order_dirty = True
        self.active: dict[int, _InFlight] = {}
        self.verifying: set[int] = set()
        self.outstanding: dict[Peer, set[Block]] = {}
        # A pick stopped at max_active_pieces: a peer may now sit idle until a piece
        # completes and frees a buffer. The caller then asks everyone again and clears it.
        self.held_back = False
        self._allocate = new_buffer   # a zeroed buffer of a piece's size
        self._spare_buffers: dict[int, list[PieceBuffer]] = {}   # by size, see recycle()
        self._sources: dict[int, dict[int, Peer]] = {}   # pieces being verified -> who sent each block
        # Pieces that failed with blocks from several peers: block hashes of the bad
        # copy, to find the culprits by comparison once a good copy verifies.
        self._suspects: dict[int, dict[int, tuple[bytes, Peer]]] = {}
        # Requests cancelled or timed out, which may still be answered: a count per
        # block, as the same block can be asked of the same peer again later.
        self._withdrawn: dict[Peer, Counter[Block]] = {}

    def restore(self, indices: Iterable[int]) -> None:
        """Pieces found verified on disk before the download starts (resume)."""
        for i in indices:
            self.done.add(i)
            self.missing.discard(i)
            self.local.add(i)
        self._order_dirty = True

    # --- availability ---------------------------------------------------------

    def peer_has(self, indices: Iterable[int], delta: int = 1) -> None:
        """Count pieces a peer announced (bitfield or have); delta=-1 when it leaves."""
        for i in indices:
            self.availability[i] += delta
        self._order_dirty = True

    # --- progress -------------------------------------------------------------

    def is_downloading(self, index: int) -> bool:
        """Whether a piece has been started and is still coming in. (Not-yet-started
        pieces do not count: nobody may ever send them.)"""
        return index in self.active

    @property
    def complete(self) -> bool:
        # The length test first: a subset test walks the set, and this runs once per batch.
        return len(self.done) >= len(self.wanted) and self.wanted <= self.done

    @property
    def in_endgame(self) -> bool:
        return not self.missing and all(not p.unrequested for p in self.active.values())

    def bytes_left(self) -> int:
        return sum(self.piece_sizes[i] for i in self.wanted - self.done)

    # --- picking ----------------------------------------------------------------

    def pick(self, peer: Peer, peer_has: Sequence[int], count: int, one_piece: bool = False) -> list[Block]:
        """Up to `count` blocks to request from `peer`, which has pieces `peer_has`.
        `one_piece`: all from the same piece (a web seed asks for one range per piece)."""
        mine = self.outstanding.get(peer)
        if mine is None:
            mine = self.outstanding[peer] = set()
        picked: list[Block] = []
        for piece in self._started_pieces(peer_has):
            if len(picked) >= count or (one_piece and picked):
                break
            self._take_from(piece, peer, count - len(picked), picked)
        # Pieces waiting for their hash check hold a buffer too: count them, so a
        # disk slower than the network slows the download instead of filling memory.
        while len(picked) < count and not (one_piece and picked):
            if len(self.active) + len(self.verifying) >= self.max_active_pieces:
                self.held_back = True   # the caller asks again once a piece is done (see held_back)
                break
            index = self._sequential_missing(peer_has) if self.sequential_window else self._rarest_missing(peer_has)
            if index is None:
                break
            self._take_from(self._start(index), peer, count - len(picked), picked)
        if not picked and self.in_endgame:
            picked = self._endgame_blocks(peer, peer_has, mine, min(count, ENDGAME_REQUESTS))
        mine.update(picked)
        return picked

    def _started_pieces(self, peer_has: Sequence[int]) -> list[_InFlight]:
        return [p for p in self.active.values() if p.unrequested and peer_has[p.index]]

    @staticmethod
    def _may_take(piece: _InFlight, peer: Peer) -> bool:
        return not piece.exclusive or piece.owner in (None, peer)

    def _take_from(self, piece: _InFlight, peer: Peer, n: int, out: list[Block]) -> None:
        if n <= 0 or not self._may_take(piece, peer):
            return
        if piece.exclusive:
            piece.owner = peer
        unrequested, requesters = piece.unrequested, piece.requesters
        taken = unrequested[-n:]   # popped from the end, as they were queued
        del unrequested[-n:]
        taken.reverse()
        for block in taken:   # an unrequested block has no requesters (see release)
            requesters[block.begin] = {peer}
        out.extend(taken)

    def _rarest_missing(self, peer_has: Sequence[int]) -> int | None:
        if self._order_dirty:
            self._order = sorted(self.missing, key=lambda i: (self.availability[i], self._tiebreak[i]))
            self._order.reverse()   # rarest last, so started pieces are popped off the end
            self._order_dirty = False
        order, missing = self._order, self.missing
        while order and order[-1] not in missing:
            order.pop()   # started since the sort: without this every pick rescans them
        for i in reversed(order):
            if i in missing and peer_has[i]:
                return i
        return None

    def _sequential_missing(self, peer_has: Sequence[int]) -> int | None:
        start, count = self._sequential_start, len(self.piece_sizes)
        while start < count and (start in self.done or start not in self.wanted):
            start += 1
        self._sequential_start = start
        return sequential_pick(start, self.missing, peer_has, self.availability, self.sequential_window)

    def _start(self, index: int) -> _InFlight:
        self.missing.discard(index)
        blocks = blocks_of_piece(index, self.piece_sizes[index], self.block_size)
        piece = _InFlight(index, self._new_buffer(self.piece_sizes[index]), blocks[::-1], block_count=len(blocks),
                          exclusive=index in self._suspects)
        self.active[index] = piece
        return piece

    def _endgame_blocks(self, peer: Peer, peer_has: Sequence[int], mine: set[Block],
                        count: int) -> list[Block]:
        """Blocks requested from others but not yet received, fewest requesters first."""
        spare = []
        for piece in self.active.values():
            if not peer_has[piece.index] or not self._may_take(piece, peer):
                continue
            for begin, askers in piece.requesters.items():
                if begin not in piece.sources and peer not in askers and len(askers) < ENDGAME_COPIES:
                    spare.append((len(askers), piece.index, begin))
        spare.sort()
        picked = []
        for _, index, begin in spare[:count]:
            piece = self.active[index]
            piece.requesters[begin].add(peer)
            picked.append(Block(index, begin, min(self.block_size, len(piece.buffer) - begin)))
        return picked

    # --- results ------------------------------------------------------------------

    def on_blocks(self, peer: Peer, blocks: Iterable[ReceivedBlock]) -> Arrivals:
        """Store blocks received from `peer`, in order. A block we never asked this
        peer for is an error. The hot path of a download: per 16 KiB, one set removal,
        a few dict operations and one copy; everything else once per burst."""
        mine = self.outstanding.get(peer) or set()
        active, verifying, sources_of = self.active, self.verifying, self._sources
        new_bytes = 0
        pieces: list[tuple[int, PieceBuffer]] = []
        cancels: list[tuple[Peer, Block]] = []
        for received in blocks:
            index, begin, data = received.index, received.begin, received.block
            length = len(data)
            # A plain tuple equal to the Block, and hashed alike, is enough for the lookups
            # below; building the named tuple would cost five times as much.
            key: Block = (index, begin, length)   # type: ignore[assignment]
            try:
                mine.remove(key)
            except KeyError:
                self._late_answer(peer, key)
            piece = active.get(index)
            if piece is None or begin in piece.sources:
                continue   # a late copy of a block we already have
            piece.buffer[begin:begin + length] = data
            piece.sources[begin] = peer
            new_bytes += length
            askers = piece.requesters.pop(begin, None)
            if askers is None:
                # Nobody is asked for it: released (timeout, choke) and put back, a late answer.
                if key in piece.unrequested:
                    piece.unrequested.remove(key)
            elif len(askers) > 1 or peer not in askers:   # others were asked for it too
                self._withdraw_spares(peer, Block(*key), askers, cancels)
            if len(piece.sources) == piece.block_count:
                del active[index]
                verifying.add(index)
                sources_of[index] = piece.sources
                pieces.append((index, piece.buffer))
        return Arrivals(new_bytes, pieces, cancels)

    def on_block(self, peer: Peer, index: int, begin: int, data: bytes | bytearray | memoryview) -> BlockOutcome:
        """One block (see on_blocks): for a source that delivers a block at a time."""
        arrivals = self.on_blocks(peer, (_Received(index, begin, data),))
        if not arrivals.new_bytes:
            return _DUPLICATE
        done = arrivals.pieces[0] if arrivals.pieces else (None, None)
        return BlockOutcome(piece=done[1], index=done[0], cancels=tuple(arrivals.cancels))

    def _withdraw_spares(self, peer: Peer, block: Block, askers: set[Peer],
                         cancels: list[tuple[Peer, Block]]) -> None:
        """Endgame: `peer` answered first; the others asked for the block get a cancel."""
        for other in askers - {peer}:
            cancels.append((other, block))
            self.outstanding.get(other, set()).discard(block)
            self._withdrawn.setdefault(other, Counter())[block] += 1

    def _late_answer(self, peer: Peer, block: Block) -> None:
        """A block that is no longer outstanding: fine if we cancelled or released
        the request (the answer may cross the cancel), an error otherwise."""
        withdrawn = self._withdrawn.get(peer)
        if withdrawn is None or withdrawn[block] <= 0:
            index, begin, length = block
            raise ProtocolError(f"unrequested block {index}:{begin}+{length}")
        withdrawn[block] -= 1

    def _new_buffer(self, size: int) -> PieceBuffer:
        spares = self._spare_buffers.get(size)
        return spares.pop() if spares else self._allocate(size)

    def recycle(self, buffer: PieceBuffer) -> None:
        """Take back a finished piece's buffer (verified and stored, or failed) for
        reuse: allocating and freeing a buffer per piece costs page faults (and on a
        virtual machine the host's faults too). Up to `max_active_pieces` are kept: no
        more buffers than were ever alive at once, so peak memory does not grow."""
        spares = self._spare_buffers.setdefault(len(buffer), [])
        if len(spares) < self.max_active_pieces:
            spares.append(buffer)

    def verified(self, index: int, data: bytes | PieceBuffer | None = None) -> set[Peer]:
        """The piece is good and stored. Returns the peers proven to have sent bad
        blocks for it earlier (their blocks differ from the good copy)."""
        self.verifying.discard(index)
        self._sources.pop(index, None)
        self.done.add(index)
        self.local.add(index)
        suspect = self._suspects.pop(index, None)
        if suspect is None or data is None:
            return set()
        return {peer for begin, (digest, peer) in suspect.items()
                if _block_digest(data, begin, self.block_size) != digest}

    def failed(self, index: int, data: bytes | PieceBuffer) -> set[Peer]:
        """The piece failed its hash check and will be fetched again. Returns the
        peers to blame now: the sender, when one peer sent every block. With
        several senders nobody is blamed yet: the piece is refetched from one
        peer alone, and `verified` later names whoever sent the bad blocks."""
        self.verifying.discard(index)
        self.missing.add(index)
        self._order_dirty = True
        sources = self._sources.pop(index, {})
        senders = set(sources.values())
        if len(senders) <= 1:
            return senders
        self._suspects[index] = {begin: (_block_digest(data, begin, self.block_size), peer)
                                 for begin, peer in sources.items()}
        return set()

    def release(self, peer: Peer, blocks: Iterable[Block] | None = None) -> None:
        """Give back blocks a peer will not deliver (timeout, choke, disconnect)."""
        mine = self.outstanding.get(peer, set())
        everything = blocks is None
        for block in list(mine if blocks is None else blocks):
            mine.discard(block)
            if not everything:
                self._withdrawn.setdefault(peer, Counter())[block] += 1
            piece = self.active.get(block.index)
            if piece is None or block.begin in piece.sources:
                continue
            askers = piece.requesters.get(block.begin, set())
            askers.discard(peer)
            if not askers:
                piece.requesters.pop(block.begin, None)
                piece.unrequested.append(block)
        if everything:  # the peer is gone for good
            self.outstanding.pop(peer, None)
            self._withdrawn.pop(peer, None)
        for piece in self.active.values():
            if piece.owner == peer and not any(b.index == piece.index for b in mine):
                self._restart(piece)

    def _restart(self, piece: _InFlight) -> None:
        """A refetch (exclusive piece) whose one peer stopped (it left, choked us, or timed
        out) starts over with whichever peer takes it next: sent by one peer alone, the
        piece still names the liar when it verifies, and the download does not wait for
        a peer that may never unchoke us."""
        piece.owner = None
        piece.sources.clear()
        piece.requesters.clear()
        piece.unrequested[:] = blocks_of_piece(piece.index, self.piece_sizes[piece.index], self.block_size)[::-1]


def _block_digest(data: bytes | PieceBuffer, begin: int, block_size: int) -> bytes:
    return hashlib.sha1(data[begin:begin + block_size]).digest()
