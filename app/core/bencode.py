"""Bencode, strictly: the bencode.py package, with the few checks it lacks.

bencode.py already rejects leading zeros, `i-0e` and trailing data. It hands
the digits to int(), which would also take `+5`, ` 5` or `1_0`, and it lets a
string length be negative; the strict decoder below refuses those too.
It also exposes where each value ends, which gives us the raw bytes of the
`info` dict: the info hash must be taken over those exact bytes, never over a
re-encoding (bencode.py sorts keys when it encodes).
"""

from __future__ import annotations

import re
from typing import Any

import bencodepy
from bencodepy.decoder import BencodeDecoder

from app.core.errors import BencodeError, TorrentError

_INTEGER = re.compile(rb"-?[0-9]+")
_LENGTH = re.compile(rb"[0-9]+")


class _StrictDecoder(BencodeDecoder):
    def decode_dict(self, x: bytes, f: int, **kwargs: Any) -> tuple[dict[bytes, Any], int]:
        # As bencode.py's, but a repeated key is an error instead of silently winning.
        depth = kwargs.get("depth", 0)
        if depth > self.max_depth:
            raise ValueError("nested too deeply")
        f += 1
        result: dict[bytes, Any] = {}
        while x[f:f + 1] != b"e":
            key, f = self.decode_string(x, f, kind="key")
            if key in result:
                raise ValueError("dictionary repeats a key")
            result[key], f = self.decode_func[x[f:f + 1]](x, f, depth=depth + 1)
        return result, f + 1

    def decode_int(self, x: bytes, f: int, **kwargs: Any) -> tuple[int, int]:
        end = x.index(b"e", f + 1)
        if not _INTEGER.fullmatch(x, f + 1, end):
            raise ValueError("bad integer")
        return super().decode_int(x, f, **kwargs)

    def decode_string(self, x: bytes, f: int, kind: str = "value", **kwargs: Any) -> tuple[bytes, int]:
        colon = x.index(b":", f)
        if not _LENGTH.fullmatch(x, f, colon):
            raise ValueError("bad string length")
        if colon + 1 + int(x[f:colon]) > len(x):
            raise ValueError("string runs past the end")
        return super().decode_string(x, f, kind, **kwargs)


_decoder = _StrictDecoder()


def decode_prefix(data: bytes, start: int = 0) -> tuple[Any, int]:
    """Decode the one value that starts at `start`; return it and where it ends.

    ut_metadata messages put raw bytes right after a bencoded dict, so the
    caller needs the end offset.
    """
    try:
        return _decoder.decode_func[data[start:start + 1]](data, start)
    except (IndexError, KeyError, TypeError, ValueError, RecursionError,
            bencodepy.BencodeDecodeError) as exc:
        raise BencodeError(f"invalid bencode at byte {start}") from exc


def decode(data: bytes) -> Any:
    """Decode a complete bencoded value; trailing bytes are an error."""
    value, end = decode_prefix(data)
    if end != len(data):
        raise BencodeError(f"trailing data after byte {end}")
    return value


def decode_dict(data: bytes, error: type[TorrentError], what: str) -> dict[bytes, Any]:
    """Decode bytes that must hold one bencoded dict; any failure raises `error`
    (the caller's own error type) naming `what` was being read."""
    try:
        value = decode(data)
    except BencodeError as exc:
        raise error(f"{what} is not valid bencode: {exc}") from exc
    if not isinstance(value, dict):
        raise error(f"{what} is not a dictionary")
    return value


def decode_dict_with_raw(data: bytes) -> tuple[dict[bytes, Any], dict[bytes, bytes]]:
    """Decode a top-level dict and also return each value's raw bytes by key."""
    if data[:1] != b"d":
        raise BencodeError("expected a bencoded dictionary")
    values: dict[bytes, Any] = {}
    raw: dict[bytes, bytes] = {}
    pos = 1
    try:
        while data[pos:pos + 1] != b"e":
            if pos >= len(data):
                raise BencodeError("dictionary is not terminated")
            key, pos = _decoder.decode_string(data, pos, kind="key")
            if key in values:
                raise BencodeError(f"dictionary repeats the key {key!r}")
            values[key], end = decode_prefix(data, pos)
            raw[key] = data[pos:end]
            pos = end
    except (IndexError, ValueError) as exc:
        raise BencodeError("invalid bencoded dictionary") from exc
    if pos + 1 != len(data):
        raise BencodeError(f"trailing data after byte {pos + 1}")
    return values, raw


def encode(value: Any) -> bytes:
    """Encode ints, bytes, str, lists and dicts (keys sorted, as bencode requires)."""
    _check_unique_keys(value)
    try:
        return bencodepy.encode(value)
    except (KeyError, TypeError, ValueError) as exc:  # bencode.py's ways of saying "unsupported"
        raise BencodeError(f"cannot bencode a {type(exc.args[0]).__name__ if exc.args else 'value'}") from exc


def _check_unique_keys(value: Any) -> None:
    """b"a" and "a" are one bencode key; bencode.py would write it twice."""
    if isinstance(value, dict):
        keys = [k.encode() if isinstance(k, str) else k for k in value]
        if len(set(keys)) != len(keys):
            raise BencodeError("dictionary has the same key twice")
        for item in value.values():
            _check_unique_keys(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_unique_keys(item)
