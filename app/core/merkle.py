"""BitTorrent v2 merkle trees (BEP 52): SHA-256 over 16 KiB leaves, one tree per file.

A file's tree has one leaf per 16 KiB block (the last may be shorter), padded
to a power of two. Padding leaves are 32 zero bytes, not the hash of zeros, so
a whole padding subtree's hash depends only on its height (`pad_hash`).

The "piece layer" is the layer whose nodes each cover one piece. A .torrent
stores it per file (`piece layers`) for files larger than one piece; the file's
`pieces root` is the tree's top. A piece is verified by hashing its blocks up
to its piece-layer node, which needs no other piece.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache

BLOCK_SIZE = 16 * 1024
HASH_SIZE = 32
ZERO_HASH = bytes(HASH_SIZE)


def next_power_of_two(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def log2(n: int) -> int:
    """The exponent of a power of two (the caller guarantees `n` is one)."""
    return n.bit_length() - 1


@lru_cache(maxsize=64)
def pad_hash(height: int) -> bytes:
    """The root of a subtree of 2**height padding leaves."""
    digest = ZERO_HASH
    for _ in range(height):
        digest = hashlib.sha256(digest + digest).digest()
    return digest


def parent_layer(layer: Sequence[bytes]) -> list[bytes]:
    """Hash pairs of nodes into the layer above (`layer` has an even length)."""
    sha256 = hashlib.sha256
    return [sha256(layer[i] + layer[i + 1]).digest() for i in range(0, len(layer), 2)]


def root_of(layer: Sequence[bytes], width: int, height_of_nodes: int = 0) -> bytes:
    """The root over `layer` padded to `width` nodes (a power of two) with padding
    subtrees of the nodes' height (0 for leaves)."""
    if len(layer) > width:
        raise ValueError(f"{len(layer)} nodes do not fit a layer of {width}")
    nodes = list(layer) + [pad_hash(height_of_nodes)] * (width - len(layer))
    while len(nodes) > 1:
        nodes = parent_layer(nodes)
    return nodes[0] if nodes else pad_hash(height_of_nodes)


def leaf_hashes(data: bytes | bytearray | memoryview) -> list[bytes]:
    """SHA-256 of each 16 KiB block of `data` (the last block may be shorter)."""
    view = memoryview(data)
    sha256 = hashlib.sha256
    return [sha256(view[i:i + BLOCK_SIZE]).digest() for i in range(0, len(view), BLOCK_SIZE)]


def piece_hash(data: bytes | bytearray | memoryview, piece_length: int) -> bytes:
    """A piece's node in the piece layer: its leaves padded to a whole piece.
    `data` is the piece's bytes of one file (short for the file's last piece)."""
    return root_of(leaf_hashes(data), piece_length // BLOCK_SIZE)


def small_file_root(data: bytes | bytearray | memoryview) -> bytes:
    """The `pieces root` of a file no longer than one piece: its leaves padded to a
    power of two (not to a whole piece)."""
    leaves = leaf_hashes(data)
    return root_of(leaves, next_power_of_two(len(leaves)))


def root_from_piece_layer(layer: Sequence[bytes], piece_length: int) -> bytes:
    """A file's `pieces root` from its piece layer (files larger than one piece)."""
    return root_of(layer, next_power_of_two(len(layer)), log2(piece_length // BLOCK_SIZE))


def split_layer(blob: bytes) -> list[bytes]:
    """A `piece layers` value (concatenated 32-byte hashes) as a list."""
    return [blob[i:i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)]


def pieces_in_file(length: int, piece_length: int) -> int:
    return -(-length // piece_length)


def piece_layer_of(file_data: bytes | bytearray | memoryview, piece_length: int) -> list[bytes]:
    """Every piece-layer node of one file's content (for creating torrents and tests)."""
    view = memoryview(file_data)
    return [piece_hash(view[i:i + piece_length], piece_length) for i in range(0, len(view), piece_length)]


def file_root(file_data: bytes | bytearray | memoryview, piece_length: int) -> bytes:
    """The `pieces root` of a whole file's content (empty files have none: the caller skips them)."""
    if len(file_data) <= piece_length:
        return small_file_root(file_data)
    return root_from_piece_layer(piece_layer_of(file_data, piece_length), piece_length)


class FileHasher:
    """One file's merkle hashes from its bytes fed in order, in chunks of any size.

    Memory stays at one piece's leaf hashes plus the finished piece-layer nodes;
    the file itself is never held. `finish()` gives the `pieces root` and the
    piece layer (empty for a file of at most one piece: a .torrent stores none).
    """

    def __init__(self, piece_length: int) -> None:
        if piece_length < BLOCK_SIZE or piece_length & (piece_length - 1):
            raise ValueError(f"piece length {piece_length} is not a power of two from {BLOCK_SIZE}")
        self.piece_length = piece_length
        self.length = 0
        self._leaves_per_piece = piece_length // BLOCK_SIZE
        self._partial = bytearray()     # the current block, while shorter than BLOCK_SIZE
        self._leaves: list[bytes] = []  # the current piece's leaf hashes
        self._layer: list[bytes] = []   # finished piece-layer nodes

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        self.length += len(view)
        if self._partial:
            take = min(BLOCK_SIZE - len(self._partial), len(view))
            self._partial += view[:take]
            view = view[take:]
            if len(self._partial) < BLOCK_SIZE:
                return
            self._add_leaf(hashlib.sha256(self._partial).digest())
            self._partial.clear()
        whole = len(view) - len(view) % BLOCK_SIZE
        sha256 = hashlib.sha256
        for start in range(0, whole, BLOCK_SIZE):
            self._add_leaf(sha256(view[start:start + BLOCK_SIZE]).digest())
        self._partial += view[whole:]

    def _add_leaf(self, leaf: bytes) -> None:
        self._leaves.append(leaf)
        if len(self._leaves) == self._leaves_per_piece:
            self._layer.append(root_of(self._leaves, self._leaves_per_piece))
            self._leaves = []

    def finish(self) -> tuple[bytes, list[bytes]]:
        """(pieces root, piece layer). An empty file has no root: ValueError."""
        if self.length == 0:
            raise ValueError("an empty file has no pieces root")
        if self._partial:
            self._leaves.append(hashlib.sha256(self._partial).digest())
            self._partial.clear()
        if self.length <= self.piece_length:
            if self._layer:  # exactly one whole piece: its node is the root
                return self._layer[0], []
            return root_of(self._leaves, next_power_of_two(len(self._leaves))), []
        if self._leaves:
            self._layer.append(root_of(self._leaves, self._leaves_per_piece))
            self._leaves = []
        return root_from_piece_layer(self._layer, self.piece_length), list(self._layer)
