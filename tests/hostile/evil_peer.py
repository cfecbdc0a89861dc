"""A hostile BitTorrent peer on 127.0.0.1 (asyncio, in a background thread).

EvilPeer(spec, mode) listens for the client under test and misbehaves as `mode` says.
Everything it does is recorded (connections, requests, blocks sent, how sessions ended), so a
test can check that the client dropped it. All waits are bounded; stop() ends everything.

Download modes (the client connects to us with a plain or extension handshake):
  honest             a correct seeder (for checking the fixture itself)
  silent_accept      accepts the TCP connection and never sends a byte
  silent_unchoked    handshake, bitfield, unchoke, then ignores every request
  wrong_info_hash    answers the handshake for another torrent, then serves corrupt data
  wrong_protocol     answers with a wrong protocol string, then serves corrupt data
  huge_length        after the bitfield, a message whose length prefix is 2**31
  unrequested        before unchoking, sends a piece message nobody asked for (garbage)
  wrong_size         answers each request with one byte too few / too many
  have_out_of_range  a `have` for piece_count and for 2**32-1 (then corrupt data)
  bitfield_long      a bitfield one byte longer than the torrent needs (then corrupt data)
  bitfield_spare     a bitfield with the spare bits past the last piece set (then corrupt)
  corrupt            serves every block with its bytes flipped
  poison             corrupts one block of each piece it is asked for, then chokes for good,
                     so the honest peer completes those pieces
  poison_silent      the same, but instead of choking it stays unchoked and silent
  flood              100 000 `have` and keep-alive messages at once, then honest
Magnet modes (extension handshake with ut_metadata):
  meta_bad_hash      serves metadata of the right size that does not hash to the info hash
  meta_huge_size     announces metadata_size 32 MiB (beyond any sane cap), rejects requests
  meta_reject        rejects every metadata request
  meta_serve         serves `metadata` (which may be an info dict made for the test)
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import struct
import time

from support.bencoding import bdecode_prefix, bencode
from support.fakes import EXT_RESERVED, PSTR, ZERO_RESERVED, FakePeerBase, full_bitfield

BLOCK = 16384
OUR_UT_METADATA = 3
MODES = ("honest", "silent_accept", "silent_unchoked", "wrong_info_hash", "wrong_protocol",
         "huge_length", "unrequested", "wrong_size", "have_out_of_range", "bitfield_long",
         "bitfield_spare", "corrupt", "poison", "poison_silent", "flood", "meta_bad_hash", "meta_huge_size",
         "meta_reject", "meta_serve")
SESSION_LIMIT = 40.0  # no session lives longer than this


def flip(data: bytes) -> bytes:
    return bytes(b ^ 0xFF for b in data)


def message(msg_id: int, payload: bytes = b"") -> bytes:
    return struct.pack(">IB", len(payload) + 1, msg_id) + payload


class EvilPeer(FakePeerBase):
    wait_for_sessions = True  # stop() waits for the cancelled sessions to finish

    def __init__(self, info_hash: str, mode: str, *, payload: bytes = b"",
                 piece_length: int = 0, num_pieces: int = 0, metadata: bytes = b"",
                 handshake_delay: float = 0.0):
        if mode not in MODES:
            raise ValueError(mode)
        super().__init__(info_hash)
        self.mode = mode
        self.payload = payload
        self.piece_length = piece_length
        self.num_pieces = num_pieces
        self.metadata = metadata
        self.handshake_delay = handshake_delay  # seconds before answering a handshake
        self.requests: list[tuple[int, int, int]] = []
        self.blocks_sent = 0
        self.metadata_requests = 0
        self.endings: list[str] = []       # how each session ended
        self.client_handshakes: list[bytes] = []
        self.poisoned: set[int] = set()
        self.choke_handle: asyncio.TimerHandle | None = None

    @classmethod
    def for_spec(cls, spec, mode: str, **kwargs) -> EvilPeer:
        return cls(spec.info_hash, mode, payload=spec.payload(), piece_length=spec.piece_length,
                   num_pieces=spec.num_pieces, metadata=spec.metadata, **kwargs)

    # --- plumbing ---------------------------------------------------------------------

    async def _handle(self, reader, writer):
        self.connections += 1
        started = time.monotonic()
        try:
            await asyncio.wait_for(self.session(reader, writer), SESSION_LIMIT)
            self.endings.append("session over")
        except asyncio.IncompleteReadError:
            self.endings.append(f"client closed after {time.monotonic() - started:.2f}s")
        except TimeoutError:
            self.endings.append("timed out")
        except (ConnectionError, OSError) as exc:
            self.endings.append(f"connection error {exc!r}")
        finally:
            writer.close()

    async def read_msg(self, reader) -> tuple[int | None, bytes]:
        (length,) = struct.unpack(">I", await reader.readexactly(4))
        if length == 0:
            return None, b""
        if length > 1 << 20:
            raise ConnectionError(f"client sent a {length}-byte message")
        body = await reader.readexactly(length)
        return body[0], body[1:]

    def piece_size(self, index: int) -> int:
        total = len(self.payload)
        return min(self.piece_length, total - index * self.piece_length)

    # --- the session ------------------------------------------------------------------

    async def session(self, reader, writer):
        mode = self.mode
        handshake = await reader.readexactly(68)
        self.client_handshakes.append(handshake)
        if mode == "silent_accept":
            await reader.read()  # until the client gives up (or SESSION_LIMIT)
            return
        if self.handshake_delay:
            await asyncio.sleep(self.handshake_delay)
        magnet = mode.startswith("meta_")
        reserved = EXT_RESERVED if magnet else ZERO_RESERVED
        info_hash = self.info_hash
        pstr = PSTR
        if mode == "wrong_info_hash":
            info_hash = hashlib.sha1(b"some other torrent").digest()
        if mode == "wrong_protocol":
            pstr = b"\x13BitTorrent protocoL"
        writer.write(pstr + reserved + info_hash + b"-EV0001-" + os.urandom(12))

        if magnet:
            size = 32 << 20 if mode == "meta_huge_size" else len(self.metadata)
            writer.write(message(20, b"\x00" + bencode(
                {"m": {"ut_metadata": OUR_UT_METADATA}, "metadata_size": size})))

        bitfield = full_bitfield(self.num_pieces)
        if mode == "bitfield_long":
            writer.write(message(5, bitfield + b"\xff"))
        elif mode == "bitfield_spare":
            writer.write(message(5, b"\xff" * len(bitfield)))
        elif mode == "have_out_of_range":
            for i in range(self.num_pieces):
                writer.write(message(4, struct.pack(">I", i)))
            writer.write(message(4, struct.pack(">I", self.num_pieces)))
            writer.write(message(4, struct.pack(">I", 0xFFFFFFFF)))
        elif self.num_pieces:
            writer.write(message(5, bitfield))
        if mode == "huge_length":
            writer.write(message(1))  # unchoke
            writer.write(struct.pack(">IB", 1 << 31, 7) + b"\x00" * 65536)
        if mode == "unrequested":  # before any unchoke: nothing can have been requested
            writer.write(message(7, struct.pack(">II", 0, 0) + b"\xAA" * BLOCK))
        if mode == "flood":
            chunk = b"".join(message(4, struct.pack(">I", i % self.num_pieces)) + b"\0\0\0\0"
                             for i in range(50_000))  # 100 000 messages
            writer.write(chunk)
        await writer.drain()

        await self.serve_messages(reader, writer)

    async def serve_messages(self, reader, writer) -> None:
        mode = self.mode
        client_ut_metadata = None
        while True:
            msg_id, payload = await self.read_msg(reader)
            if msg_id == 2:  # interested
                writer.write(message(1))
            elif msg_id == 6:
                index, begin, length = struct.unpack(">III", payload)
                self.requests.append((index, begin, length))
                if mode in ("poison", "poison_silent"):
                    self.poison_request(writer, index, begin, length)
                else:
                    self.answer_request(writer, index, begin, length)
            elif msg_id == 20 and payload[:1] == b"\x00":
                try:
                    ext = bdecode_prefix(payload, 1)[0]
                    client_ut_metadata = ext[b"m"][b"ut_metadata"]
                except (ValueError, KeyError, TypeError, IndexError):
                    client_ut_metadata = None
            elif msg_id == 20 and payload[:1] == bytes([OUR_UT_METADATA]):
                self.metadata_requests += 1
                request = bdecode_prefix(payload, 1)[0]
                piece = request.get(b"piece", 0)
                if client_ut_metadata is not None:
                    writer.write(self.metadata_answer(client_ut_metadata, piece))
            await writer.drain()

    def answer_request(self, writer, index: int, begin: int, length: int) -> None:
        mode = self.mode
        if mode in ("silent_unchoked", "unrequested", "huge_length") or not self.payload:
            return
        if not (0 <= index < self.num_pieces and 0 < length <= BLOCK
                and begin + length <= self.piece_size(index)):
            return
        start = index * self.piece_length + begin
        data = self.payload[start:start + length]
        if mode == "wrong_size":
            data = data[:-1] if len(self.requests) % 2 else data + b"\x00"
        elif mode not in ("honest", "flood"):
            data = flip(data)  # corrupt, and what a misbehaving peer serves after its fault
        writer.write(message(7, struct.pack(">II", index, begin) + data))
        self.blocks_sent += 1

    def poison_request(self, writer, index: int, begin: int, length: int) -> None:
        """One corrupt block per piece; 0.1 s after the first request, choke for good."""
        if self.choke_handle is None:
            choke = b"" if self.mode == "poison_silent" else message(0)
            self.choke_handle = asyncio.get_running_loop().call_later(
                0.1, lambda: writer.is_closing() or writer.write(choke))
        if self.choke_handle.when() <= asyncio.get_running_loop().time() \
                or index in self.poisoned:
            return
        self.poisoned.add(index)
        start = index * self.piece_length + begin
        writer.write(message(7, struct.pack(">II", index, begin)
                             + flip(self.payload[start:start + length])))
        self.blocks_sent += 1

    def metadata_answer(self, their_id: int, piece: int) -> bytes:
        mode = self.mode
        if mode in ("meta_reject", "meta_huge_size"):
            return message(20, bytes([their_id]) + bencode({"msg_type": 2, "piece": piece}))
        metadata = self.metadata
        if mode == "meta_bad_hash":
            metadata = metadata[:-2] + bytes([metadata[-2] ^ 0x01]) + metadata[-1:]
        chunk = metadata[piece * BLOCK:(piece + 1) * BLOCK]
        head = bencode({"msg_type": 1, "piece": piece, "total_size": len(metadata)})
        return message(20, bytes([their_id]) + head + chunk)
