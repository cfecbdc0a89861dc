"""MSE (app.core.mse): the responder against an initiator written here, in memory."""

from __future__ import annotations

import hashlib
import os

import pytest

from app.core import mse
from app.core.errors import ProtocolError
from app.core.peer_wire import encode_handshake

INFO_HASH = hashlib.sha1(b"our torrent").digest()
V2_HASH = hashlib.sha256(b"our torrent, v2").digest()[:20]
HANDSHAKE = encode_handshake(INFO_HASH, b"-LT0000-" + bytes(12), bytes(8))


class Initiator:
    """The dialling side, as libtorrent does it: Ya and PadA; then, once Yb is in, step 3
    with its handshake as IA; then it reads B's VC and crypto_select."""

    def __init__(self, skey: bytes = INFO_HASH, provide: int = mse.CRYPTO_PLAINTEXT | mse.CRYPTO_RC4,
                 pad_a: bytes = b"", pad_c: bytes = b"", ia: bytes = HANDSHAKE) -> None:
        self.private = mse.private_key()
        self.skey, self.provide, self.pad_a, self.pad_c, self.ia = skey, provide, pad_a, pad_c, ia
        self.received = bytearray()
        self.secret = b""

    def first(self) -> bytes:
        return mse.public_key(self.private) + self.pad_a

    def step3(self, yb: bytes) -> bytes:
        self.secret = s = mse.shared_secret(self.private, yb)
        key_a, key_b = mse.stream_keys(s, self.skey)
        self.encrypt = mse.RC4(key_a, mse.DISCARD)
        self.decrypt = mse.RC4(key_b, mse.DISCARD)
        obfuscated = bytes(a ^ b for a, b in zip(mse.sha1(b"req2", self.skey), mse.sha1(b"req3", s), strict=True))
        body = (mse.VC + self.provide.to_bytes(4, "big") + len(self.pad_c).to_bytes(2, "big") + self.pad_c
                + len(self.ia).to_bytes(2, "big"))
        return mse.sha1(b"req1", s) + obfuscated + self.encrypt.crypt(body) + self.encrypt.crypt(self.ia)

    def read_select(self, data: bytes) -> int:
        """B's step 4 (VC, crypto_select, len(PadD) = 0 from our responder)."""
        plain = self.decrypt.crypt(data[:14])
        assert plain[:8] == mse.VC
        assert int.from_bytes(plain[12:14], "big") == 0
        return int.from_bytes(plain[8:12], "big")


def run(initiator: Initiator, after: bytes = b"", chunk: int | None = None,
        hashes: tuple[bytes, ...] = (INFO_HASH,)) -> tuple[mse.Responder, bytes]:
    """The whole exchange; returns the responder and all it sent."""
    responder = mse.Responder(hashes, pad=os.urandom(37))
    sent = feed(responder, initiator.first(), chunk)
    assert len(sent) == mse.KEY_LENGTH + 37 and responder.plaintext is None
    sent += feed(responder, initiator.step3(sent[:mse.KEY_LENGTH]) + after, chunk)
    return responder, sent


def feed(responder: mse.Responder, data: bytes, chunk: int | None) -> bytes:
    """As the I/O layer does: once the handshake is over, the rest is the plain stream's."""
    sent = bytearray()
    step = chunk or len(data)
    for i in range(0, len(data), step):
        if responder.plaintext is not None:
            responder.plaintext += data[i:]
            break
        sent += responder.receive(data[i:i + step])
    return bytes(sent)


def test_plaintext_is_selected_and_the_stream_starts_with_ia():
    initiator = Initiator(pad_a=os.urandom(200), pad_c=os.urandom(300))
    responder, sent = run(initiator, after=b"\x00\x00\x00\x01\x02")   # and then an interested
    assert responder.plaintext == HANDSHAKE + b"\x00\x00\x00\x01\x02"
    assert responder.skey == INFO_HASH
    assert initiator.read_select(sent[mse.KEY_LENGTH + 37:]) == mse.CRYPTO_PLAINTEXT
    assert len(sent) == mse.KEY_LENGTH + 37 + 14
    assert initiator.secret == mse.shared_secret(responder._private, initiator.first()[:mse.KEY_LENGTH])


def test_plaintext_only_offer_and_an_empty_ia():
    initiator = Initiator(provide=mse.CRYPTO_PLAINTEXT, ia=b"")
    responder, sent = run(initiator, after=HANDSHAKE)
    assert responder.plaintext == HANDSHAKE
    assert initiator.read_select(sent[mse.KEY_LENGTH + 37:]) == mse.CRYPTO_PLAINTEXT


@pytest.mark.parametrize("chunk", [1, 7, 97])
def test_bytes_in_small_pieces(chunk):
    initiator = Initiator(pad_a=os.urandom(512), pad_c=os.urandom(512))
    responder, sent = run(initiator, after=b"more", chunk=chunk)
    assert responder.plaintext == HANDSHAKE + b"more"
    assert initiator.read_select(sent[mse.KEY_LENGTH + 37:]) == mse.CRYPTO_PLAINTEXT


def test_the_v2_hash_of_a_hybrid_is_accepted():
    responder, _ = run(Initiator(skey=V2_HASH), hashes=(INFO_HASH, V2_HASH))
    assert responder.skey == V2_HASH and responder.plaintext == HANDSHAKE


def test_another_torrent_is_refused():
    with pytest.raises(ProtocolError, match="torrent we do not serve"):
        run(Initiator(skey=hashlib.sha1(b"other").digest()))


def test_an_rc4_only_offer_is_refused_before_we_answer_step_3():
    responder = mse.Responder([INFO_HASH], pad=b"")
    initiator = Initiator(provide=mse.CRYPTO_RC4)
    yb = responder.receive(initiator.first())
    with pytest.raises(ProtocolError, match="only encrypted"):
        responder.receive(initiator.step3(yb))


def test_no_sync_hash_within_the_bound_is_refused():
    responder = mse.Responder([INFO_HASH], pad=b"")
    responder.receive(os.urandom(mse.KEY_LENGTH + 512 + 19))   # still possible: req1 may end at 628
    with pytest.raises(ProtocolError, match="no sync hash"):
        responder.receive(b"x")


def test_padding_beyond_512_bytes_is_refused():
    initiator = Initiator(pad_a=bytes(513))
    responder = mse.Responder([INFO_HASH], pad=b"")
    with pytest.raises(ProtocolError, match="no sync hash"):
        responder.receive(initiator.first() + initiator.step3(responder.receive(initiator.first()[:96])))


def test_a_degenerate_key_is_refused():
    with pytest.raises(ProtocolError, match="degenerate"):
        mse.Responder([INFO_HASH]).receive((1).to_bytes(96, "big"))


def test_plain_start():
    assert mse.starts_plain(HANDSHAKE[:20])
    assert not mse.starts_plain(mse.public_key(mse.private_key())[:20])


# RC4 known answers: RFC 6229 (key 0x0102030405 at offsets 0, 16 and 1024) and the
# classic "Key"/"Plaintext" pair.
@pytest.mark.parametrize("offset, expected", [
    (0, "b2396305f03dc027ccc3524a0a1118a8"),
    (1024, "30abbcc7c20b01609f23ee2d5f6bb7df"),
])
def test_rc4_rfc6229(offset, expected):
    assert mse.RC4(bytes([1, 2, 3, 4, 5]), discard=offset).crypt(bytes(16)).hex() == expected


def test_rc4_in_pieces_and_plaintext():
    cipher = mse.RC4(bytes([1, 2, 3, 4, 5]))
    assert (cipher.crypt(bytes(3)) + cipher.crypt(bytes(13))).hex() == "b2396305f03dc027ccc3524a0a1118a8"
    assert mse.RC4(b"Key").crypt(b"Plaintext").hex() == "bbf316e8d940af0ad3"
