"""A small bencode encoder/decoder used by the fakes and helpers.

Written for the tests so that they do not depend on the application's own codec.
"""
from __future__ import annotations


def bencode(value, *, sort_keys: bool = True) -> bytes:
    """Bencode `value`; str is written as UTF-8. Dict keys are sorted (canonical), or with
    sort_keys=False written in the GIVEN order (for building non-canonical input)."""
    if isinstance(value, bool):
        raise TypeError("bencode has no booleans")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, (bytes, bytearray)):
        return b"%d:%s" % (len(value), bytes(value))
    if isinstance(value, (list, tuple)):
        return b"l" + b"".join(bencode(v, sort_keys=sort_keys) for v in value) + b"e"
    if isinstance(value, dict):
        items = [(k.encode() if isinstance(k, str) else k, v) for k, v in value.items()]
        if sort_keys:
            items.sort()
        return b"d" + b"".join(bencode(k) + bencode(v, sort_keys=sort_keys)
                               for k, v in items) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


def bencode_as_given(value) -> bytes:
    """bencode with every dict's keys in the given order."""
    return bencode(value, sort_keys=False)


def bdecode_prefix(data: bytes, pos: int = 0):
    """Decode one value starting at `pos`; return (value, position after it)."""
    lead = data[pos:pos + 1]
    if lead == b"i":
        end = data.index(b"e", pos)
        return int(data[pos + 1:end]), end + 1
    if lead in (b"l", b"d"):
        pos += 1
        items = []
        while data[pos:pos + 1] != b"e":
            if pos >= len(data):
                raise ValueError("unterminated container")
            item, pos = bdecode_prefix(data, pos)
            items.append(item)
        pos += 1
        if lead == b"l":
            return items, pos
        if len(items) % 2:
            raise ValueError("dict with a key and no value")
        return dict(zip(items[::2], items[1::2])), pos
    if lead.isdigit():
        colon = data.index(b":", pos)
        size = int(data[pos:colon])
        start = colon + 1
        if start + size > len(data):
            raise ValueError("string runs past the end")
        return data[start:start + size], start + size
    raise ValueError(f"bad bencode at offset {pos}")


def bdecode(data: bytes):
    value, end = bdecode_prefix(data, 0)
    if end != len(data):
        raise ValueError("trailing bytes after bencoded value")
    return value
