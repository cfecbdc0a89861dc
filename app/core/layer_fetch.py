"""Getting a torrent's piece layers from peers (BEP 52), as a plan and its bookkeeping. Pure.

A v2 torrent fetched by a magnet link has only its info dict: each file's
`pieces root` but not its `piece layers`, without which no piece of a file
longer than one piece can be checked. Peers hand the layers out with the
hash messages. `PieceLayerFetch` lists the requests that cover every missing
layer (at most 512 nodes each, as libtorrent asks, each with the uncles up
to the root so that every reply proves itself), checks each reply against
its file's root, and assembles the layers. A reply that fails the check is
a ProtocolError: the peer that sent it is broken or hostile.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from app.core import messages as m
from app.core.errors import ProtocolError
from app.core.hash_exchange import MAX_LENGTH_ASKED, layer_request, verified_nodes
from app.core.merkle import log2, next_power_of_two, pieces_in_file
from app.core.metainfo import Info

Key = tuple[bytes, int, int, int, int]


@dataclass(frozen=True)
class _File:
    root: bytes
    pieces: int

    @property
    def height(self) -> int:
        """The root's height above the piece layer."""
        return log2(next_power_of_two(self.pieces))


class PieceLayerFetch:
    """The hash requests still to be answered for `info`'s missing piece layers, and
    the nodes verified so far. Requests are keyed by their header (`HashRequest.key`),
    which a reply repeats."""

    def __init__(self, info: Info, chunk: int = MAX_LENGTH_ASKED) -> None:
        self.info = info
        self._files: dict[bytes, _File] = {}
        self._wanted: dict[Key, m.HashRequest] = {}
        self._done: set[Key] = set()
        self._nodes: dict[bytes, dict[int, tuple[bytes, ...]]] = {}
        if info.meta_version < 2:
            return
        for entry in info.files:
            root = entry.pieces_root
            if root is None or entry.length <= info.piece_length or root in info.piece_layers:
                continue   # small files have no layer (their root is their piece hash)
            if root in self._files:
                continue   # two files with the same content share one tree
            pieces = pieces_in_file(entry.length, info.piece_length)
            self._files[root] = _File(root, pieces)
            self._nodes[root] = {}
            for index in range(0, pieces, chunk):
                request = layer_request(root, pieces, info.piece_length, index, chunk)
                self._wanted[request.key] = request

    @property
    def complete(self) -> bool:
        return not self._wanted

    def requests(self) -> list[m.HashRequest]:
        """Every request not yet answered with good hashes, file by file, in order."""
        return list(self._wanted.values())

    def add(self, reply: m.Hashes) -> bool:
        """Check a reply and keep its nodes: True if it was new, False for a second answer
        to a request already answered. ProtocolError if it answers nothing we would ask,
        or its hashes do not lead to the file's root."""
        if reply.key in self._done:
            return False
        if reply.key not in self._wanted:
            raise ProtocolError("hashes for a range of the tree we did not ask for")
        entry = self._files[reply.pieces_root]
        nodes = verified_nodes(reply, entry.root, entry.height)
        self._nodes[entry.root][reply.index] = nodes[:max(0, entry.pieces - reply.index)]
        del self._wanted[reply.key]
        self._done.add(reply.key)
        return True

    def layers(self) -> dict[bytes, tuple[bytes, ...]]:
        """Each fetched file's whole piece layer (once `complete`)."""
        if not self.complete:
            raise ValueError("piece layers are still missing")
        return {root: tuple(node for index in sorted(parts) for node in parts[index])
                for root, parts in self._nodes.items()}

    def result(self) -> Info:
        """`info` with its missing piece layers filled in (once `complete`)."""
        if not self._files:
            return self.info
        return with_piece_layers(self.info, self.layers())


def with_piece_layers(info: Info, layers: dict[bytes, tuple[bytes, ...]]) -> Info:
    return dataclasses.replace(info, piece_layers={**info.piece_layers, **layers})


def missing_layers(info: Info) -> bool:
    """Whether a v2 torrent lacks the piece layer of some file longer than one piece."""
    return not PieceLayerFetch(info).complete
