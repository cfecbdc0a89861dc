"""The part-file's layout and the selective storage (app/io/part_file.py,
app/io/selective_storage.py), on a temporary directory: which bytes go where, resume,
and a wider selection that reuses what the part-file holds."""

import hashlib
import os

from app.core import bencode
from app.core.metainfo import parse_info
from app.io.part_file import PartFile, part_file_path
from app.io.selective_storage import SelectiveStorage

PIECE = 10


def make(lengths, seed=7):
    payload = bytes((seed * 31 + i * 7) % 251 for i in range(sum(lengths)))
    count = -(-len(payload) // PIECE)
    raw = bencode.encode({b"name": b"t", b"piece length": PIECE,
                          b"pieces": b"".join(hashlib.sha1(payload[i * PIECE:(i + 1) * PIECE]).digest()
                                              for i in range(count)),
                          b"files": [{b"length": n, b"path": [f"f{i + 1}".encode()]}
                                     for i, n in enumerate(lengths)]})
    return parse_info(raw), payload


def piece(payload, i):
    return payload[i * PIECE:(i + 1) * PIECE]


def store_all(storage, payload):
    storage.open()
    for i in sorted(storage.wanted):
        storage.write_piece(i, piece(payload, i))


def test_part_file_keeps_bytes_at_their_stream_offset(tmp_path):
    part = PartFile(tmp_path / ".x.parts")
    assert not part.exists()
    assert part.read(5, 3) == b"\0\0\0"          # absent: zeros, and nothing is created
    assert not part.exists()
    part.write(20, b"abc")
    assert part.read(19, 5) == b"\0abc\0"
    part.close()
    assert (tmp_path / ".x.parts").read_bytes() == b"\0" * 20 + b"abc"


def test_only_selected_files_are_created_and_the_rest_goes_to_the_part_file(tmp_path):
    # f1 [0,15) f2 [15,40) f3 [40,41): selecting f1 needs pieces 0 and 1; piece 1 holds f2[0:5]
    info, payload = make([15, 25, 1])
    storage = SelectiveStorage(info, tmp_path, frozenset({0}))
    assert storage.wanted == {0, 1}
    store_all(storage, payload)
    assert storage.read_block(1, 2, 8) == payload[12:20]   # across the file and the part-file
    storage.close()
    assert sorted(os.listdir(tmp_path)) == [f".{info.info_hash.hex()}.parts", "t"]
    assert os.listdir(tmp_path / "t") == ["f1"]
    assert (tmp_path / "t" / "f1").read_bytes() == payload[:15]
    part = part_file_path(info, tmp_path).read_bytes()
    assert part[15:20] == payload[15:20] and part[:15] == bytes(15)


def test_resume_and_a_wider_selection_reuse_the_part_file(tmp_path):
    info, payload = make([15, 25, 1])
    first = SelectiveStorage(info, tmp_path, frozenset({0}))
    store_all(first, payload)
    first.close()
    again = SelectiveStorage(info, tmp_path, frozenset({0}))
    again.open()
    assert again.verified_pieces() == {0, 1}
    again.close()
    wider = SelectiveStorage(info, tmp_path, frozenset({0, 1}))
    wider.open()
    # piece 1 verifies from the part-file and moves f2's bytes into f2; 2 and 3 are new
    assert wider.verified_pieces() == {0, 1}
    assert wider.wanted == {0, 1, 2, 3}
    wider.close()
    assert (tmp_path / "t" / "f2").read_bytes()[:5] == payload[15:20]
    assert part_file_path(info, tmp_path).exists()         # pieces 2 and 3 still missing
    everything = SelectiveStorage(info, tmp_path, frozenset({0, 1, 2}))
    store_all(everything, payload)
    everything.close()
    assert not part_file_path(info, tmp_path).exists()     # every file complete: no longer needed


def test_a_narrower_selection_reads_a_deselected_file_left_on_disk(tmp_path):
    info, payload = make([15, 25, 1])
    both = SelectiveStorage(info, tmp_path, frozenset({0, 1}))
    store_all(both, payload)
    both.close()
    only_first = SelectiveStorage(info, tmp_path, frozenset({0}))
    only_first.open()
    assert only_first.verified_pieces() == {0, 1}       # f2's bytes copied to the part-file
    only_first.close()
    assert part_file_path(info, tmp_path).read_bytes()[15:20] == payload[15:20]
