"""Synthetic v2 torrents for the hash-exchange tests: random piece layers, real roots."""
from __future__ import annotations

import hashlib
import random

from app.core.merkle import root_from_piece_layer
from app.core.metainfo import FileEntry, Info

PIECE = 64 * 1024          # 4 blocks a piece: the piece layer is at height 2


def random_layer(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(32) for _ in range(count)]


def make_info(pieces_per_file, *, with_layers: bool = True, seed: int = 1) -> Info:
    """A v2 Info whose files have `pieces_per_file` pieces each (random piece layers;
    a file of one piece gets a made-up root, as it has no layer)."""
    files, layers, offset = [], {}, 0
    for i, pieces in enumerate(pieces_per_file):
        layer = random_layer(pieces, seed * 100 + i)
        length = pieces * PIECE - 1000
        root = root_from_piece_layer(layer, PIECE) if pieces > 1 else hashlib.sha256(bytes([i]) * 32).digest()
        files.append(FileEntry((f"f{i}",), length, offset, root))
        if pieces > 1:
            layers[root] = tuple(layer)
        offset += pieces * PIECE
    return Info(info_hash=bytes(20), name="t", piece_length=PIECE, piece_hashes=(), files=tuple(files),
                multi_file=True, raw=b"d4:infoe", meta_version=2, info_hash_v2=bytes(32),
                padded_length=offset, piece_layers=layers if with_layers else {})
