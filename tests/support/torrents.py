"""Payloads and .torrent files made with libtorrent, plus the facts a test compares against."""
from __future__ import annotations

import dataclasses
import hashlib
import os
import random
from pathlib import Path
from urllib.parse import quote

import libtorrent as lt

from .bencoding import bdecode, bencode


@dataclasses.dataclass
class TorrentSpec:
    """A torrent made for a test: where it lives and what a correct client must report."""
    torrent_path: Path
    data_root: Path            # the save_path a seeder uses (parent of `name`)
    name: str
    info_hash: str             # 40 lowercase hex, as libtorrent computed it
    piece_length: int
    piece_hashes: list[str]
    total_length: int
    files: list[tuple[tuple[str, ...], int]]  # (path parts inside the torrent, length)
    announce: str | None
    metadata: bytes            # the bencoded info dict (BEP 9 metadata)
    version: str = "v1"        # "v2" and "hybrid": BEP 52, see make_lt_spec
    info_hash_v2: str | None = None   # 64 lowercase hex (v2 and hybrid)
    piece_count: int | None = None    # v2 and hybrid: libtorrent's count (files are piece-aligned)

    @property
    def num_pieces(self) -> int:
        return len(self.piece_hashes) if self.piece_count is None else self.piece_count

    @property
    def multi_file(self) -> bool:
        return len(self.files) != 1 or self.files[0][0] != (self.name,)

    def payload(self) -> bytes:
        """The whole torrent's content, files concatenated in torrent order."""
        return b"".join((self.data_root.joinpath(*parts)).read_bytes() for parts, _ in self.files)

    def piece_size(self, index: int) -> int:
        if not 0 <= index < self.num_pieces:
            raise IndexError(index)
        return min(self.piece_length, self.total_length - index * self.piece_length)

    def piece_bytes(self, index: int) -> bytes:
        start = index * self.piece_length
        return self.payload()[start:start + self.piece_size(index)]

    def magnet(self, tracker: str | None = None, *, name: bool = True) -> str:
        """A magnet link shaped like the grader's: xt, dn, then tr with %3A%2F%2F encoding."""
        link = "magnet:?" + "&".join(
            ([f"xt=urn:btih:{self.info_hash}"] if self.version != "v2" else [])
            + ([f"xt=urn:btmh:1220{self.info_hash_v2}"] if self.info_hash_v2 else []))
        if name:
            link += f"&dn={quote(self.name, safe='')}"
        tracker = self.announce if tracker is None else tracker
        if tracker:  # like the tester: http%3A%2F%2F127.0.0.1:PORT%2Fannounce
            scheme, sep, rest = tracker.partition("://")
            link += "&tr=" + quote(scheme + sep, safe="") + quote(rest, safe=":")
        return link


def write_payload(path: Path, size: int, seed: int) -> bytes:
    """Write `size` deterministic pseudo-random bytes to `path` and return them."""
    data = random.Random(seed).randbytes(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def sha1_hex(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def make_torrent(data_root: Path, name: str, torrent_path: Path, *, piece_length: int,
                 announce: str | list[str] | None = None) -> TorrentSpec:
    """Make a v1-only .torrent of `data_root/name` (a file or a directory) with libtorrent."""
    if piece_length < 16384 or piece_length & (piece_length - 1):
        raise ValueError("libtorrent needs a power-of-two piece length >= 16 KiB")
    entries = lt.list_files(str(data_root / name))
    creator = lt.create_torrent(entries, piece_length, lt.create_torrent.v1_only)
    urls = [announce] if isinstance(announce, str) else list(announce or [])
    for tier, url in enumerate(urls):
        creator.add_tracker(url, tier)
    creator.set_creator("tests")
    lt.set_piece_hashes(creator, str(data_root))
    raw = lt.bencode(creator.generate())
    torrent_path.parent.mkdir(parents=True, exist_ok=True)
    torrent_path.write_bytes(raw)
    return describe_torrent(torrent_path, data_root)


def describe_torrent(torrent_path: Path, data_root: Path) -> TorrentSpec:
    """Read a .torrent back: libtorrent gives the info hash, our decoder the raw fields."""
    raw = torrent_path.read_bytes()
    info_hash = str(lt.torrent_info(raw).info_hashes().v1)
    meta = bdecode(raw)
    info = meta[b"info"]
    metadata = bencode(info)
    if sha1_hex(metadata) != info_hash:
        raise AssertionError("re-encoded info dict does not hash to libtorrent's info hash")
    pieces = info[b"pieces"]
    name = info[b"name"].decode()
    if b"files" in info:
        files = [(tuple(p.decode() for p in f[b"path"]), f[b"length"]) for f in info[b"files"]]
        files = [((name, *parts), length) for parts, length in files]
    else:
        files = [((name,), info[b"length"])]
    announce = meta.get(b"announce")
    return TorrentSpec(
        torrent_path=torrent_path, data_root=data_root, name=name, info_hash=info_hash,
        piece_length=info[b"piece length"],
        piece_hashes=[pieces[i:i + 20].hex() for i in range(0, len(pieces), 20)],
        total_length=sum(length for _, length in files), files=files,
        announce=announce.decode() if announce else None, metadata=metadata)


def make_single_file(root: Path, name: str, size: int, *, piece_length: int, seed: int,
                     announce: str | list[str] | None = None) -> TorrentSpec:
    """A one-file payload of `size` bytes under root/data plus root/<name>.torrent."""
    data_root = root / "data"
    write_payload(data_root / name, size, seed)
    return make_torrent(data_root, name, root / f"{name}.torrent",
                        piece_length=piece_length, announce=announce)


def make_multi_file(root: Path, name: str, sizes: dict[str, int], *, piece_length: int,
                    seed: int, announce: str | list[str] | None = None) -> TorrentSpec:
    """A directory payload: `sizes` maps relative paths ("a/b.bin") to sizes."""
    data_root = root / "data"
    for offset, (rel, size) in enumerate(sorted(sizes.items())):
        write_payload(data_root / name / rel, size, seed * 1000 + offset)
    return make_torrent(data_root, name, root / f"{name}.torrent",
                        piece_length=piece_length, announce=announce)


def file_slices(spec: TorrentSpec, index: int) -> list[tuple[Path, int, int]]:
    """(file path under data_root, offset in that file, byte count) covering piece `index`."""
    start = index * spec.piece_length
    end = start + spec.piece_size(index)
    out, file_start = [], 0
    for parts, length in spec.files:
        file_end = file_start + length
        lo, hi = max(start, file_start), min(end, file_end)
        if lo < hi:
            out.append((spec.data_root.joinpath(*parts), lo - file_start, hi - lo))
        file_start = file_end
    return out


def garble_pieces(spec: TorrentSpec, indices, data_root: Path | None = None) -> None:
    """Flip every byte of the given pieces in place (same size, so no truncation)."""
    for index in indices:
        for path, offset, count in file_slices(spec, index):
            if data_root is not None:
                path = data_root / path.relative_to(spec.data_root)
            with open(path, "r+b") as handle:
                handle.seek(offset)
                chunk = handle.read(count)
                handle.seek(offset)
                handle.write(bytes(b ^ 0xFF for b in chunk))
                handle.flush()
                os.fsync(handle.fileno())


def write_raw_torrent(path: Path, *, announce: str, name: str, piece_length: int,
                      piece_hashes: list[str], length: int) -> TorrentSpec:
    """A hand-made single-file .torrent with the given hashes and no data behind it,
    shaped like the grader's generated test.torrent (bf7, fi9, ca4)."""
    info = {"length": length, "name": name, "piece length": piece_length,
            "pieces": b"".join(bytes.fromhex(h) for h in piece_hashes)}
    raw = bencode({"announce": announce, "info": info})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    return describe_torrent(path, path.parent)


def random_hashes(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [rng.randbytes(20).hex() for _ in range(count)]


LT_FLAGS = {"v1": "v1_only", "v2": "v2_only", "hybrid": None}


def make_lt_torrent(data_root: Path, name: str, torrent_path: Path, *, piece_length: int,
                    version: str, announce: str | list[str] | None = None) -> bytes:
    """libtorrent's .torrent of `data_root/name` as `version` "v1", "v2" or "hybrid"
    (BEP 52): the reference for what v2 and hybrid torrents look like. Returns its bytes."""
    flag = LT_FLAGS[version]
    entries = lt.list_files(str(data_root / name))
    creator = lt.create_torrent(entries, piece_length, getattr(lt.create_torrent, flag) if flag else 0)
    urls = [announce] if isinstance(announce, str) else list(announce or [])
    for tier, url in enumerate(urls):
        creator.add_tracker(url, tier)
    lt.set_piece_hashes(creator, str(data_root))
    raw = lt.bencode(creator.generate())
    torrent_path.parent.mkdir(parents=True, exist_ok=True)
    torrent_path.write_bytes(raw)
    return raw


def lt_info_hashes(raw: bytes) -> tuple[str | None, str | None]:
    """libtorrent's (v1, v2) info hashes of a .torrent in hex; None for the one it lacks."""
    hashes = lt.torrent_info(raw).info_hashes()
    v1, v2 = str(hashes.v1), str(hashes.v2)
    return (None if set(v1) == {"0"} else v1), (None if set(v2) == {"0"} else v2)


def make_lt_spec(root: Path, name: str, sizes: dict[str, int], *, piece_length: int, version: str,
                 seed: int, announce: str | None = None) -> TorrentSpec:
    """A payload under root/data (a directory of `sizes`, or one file when `sizes` is
    {name: size}) and libtorrent's `version` torrent of it, described for the tests. For a
    v2-only torrent `info_hash` is the truncated v2 hash, which peers and trackers use."""
    data_root = root / "data"
    single = list(sizes) == [name]
    for offset, (rel, size) in enumerate(sorted(sizes.items())):
        write_payload(data_root / name if single else data_root / name / rel, size, seed * 1000 + offset)
    torrent_path = root / f"{name}.torrent"
    raw = make_lt_torrent(data_root, name, torrent_path, piece_length=piece_length, version=version,
                          announce=announce)
    ti = lt.torrent_info(raw)
    v1, v2 = lt_info_hashes(raw)
    layout = ti.layout()
    files = [(tuple(layout.file_path(i).split("/")), layout.file_size(i)) for i in range(layout.num_files())
             if not layout.file_flags(i) & lt.file_storage.flag_pad_file]
    metadata = bencode(bdecode(raw)[b"info"])
    return TorrentSpec(
        torrent_path=torrent_path, data_root=data_root, name=name, info_hash=v1 or (v2 or "")[:40],
        piece_length=piece_length, piece_hashes=[], total_length=sum(size for _, size in files),
        files=files, announce=announce, metadata=metadata, version=version, info_hash_v2=v2,
        piece_count=ti.num_pieces())
