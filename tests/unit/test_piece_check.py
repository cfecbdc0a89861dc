"""v2 verification (BEP 52) and aligned layouts: app/core/merkle.py, app/core/piece_check.py,
and the padding helpers of app/core/pieces.py (read_stream, fetch_sizes).

Torrents here are built by hand from the merkle helpers, so each rule is checked on its
own; tests/unit/test_metainfo_v2.py and tests/swarm/test_v2.py check the same rules
against libtorrent's torrents and peers."""
from __future__ import annotations

import asyncio
import hashlib
import random

import pytest

from app import client
from app.core import merkle
from app.core.errors import NoPeersError
from app.core.metainfo import FileEntry, Info
from app.core.piece_check import PieceCheck
from app.core.pieces import BLOCK_SIZE, LocalPieces, fetch_sizes, read_stream
from app.core.session import PeerSession, SessionConfig
from app.core.tracker import PeerAddress

PIECE = 32 * 1024


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def aligned_info(sizes: list[int], *, hybrid: bool, piece_length: int = PIECE) -> tuple[Info, list[bytes]]:
    """An Info for files of `sizes`, each starting on a piece boundary, as v2 or hybrid."""
    contents = [payload(size, seed) for seed, size in enumerate(sizes)]
    files, layers, stream, offset = [], {}, bytearray(), 0
    for i, data in enumerate(contents):
        root = merkle.file_root(data, piece_length) if data else None
        files.append(FileEntry((f"f{i}",), len(data), offset, root))
        if len(data) > piece_length:
            layers[root] = tuple(merkle.piece_layer_of(data, piece_length))
        padded = -(-len(data) // piece_length) * piece_length
        stream += data + bytes(padded - len(data))
        offset += padded
    hashes = tuple(hashlib.sha1(stream[i:i + piece_length]).digest()
                   for i in range(0, len(stream), piece_length)) if hybrid else ()
    info = Info(info_hash=bytes(20), name="t", piece_length=piece_length, piece_hashes=hashes,
                files=tuple(files), multi_file=True, raw=b"", meta_version=2,
                info_hash_v2=bytes(32), padded_length=offset, piece_layers=layers)
    return info, [bytes(stream[i:i + piece_length]) for i in range(0, len(stream), piece_length)]


# --- merkle ---------------------------------------------------------------------------------

def test_pad_hash_is_a_tree_of_zero_leaves_not_of_hashed_zeros():
    assert merkle.pad_hash(0) == bytes(32)
    assert merkle.pad_hash(1) == hashlib.sha256(bytes(64)).digest()
    assert merkle.pad_hash(0) != hashlib.sha256(bytes(BLOCK_SIZE)).digest()


def test_small_file_root_pads_to_a_power_of_two_leaves_only():
    data = payload(3 * BLOCK_SIZE + 5, 1)      # 4 leaves: no padding leaf needed
    leaves = [hashlib.sha256(data[i:i + BLOCK_SIZE]).digest() for i in range(0, len(data), BLOCK_SIZE)]
    top = merkle.parent_layer(merkle.parent_layer(leaves))[0]
    assert merkle.small_file_root(data) == top
    assert merkle.file_root(data, 8 * BLOCK_SIZE) == top     # one piece: not padded to 8 leaves


def test_file_root_from_layer_equals_the_root_over_all_leaves():
    data = payload(5 * PIECE + 100, 2)
    leaves = merkle.leaf_hashes(data)
    assert merkle.file_root(data, PIECE) == merkle.root_of(leaves, merkle.next_power_of_two(len(leaves)))


def test_root_of_refuses_a_layer_wider_than_asked():
    with pytest.raises(ValueError):
        merkle.root_of([bytes(32)] * 3, 2)


# --- PieceCheck -----------------------------------------------------------------------------

@pytest.mark.parametrize("hybrid", [False, True], ids=["v2", "hybrid"])
def test_every_true_piece_matches_and_a_flipped_byte_does_not(hybrid):
    info, pieces = aligned_info([70000, 0, 40000, 5000, PIECE, 1], hybrid=hybrid)
    check = PieceCheck(info)
    assert info.piece_count == len(pieces) == 3 + 2 + 1 + 1 + 1
    for index, data in enumerate(pieces):
        assert check.can_check(index)
        assert check.matches(index, data), index
        bad = bytearray(data)
        bad[0] ^= 1   # a byte of data (padding is not data to a v2 check)
        assert not check.matches(index, bad), index


def test_padding_blocks_need_not_be_fetched():
    info, pieces = aligned_info([5000, 70000], hybrid=True)
    sizes = fetch_sizes(info.files, info.piece_length, [info.piece_size(i) for i in range(info.piece_count)])
    assert sizes == [BLOCK_SIZE, PIECE, PIECE, BLOCK_SIZE]   # 5000 B and 70000 - 2 pieces = 4464 B
    check = PieceCheck(info)
    for index, size in enumerate(sizes):
        assert check.matches(index, pieces[index][:size])     # the rest counts as zeros
    assert not check.matches(1, pieces[1][:BLOCK_SIZE])       # but data may not be missing


def test_hybrid_needs_both_hashes_to_agree():
    info, pieces = aligned_info([70000], hybrid=True)
    wrong_v1 = Info(**{**info.__dict__, "piece_hashes": (bytes(20),) + info.piece_hashes[1:]})
    assert not PieceCheck(wrong_v1).matches(0, pieces[0])
    root = info.files[0].pieces_root
    wrong_v2 = Info(**{**info.__dict__, "piece_layers": {root: (bytes(32),) + info.piece_layers[root][1:]}})
    assert not PieceCheck(wrong_v2).matches(0, pieces[0])
    assert PieceCheck(wrong_v2).matches(1, pieces[1])


def test_without_its_piece_layer_a_large_file_cannot_be_checked():
    info, pieces = aligned_info([70000, 5000], hybrid=False)
    bare = Info(**{**info.__dict__, "piece_layers": {}})
    check = PieceCheck(bare)
    assert not check.can_check(0) and not check.matches(0, pieces[0])
    assert check.can_check(3) and check.matches(3, pieces[3])   # one-piece file: its root suffices


def test_v1_check_unchanged():
    data = payload(3 * PIECE - 7, 3)
    hashes = tuple(hashlib.sha1(data[i:i + PIECE]).digest() for i in range(0, len(data), PIECE))
    info = Info(info_hash=bytes(20), name="x", piece_length=PIECE, piece_hashes=hashes,
                files=(FileEntry(("x",), len(data), 0),), multi_file=False, raw=b"")
    check = PieceCheck(info)
    assert [check.matches(i, data[i * PIECE:(i + 1) * PIECE]) for i in range(3)] == [True] * 3
    assert not check.matches(2, data[2 * PIECE:] + b"\0")   # no zero-extension past a v1 piece


# --- padding in the stream ----------------------------------------------------------------

def test_read_stream_fills_gaps_between_files_with_zeros():
    files = [FileEntry(("a",), 3, 0), FileEntry(("b",), 2, 8)]
    store = {files[0]: b"abc", files[1]: b"de"}
    read = lambda span: store[span.file][span.file_offset:span.file_offset + span.length]   # noqa: E731
    assert read_stream(files, 0, 12, [0, 8], read) == b"abc" + bytes(5) + b"de" + bytes(2)
    assert read_stream(files, 2, 7, [0, 8], read) == b"c" + bytes(5) + b"d"


def test_read_stream_keeps_a_short_read_short():
    files = [FileEntry(("a",), 10, 0)]
    assert read_stream(files, 0, 10, [0], lambda span: b"xy") == b"xy"


def test_fetch_sizes_of_an_unpadded_torrent_are_its_piece_sizes():
    files = [FileEntry(("a",), 40000, 0), FileEntry(("b",), 30000, 40000)]
    sizes = [PIECE, PIECE, 70000 - 2 * PIECE]
    assert fetch_sizes(files, PIECE, sizes) == sizes


def test_fetch_sizes_of_a_piece_of_padding_alone_is_one_block():
    files = [FileEntry(("a",), 100, 0), FileEntry(("b",), 100, 2 * PIECE)]
    assert fetch_sizes(files, PIECE, [PIECE] * 3) == [BLOCK_SIZE, BLOCK_SIZE, BLOCK_SIZE]


def test_a_hybrid_without_piece_layers_falls_back_to_sha1():
    """A hybrid fetched by magnet from v1-only peers has no layers: SHA-1 decides."""
    info, pieces = aligned_info([70000, 5000], hybrid=True)
    check = PieceCheck(Info(**{**info.__dict__, "piece_layers": {}}))
    assert all(check.matches(i, data) for i, data in enumerate(pieces))
    bad = bytearray(pieces[1])
    bad[0] ^= 1
    assert not check.matches(1, bad)


# --- the fallback in the client, with a real connection ---------------------------------

async def _v1_only_peer(info: Info) -> asyncio.Server:
    """A peer that has the data but does not speak v2: it never answers hash requests."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sizes = [info.piece_size(i) for i in range(info.piece_count)]
        session = PeerSession(SessionConfig(info.info_hash, b"-V1ONLY-" + bytes(12)), sizes,
                              LocalPieces(len(sizes), range(len(sizes))), initiator=False, now=0)
        try:
            while data := await reader.read(65536):
                session.receive_data(data)
                session.next_events(0)
                writer.write(session.data_to_send(0))
                await writer.drain()
        except Exception:
            pass
        finally:
            writer.close()
    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def _layers_from_v1_peer(info: Info) -> Info:
    server = await _v1_only_peer(info)
    try:
        port = server.sockets[0].getsockname()[1]
        return await client.fetch_missing_layers(info, [PeerAddress("127.0.0.1", port)], timeout=2.0)
    finally:
        server.close()


def test_hybrid_magnet_from_v1_only_peers_goes_on_with_sha1(caplog):
    info, _ = aligned_info([70000, 5000], hybrid=True)
    bare = Info(**{**info.__dict__, "piece_layers": {}})
    assert asyncio.run(_layers_from_v1_peer(bare)) is bare
    assert "checked by SHA-1 alone" in caplog.text


def test_v2_magnet_from_v1_only_peers_fails():
    info, _ = aligned_info([70000, 5000], hybrid=False)
    bare = Info(**{**info.__dict__, "piece_layers": {}})
    with pytest.raises(NoPeersError, match="piece layers"):
        asyncio.run(_layers_from_v1_peer(bare))
