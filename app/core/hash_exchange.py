"""BitTorrent v2 hash exchange (BEP 52): answering hash requests from piece layers,
and checking the `hashes` replies to ours. Pure: hashes in, hashes out.

Heights count layers above a file's leaves (its 16 KiB blocks), as a hash
request's `base layer` does: the piece layer is at height log2(piece length /
16 KiB) and the file's `pieces root` on top. Every layer is padded to a power
of two with padding subtrees (app.core.merkle.pad_hash), so a request may name
padding nodes at the end of a layer; they are answered like any other node.

A `hashes` reply is the `length` requested nodes, then the uncles that tie
their subtree to the root: the sibling of the subtree's top node, then of its
parent, and so on, one per proof layer beyond the first log2(length) - 1
(those are computable from the nodes themselves). These are libtorrent's
rules (merkle_tree::get_hashes, hash_picker::validate_hash_request), which
are BEP 52's: index a multiple of length, length a power of two from 2 up.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence

from app.core import messages as m
from app.core.errors import ProtocolError
from app.core.merkle import BLOCK_SIZE, log2, next_power_of_two, pad_hash, parent_layer, root_of
from app.core.metainfo import Info

MAX_LENGTH_ASKED = 512      # BEP 52: a length SHOULD NOT exceed 512; libtorrent asks 512 at a time
MAX_LENGTH_SERVED = 8192    # libtorrent answers up to this many nodes at once (and refuses more)
TREES_KEPT = 16             # files whose upper tree stays cached for answering


class PieceTree:
    """One file's tree from its piece layer up: `layers[0]` is the piece layer padded
    to a power of two, `layers[-1]` is [pieces root]."""

    def __init__(self, piece_layer: Sequence[bytes], piece_length: int) -> None:
        self.piece_height = log2(piece_length // BLOCK_SIZE)
        self.pieces = len(piece_layer)
        nodes = list(piece_layer)
        nodes += [pad_hash(self.piece_height)] * (next_power_of_two(len(nodes)) - len(nodes))
        self.layers = [nodes]
        while len(nodes) > 1:
            nodes = parent_layer(nodes)
            self.layers.append(nodes)

    @property
    def root(self) -> bytes:
        return self.layers[-1][0]

    def answer(self, request: m.HashRequest) -> m.Hashes | None:
        """The reply to a request whose base is the piece layer or above, or None if
        the request is not one we can or should answer."""
        level = request.base_layer - self.piece_height   # 0 = the piece layer
        top = len(self.layers) - 1                         # the root's level
        if not 0 <= level < top or not 0 <= request.proof_layers < top - level:
            return None
        index, length = request.index, request.length
        real = -(-self.pieces >> level)   # nodes of this layer above real pieces (the rest is padding)
        if not valid_range(index, length, len(self.layers[level]), real, MAX_LENGTH_SERVED):
            return None
        hashes = self.layers[level][index:index + length]
        span = log2(next_power_of_two(length))
        position, level = index >> span, level + span      # the top node of the requested subtree
        for _ in range(m.uncle_count(length, request.proof_layers)):
            hashes.append(self.layers[level][position ^ 1])
            position, level = position >> 1, level + 1
        return m.Hashes(*request.key, tuple(hashes))


def valid_range(index: int, length: int, width: int, real: int, limit: int) -> bool:
    """BEP 52: `length` is a power of two, at least 2, and `index` a multiple of it,
    within the layer's padded `width`; or the range runs to the end of the layer's
    `real` nodes (before its padding), starting where such a power of two would."""
    if not 2 <= length <= limit or index + length > width:
        return False
    span = next_power_of_two(length)
    return index % span == 0 and (length == span or index + length == real)


_trees: OrderedDict[tuple[bytes, int], PieceTree] = OrderedDict()


def _tree(info: Info, pieces_root: bytes) -> PieceTree | None:
    """The file's upper tree, built once from its piece layer and checked against its
    root. Trees are keyed by root, so a cached one is right for any torrent holding that file."""
    layer = info.piece_layers.get(pieces_root)
    if layer is None:
        return None   # not a file of ours, or its layer has not arrived yet (a magnet download)
    key = (pieces_root, info.piece_length)
    tree = _trees.get(key)
    if tree is None:
        tree = PieceTree(layer, info.piece_length)
        if tree.root != pieces_root:
            return None   # a layer that does not match its root is never served
        _trees[key] = tree
        if len(_trees) > TREES_KEPT:
            _trees.popitem(last=False)
    _trees.move_to_end(key)
    return tree


def answer_hash_request(info: Info, request: m.HashRequest) -> m.Hashes | m.HashReject:
    """What to send back to a peer's hash request: the hashes, when the request names a
    file we hold the piece layer of and a range at or above that layer; otherwise a
    reject (leaf-layer requests, unknown roots, bad ranges, files of one piece)."""
    if info.meta_version >= 2 and info.piece_length >= BLOCK_SIZE:
        tree = _tree(info, request.pieces_root)
        reply = tree.answer(request) if tree is not None else None
        if reply is not None:
            return reply
    return m.HashReject(*request.key)


def piece_height(piece_length: int) -> int:
    """The piece layer's height above the leaves (BEP 52's base layer for it)."""
    return log2(piece_length // BLOCK_SIZE)


def layer_request(pieces_root: bytes, pieces: int, piece_length: int, index: int,
                  length: int = MAX_LENGTH_ASKED) -> m.HashRequest:
    """A request for piece-layer nodes index..index+length of a file of `pieces` pieces,
    with every uncle up to the root, so the reply proves itself against `pieces root`.
    `length` is cut to the padded layer (a file of 5 pieces is asked for 8 nodes)."""
    width = next_power_of_two(pieces)
    length = min(length, width)
    return m.HashRequest(pieces_root, piece_height(piece_length), index, length, log2(width) - 1)


def verified_nodes(reply: m.Hashes, pieces_root: bytes, tree_height: int) -> tuple[bytes, ...]:
    """The base-layer nodes of a reply whose uncles reach the root, once they are shown to
    lead to `pieces_root`; ProtocolError if they do not. `tree_height` is the root's
    height above the base layer (log2 of the base layer's padded width)."""
    base, uncles = reply.base, reply.uncles
    if len(base) != reply.length or not reply.length:
        raise ProtocolError(f"hashes reply with {len(base)} of {reply.length} nodes")
    span = next_power_of_two(reply.length)
    if log2(span) + len(uncles) != tree_height:
        raise ProtocolError("hashes reply whose proof does not reach the root")
    node = root_of(base, span, reply.base_layer)
    position = reply.index // span
    sha256 = hashlib.sha256
    for uncle in uncles:
        node = sha256(node + uncle if position % 2 == 0 else uncle + node).digest()
        position //= 2
    if node != pieces_root:
        raise ProtocolError(f"hashes {reply.index}..{reply.index + reply.length} do not lead to the pieces root")
    return base
