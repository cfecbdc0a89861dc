"""MSE's dialling side (app.core.mse.Initiator): against our Responder in memory, and
against a scripted answering peer for the cases our Responder never produces (PadB,
PadD, an RC4 selection, garbage)."""

from __future__ import annotations

import hashlib
import os
import random

import pytest

from app.core import mse
from app.core.errors import ProtocolError
from app.core.peer_wire import encode_handshake

INFO_HASH = hashlib.sha1(b"our torrent").digest()
HANDSHAKE = encode_handshake(INFO_HASH, b"-PY0100-" + bytes(12), bytes(8))


def chunks(data: bytes, rng: random.Random) -> list[bytes]:
    out, at = [], 0
    while at < len(data):
        step = rng.randint(1, 200)
        out.append(data[at:at + step])
        at += step
    return out


@pytest.mark.parametrize("seed", range(5))
def test_initiator_and_responder_agree_on_the_plain_streams(seed):
    rng = random.Random(seed)
    a = mse.Initiator(INFO_HASH, HANDSHAKE)
    b = mse.Responder([INFO_HASH])
    to_b = a.hello()
    to_a = b""
    b_after = b"B's handshake, then its bitfield"   # B's plain stream, after its step 4
    for _ in range(20):   # alternate until both are done, in random pieces
        for piece in chunks(to_b, rng):
            to_a += b.receive(piece) if b.plaintext is None else b""
        to_b = b""
        if b.plaintext is not None and b_after:
            to_a, b_after = to_a + b_after, b""
        for piece in chunks(to_a, rng):
            if a.plaintext is None:
                to_b += a.receive(piece)
            else:
                a.plaintext += piece
        to_a = b""
        if a.plaintext is not None and b.plaintext is not None:
            break
    assert b.plaintext == HANDSHAKE and b.skey == INFO_HASH
    assert a.plaintext == b"B's handshake, then its bitfield"


class ScriptedPeer:
    """An answering peer that does what our Responder does not: PadB, PadD, any select."""

    def __init__(self, pad_b: bytes = b"", pad_d: bytes = b"", select: int = mse.CRYPTO_PLAINTEXT) -> None:
        self.private = mse.private_key()
        self.pad_b, self.pad_d, self.select = pad_b, pad_d, select

    def answer_hello(self, hello: bytes) -> bytes:
        self.secret = mse.shared_secret(self.private, hello[:mse.KEY_LENGTH])
        return mse.public_key(self.private) + self.pad_b

    def answer_step3(self, step3: bytes) -> tuple[bytes, bytes]:
        """Returns (IA as B decrypts it, B's step 4 bytes)."""
        s = self.secret
        assert step3[:20] == mse.sha1(b"req1", s)
        key_a, key_b = mse.stream_keys(s, INFO_HASH)
        plain = mse.RC4(key_a, mse.DISCARD).crypt(step3[40:])
        assert plain[:8] == mse.VC and int.from_bytes(plain[8:12], "big") == mse.CRYPTO_PLAINTEXT
        pad_c = int.from_bytes(plain[12:14], "big")
        ia_length = int.from_bytes(plain[14 + pad_c:16 + pad_c], "big")
        ia = plain[16 + pad_c:16 + pad_c + ia_length]
        body = mse.VC + self.select.to_bytes(4, "big") + len(self.pad_d).to_bytes(2, "big") + self.pad_d
        return ia, mse.RC4(key_b, mse.DISCARD).crypt(body)


def handshake_with(peer: ScriptedPeer, after: bytes = b"plain stream") -> tuple[mse.Initiator, bytes]:
    a = mse.Initiator(INFO_HASH, HANDSHAKE, pad=os.urandom(100))
    step3 = a.receive(peer.answer_hello(a.hello()))
    ia, step4 = peer.answer_step3(step3)
    assert ia == HANDSHAKE
    stream = step4 + after
    for at in range(len(stream)):   # one byte at a time
        if a.plaintext is not None:
            a.plaintext += stream[at:]
            break
        a.receive(stream[at:at + 1])
    return a, ia


def test_the_longest_pads_are_skipped():
    peer = ScriptedPeer(pad_b=os.urandom(mse.MAX_PAD), pad_d=os.urandom(mse.MAX_PAD))
    a, _ = handshake_with(peer, after=b"")
    assert a.plaintext == b""


def test_the_plain_stream_follows_pad_d():
    a, _ = handshake_with(ScriptedPeer(pad_d=b"xyz"), after=b"plain stream")
    assert a.plaintext == b"plain stream"
    a = mse.Initiator(INFO_HASH, HANDSHAKE)
    peer = ScriptedPeer(pad_d=b"xyz")
    _, step4 = peer.answer_step3(a.receive(peer.answer_hello(a.hello())))
    a.receive(step4 + b"\x13BitTorrent protocol")
    assert a.plaintext == b"\x13BitTorrent protocol"


def test_a_peer_selecting_rc4_is_refused():
    a = mse.Initiator(INFO_HASH, HANDSHAKE)
    peer = ScriptedPeer(select=mse.CRYPTO_RC4)
    _, step4 = peer.answer_step3(a.receive(peer.answer_hello(a.hello())))
    with pytest.raises(ProtocolError, match="selected crypto method 0x2"):
        a.receive(step4)


def test_a_peer_that_does_not_speak_mse_is_refused_within_a_bounded_read():
    a = mse.Initiator(INFO_HASH, HANDSHAKE)
    assert a.receive(os.urandom(mse.KEY_LENGTH))   # any 96 bytes pass for a key: step 3 goes out
    with pytest.raises(ProtocolError, match="no verification constant"):
        a.receive(os.urandom(mse.MAX_PAD + len(mse.VC)))


def test_a_degenerate_key_is_refused():
    a = mse.Initiator(INFO_HASH, HANDSHAKE)
    with pytest.raises(ProtocolError, match="degenerate"):
        a.receive((1).to_bytes(mse.KEY_LENGTH, "big"))
