"""Paths inside a torrent, and the v2 `file tree` (BEP 52).

One rule decides whether a path component is safe (`path_part`), for v1 file
lists and v2 file trees alike: a component that could leave the output
directory is refused, never rewritten.

A v2 file tree is nested dictionaries: each key is one path component, and a
file is a dictionary whose only key is the empty string, holding `length` and
(for a non-empty file) its 32-byte `pieces root`:

    {"a.bin": {"": {"length": 70000, "pieces root": <32 bytes>}},
     "b": {"empty": {"": {"length": 0}}, "z.bin": {"": {...}}}}

The files come depth first in key order (bencode sorts keys), which is the
order of the torrent's byte stream. Each non-empty file starts at a piece
boundary: the stream holds zero padding after every file up to the next
boundary, the last file included (as libtorrent reads v2 torrents).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.core.errors import MetainfoError

ROOT_SIZE = 32      # a pieces root is a SHA-256 digest


@dataclass(frozen=True)
class TreeFile:
    """One file of a v2 file tree, before it is given its place in the stream."""
    path: tuple[str, ...]
    length: int
    pieces_root: bytes | None   # None exactly when the file is empty
    executable: bool = False    # BEP 47's attr "x"


def is_executable(attr: Any) -> bool:
    """BEP 47: a file's `attr` string holds "x" when the file is executable."""
    return isinstance(attr, bytes) and b"x" in attr


def is_safe_name(text: str) -> bool:
    """A single path component that cannot leave its directory on any system."""
    return not (text in ("", ".", "..") or "/" in text or "\\" in text or "\0" in text
                or (len(text) >= 2 and text[1] == ":" and text[0].isalpha()))


def path_part(value: Any, field: str) -> str:
    """One path component, refused if it could escape the output directory."""
    if not isinstance(value, bytes):
        raise MetainfoError(f"{field} must be a string")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = value.decode("latin-1")
    if not is_safe_name(text):
        raise MetainfoError(f"{field} has an unsafe path component {text!r}")
    return text


def refuse_file_directory_clash(paths: set[tuple[str, ...]]) -> None:
    """`a` and `a/b` cannot both exist: `a` would be a file and a directory."""
    for path in paths:
        for cut in range(1, len(path)):
            if path[:cut] in paths:
                raise MetainfoError(f"{'/'.join(path[:cut])} is both a file and a directory")


def walk_file_tree(tree: Any) -> list[TreeFile]:
    """Every file of a v2 `file tree`, in stream order, strictly validated."""
    if not isinstance(tree, dict) or not tree:
        raise MetainfoError("'file tree' must be a non-empty dictionary")
    if b"" in tree:
        raise MetainfoError("the root of 'file tree' cannot be a file")
    files: list[TreeFile] = []
    seen: set[tuple[str, ...]] = set()
    # An explicit stack of (directory, its path, the keys still to visit), so that a deep
    # tree cannot exhaust Python's recursion limit.
    stack: list[tuple[tuple[str, ...], list[bytes], dict[bytes, Any]]] = [((), _sorted_keys(tree, ()), tree)]
    while stack:
        prefix, keys, directory = stack[-1]
        if not keys:
            stack.pop()
            continue
        key = keys.pop(0)
        where = "/".join(prefix) or "the root"
        path = (*prefix, path_part(key, f"file tree path under {where}"))
        shown = "/".join(path)
        if path in seen:
            raise MetainfoError(f"file tree repeats {shown}")
        seen.add(path)
        node = directory[key]
        if not isinstance(node, dict):
            raise MetainfoError(f"file tree entry {shown} is not a dictionary")
        if b"" in node:
            if len(node) > 1:
                raise MetainfoError(f"file tree entry {shown} is both a file and a directory")
            files.append(_tree_file(path, node[b""]))
        elif not node:
            raise MetainfoError(f"file tree directory {shown} is empty")
        else:
            stack.append((path, _sorted_keys(node, path), node))
    return files


def _sorted_keys(directory: dict[bytes, Any], path: tuple[str, ...]) -> list[bytes]:
    """The stream order is the keys' sorted order; a tree written otherwise is refused
    (libtorrent refuses it too), since its order would be ambiguous."""
    keys = list(directory)
    if keys != sorted(keys):
        raise MetainfoError(f"file tree keys under {'/'.join(path) or 'the root'} are not in sorted order")
    return keys


def _tree_file(path: tuple[str, ...], props: Any) -> TreeFile:
    shown = "/".join(path)
    if not isinstance(props, dict):
        raise MetainfoError(f"file tree entry {shown} has no properties dictionary")
    length = props.get(b"length")
    if not isinstance(length, int) or isinstance(length, bool) or length < 0:
        raise MetainfoError(f"file tree entry {shown}: 'length' must be a non-negative integer")
    attr = props.get(b"attr")
    if isinstance(attr, bytes) and b"p" in attr:
        raise MetainfoError(f"file tree entry {shown} is a pad file; a v2 file tree has none")
    root = props.get(b"pieces root")
    if length == 0:
        if root is not None:
            raise MetainfoError(f"file tree entry {shown} is empty but has a 'pieces root'")
        return TreeFile(path, 0, None, is_executable(attr))
    if not isinstance(root, bytes) or len(root) != ROOT_SIZE:
        raise MetainfoError(f"file tree entry {shown}: 'pieces root' must be {ROOT_SIZE} bytes")
    return TreeFile(path, length, root, is_executable(attr))


def aligned_offsets(lengths: Sequence[int], piece_length: int) -> tuple[list[int], int]:
    """Each file's offset when every file starts at a piece boundary, and the stream's
    length, padded up to a whole piece after the last file. An empty file takes no room."""
    offsets, position = [], 0
    for length in lengths:
        offsets.append(position)
        position = -(-(position + length) // piece_length) * piece_length
    return offsets, position


def check_hybrid_agreement(v1: Sequence[tuple[tuple[str, ...], int, int]], v1_length: int,
                           v2: Sequence[tuple[tuple[str, ...], int, int]], v2_length: int) -> None:
    """A hybrid's v1 view (its file list without pad files, or `length`) must describe the
    same files as its file tree: same paths, order and sizes, and the v1 pad files must put
    each non-empty file exactly where v2 alignment does. Each view is (path, length, offset)
    per file plus the stream's length. The v1 stream may end with the last file's data or
    be padded to a whole piece (libtorrent writes both)."""
    if len(v1) != len(v2):
        raise MetainfoError(f"hybrid torrent: the v1 file list has {len(v1)} files, the file tree {len(v2)}")
    for i, ((path1, length1, offset1), (path2, length2, offset2)) in enumerate(zip(v1, v2, strict=True)):
        shown = "/".join(path2)
        if path1 != path2:
            raise MetainfoError(f"hybrid torrent: v1 file {i + 1} is {'/'.join(path1)}, "
                                f"the file tree's is {shown}")
        if length1 != length2:
            raise MetainfoError(f"hybrid torrent: {shown} is {length1} bytes in v1, {length2} in the file tree")
        if length1 and offset1 != offset2:
            raise MetainfoError(f"hybrid torrent: the v1 pad files put {shown} at byte {offset1}, "
                                f"piece alignment at byte {offset2}")
    data_end = max((offset + length for _, length, offset in v2 if length), default=0)
    if v1_length not in (data_end, v2_length):
        raise MetainfoError(f"hybrid torrent: the v1 files end at byte {v1_length}, "
                            f"expected {data_end} or {v2_length} (padded to a piece)")
