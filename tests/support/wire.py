"""A minimal blocking BitTorrent peer-wire client, used to check what real peers send."""
from __future__ import annotations

import hashlib
import os
import socket
import struct

from .bencoding import bdecode_prefix, bencode

PSTR = b"\x13BitTorrent protocol"
EXT_RESERVED = bytes([0, 0, 0, 0, 0, 0x10, 0, 0])
BLOCK = 16384


def random_peer_id() -> bytes:
    return b"-TS0001-" + os.urandom(12)


class WireError(Exception):
    pass


class PeerConnection:
    def __init__(self, host: str, port: int, info_hash: bytes, *, reserved: bytes = bytes(8),
                 timeout: float = 10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.sendall(PSTR + reserved + info_hash + random_peer_id())
        reply = self.read_exact(68)
        if reply[:20] != PSTR or reply[28:48] != info_hash:
            raise WireError(f"bad handshake reply {reply!r}")
        self.remote_reserved = reply[20:28]
        self.remote_peer_id = reply[48:68]

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def read_exact(self, count: int) -> bytes:
        chunks, left = [], count
        while left:
            chunk = self.sock.recv(left)
            if not chunk:
                raise WireError(f"connection closed with {left} of {count} bytes unread")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def read_message(self) -> tuple[int | None, bytes]:
        """(id, payload); id None for keep-alive."""
        (length,) = struct.unpack(">I", self.read_exact(4))
        if length == 0:
            return None, b""
        body = self.read_exact(length)
        return body[0], body[1:]

    def send(self, msg_id: int, payload: bytes = b"") -> None:
        self.sock.sendall(struct.pack(">IB", len(payload) + 1, msg_id) + payload)

    def wait_for(self, wanted: int, limit: int = 1000) -> bytes:
        for _ in range(limit):
            msg_id, payload = self.read_message()
            if msg_id == wanted:
                return payload
        raise WireError(f"message {wanted} did not come within {limit} messages")

    def download_piece(self, index: int, size: int) -> bytes:
        """Send interested, wait for unchoke, request every block of one piece."""
        self.send(2)
        self.wait_for(1)
        for begin in range(0, size, BLOCK):
            self.send(6, struct.pack(">III", index, begin, min(BLOCK, size - begin)))
        blocks = {}
        while len(blocks) < (size + BLOCK - 1) // BLOCK:
            payload = self.wait_for(7)
            got_index, begin = struct.unpack(">II", payload[:8])
            if got_index == index:
                blocks[begin] = payload[8:]
        return b"".join(blocks[b] for b in sorted(blocks))

    def extension_handshake(self, ut_metadata_id: int = 3) -> dict:
        """Send ours, return the peer's decoded extension handshake dict."""
        self.send(20, b"\x00" + bencode({"m": {"ut_metadata": ut_metadata_id}}))
        for _ in range(100):
            payload = self.wait_for(20)
            if payload[:1] == b"\x00":
                return bdecode_prefix(payload, 1)[0]
        raise WireError("no extension handshake")

    def fetch_metadata(self) -> bytes:
        ours = 3
        theirs = self.extension_handshake(ours)
        remote_id = theirs[b"m"][b"ut_metadata"]
        size = theirs[b"metadata_size"]
        pieces = []
        for piece in range((size + BLOCK - 1) // BLOCK):
            self.send(20, bytes([remote_id]) + bencode({"msg_type": 0, "piece": piece}))
            while True:
                payload = self.wait_for(20)
                if payload[0] != ours:
                    continue
                header, end = bdecode_prefix(payload, 1)
                if header[b"msg_type"] != 1:
                    raise WireError(f"metadata request answered with {header}")
                pieces.append(payload[end:])
                break
        return b"".join(pieces)


def sha1_hex(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()
