"""Message Stream Encryption (MSE, also "protocol encryption", PE): both sides.

libtorrent, and most clients, try MSE first when they dial a peer and fall back to
the plain protocol only when that fails. We answer it on incoming connections and
always choose its *plaintext* method, so only the handshake below is encrypted: the
BitTorrent stream that follows is the plain one, at no cost per byte.

The exchange, A the peer that dialled (the initiator) and B us (the responder):

    1. A -> B  Ya, PadA
    2. B -> A  Yb, PadB
    3. A -> B  HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
               ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
    4. B -> A  ENCRYPT(VC, crypto_select, len(PadD), PadD), then the payload stream

- Ya and Yb are Diffie-Hellman public keys: 2**x mod P for a random 160-bit x, sent as
  96 bytes big-endian (P is a 768-bit prime). Each side then computes the shared
  secret S = Y_other**x mod P (96 bytes) that nobody watching the wire can.
- PadA..PadD are 0-512 random bytes, there to make the lengths unrecognisable. PadA's
  length is not sent, so B finds where step 3 starts by looking for HASH('req1', S),
  which it can compute once it has Ya; it gives up if that is not within 512 + 20
  bytes after Ya.
- HASH is SHA-1. SKEY is the torrent's info hash: B learns which torrent A wants by
  comparing HASH('req2', SKEY) for each torrent it serves against the second hash
  xor HASH('req3', S). Here that is the one torrent of the session (and, for a
  hybrid, its truncated v2 hash too, as app.core.session accepts either).
- ENCRYPT is RC4; A's bytes are encrypted with the key HASH('keyA', S, SKEY) and B's
  with HASH('keyB', S, SKEY), each keystream's first 1024 bytes thrown away. VC is
  8 zero bytes: decrypting it to zeros proves both sides hold the same keys.
- crypto_provide (A's offer) and crypto_select (B's choice) are 4-byte bit fields:
  0x01 plaintext, 0x02 RC4. Lengths are 2 bytes big-endian.
- IA is the start of A's BitTorrent stream (libtorrent sends its 68-byte handshake),
  always RC4-encrypted; with plaintext selected, everything after it is plain. So
  the stream the BitTorrent session reads is: IA decrypted, then the bytes after it.

A peer that offers only RC4 is refused: RC4 in pure Python runs at a few MB/s at
best, far too slow to encrypt every block we send. The handshake is only a few
hundred bytes (plus the 1024 discarded ones per direction), which it does in about
a millisecond.

`Responder` is the state machine (bytes in, bytes to send out, then the plain
stream's first bytes), with no sockets and no clock: the caller bounds the time it
may take. `starts_plain` is how the caller tells the two kinds of connection apart
from their first 20 bytes.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable

from app.core.errors import ProtocolError
from app.core.peer_wire import PROTOCOL

P = int("FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A"
        "08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A6"
        "3A36210000000000090563", 16)
G = 2
KEY_LENGTH = 96              # a public key or the shared secret, big-endian
PRIVATE_BITS = 160
VC = bytes(8)                # the verification constant
CRYPTO_PLAINTEXT = 0x01
CRYPTO_RC4 = 0x02
MAX_PAD = 512
DISCARD = 1024               # keystream bytes thrown away before the first one used
MAX_IA = 1024                # libtorrent sends 68 (its handshake) and refuses more than 68

PLAIN_START = bytes([len(PROTOCOL)]) + PROTOCOL   # how a plain connection's first 20 bytes look
SNIFF_LENGTH = len(PLAIN_START)


def starts_plain(first: bytes) -> bool:
    """Whether a connection's first SNIFF_LENGTH bytes open a plain BitTorrent handshake
    (anything else is taken for MSE)."""
    return first[:SNIFF_LENGTH] == PLAIN_START


def sha1(*parts: bytes) -> bytes:
    return hashlib.sha1(b"".join(parts)).digest()


def private_key() -> int:
    return secrets.randbits(PRIVATE_BITS) | 1   # never 0


def public_key(private: int) -> bytes:
    return pow(G, private, P).to_bytes(KEY_LENGTH, "big")


def shared_secret(private: int, their_public: bytes) -> bytes:
    y = int.from_bytes(their_public, "big")
    if not 1 < y < P - 1:   # 0, 1 and P-1 would give a secret anyone can guess
        raise ProtocolError("MSE: a degenerate Diffie-Hellman key")
    return pow(y, private, P).to_bytes(KEY_LENGTH, "big")


class RC4:
    """The RC4 stream cipher (encrypting and decrypting are the same operation).
    Pure Python: for the MSE handshake's few hundred bytes only."""

    def __init__(self, key: bytes, discard: int = 0) -> None:
        s = list(range(256))
        j = 0
        for i in range(256):   # the key schedule
            j = (j + s[i] + key[i % len(key)]) & 0xFF
            s[i], s[j] = s[j], s[i]
        self._s = s
        self._i = self._j = 0
        if discard:
            self.crypt(bytes(discard))

    def crypt(self, data: bytes) -> bytes:
        s, i, j = self._s, self._i, self._j
        out = bytearray(data)
        for n in range(len(out)):
            i = (i + 1) & 0xFF
            j = (j + s[i]) & 0xFF
            s[i], s[j] = s[j], s[i]
            out[n] ^= s[(s[i] + s[j]) & 0xFF]
        self._i, self._j = i, j
        return bytes(out)


def stream_keys(secret: bytes, skey: bytes) -> tuple[bytes, bytes]:
    """The RC4 keys of the initiator's direction and of the responder's."""
    return sha1(b"keyA", secret, skey), sha1(b"keyB", secret, skey)


class _Exchange:
    """What both sides of the handshake share: a private key and a random pad, the
    bytes received so far, and the step they are waiting for. Each step uses the
    buffered bytes and returns what to send (b"" for nothing), or None while it
    needs more of them; the last one sets `plaintext`."""

    def __init__(self, private: int | None, pad: bytes | None) -> None:
        self._private = private_key() if private is None else private
        self._pad = secrets.token_bytes(secrets.randbelow(MAX_PAD + 1)) if pad is None else pad
        self._buffer = bytearray()
        self._step: Callable[[], bytes | None] = self._their_key
        self._decrypt: RC4 | None = None    # the peer's direction
        self._pad_length = 0
        self.plaintext: bytes | None = None

    def receive(self, data: bytes) -> bytes:
        """Take the peer's bytes; return what to send back."""
        if self.plaintext is not None:
            raise ProtocolError("MSE: the handshake is already over")
        self._buffer += data
        out = bytearray()
        while self.plaintext is None:
            sent = self._step()
            if sent is None:
                break       # needs more bytes
            out += sent
        return bytes(out)

    def _take(self, count: int) -> bytes | None:
        if len(self._buffer) < count:
            return None
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def _their_key(self) -> bytes | None:
        raise NotImplementedError


class Responder(_Exchange):
    """Our side of an incoming MSE handshake. Feed it what the peer sends with `receive`,
    which returns what to send back; once `plaintext` is not None the handshake is over
    and the plain BitTorrent stream starts with those bytes. Raises ProtocolError when
    the peer is not speaking MSE, asks for another torrent, or offers only RC4."""

    def __init__(self, info_hashes: Iterable[bytes], *, private: int | None = None,
                 pad: bytes | None = None) -> None:
        super().__init__(private, pad)
        self._by_req2 = {sha1(b"req2", h): h for h in info_hashes}
        self._secret = b""
        self._ia_length = 0
        self.skey: bytes | None = None      # the info hash the peer asked for

    def _their_key(self) -> bytes | None:
        ya = self._take(KEY_LENGTH)
        if ya is None:
            return None
        self._secret = shared_secret(self._private, ya)
        self._step = self._sync
        return public_key(self._private) + self._pad

    def _sync(self) -> bytes | None:
        """HASH('req1', S) must start within MAX_PAD bytes (PadA) after Ya."""
        at = self._buffer.find(sha1(b"req1", self._secret), 0, MAX_PAD + 20)
        if at < 0:
            if len(self._buffer) >= MAX_PAD + 20:
                raise ProtocolError("MSE: no sync hash within 628 bytes (not an MSE handshake)")
            return None
        del self._buffer[:at + 20]
        self._step = self._header
        return b""

    def _header(self) -> bytes | None:
        """The torrent asked for, VC, crypto_provide and len(PadC): answered at once."""
        head = self._take(20 + 8 + 4 + 2)
        if head is None:
            return None
        mask = sha1(b"req3", self._secret)
        skey = self._by_req2.get(bytes(a ^ b for a, b in zip(head[:20], mask, strict=True)))
        if skey is None:
            raise ProtocolError("MSE: peer asked for a torrent we do not serve")
        self.skey = skey
        key_a, key_b = stream_keys(self._secret, skey)
        self._decrypt = RC4(key_a, DISCARD)
        plain = self._decrypt.crypt(head[20:])
        if plain[:8] != VC:
            raise ProtocolError("MSE: wrong verification constant")
        provide = int.from_bytes(plain[8:12], "big")
        if not provide & CRYPTO_PLAINTEXT:
            # the payload would have to be RC4: too slow in pure Python (see the module's doc)
            raise ProtocolError(f"MSE: peer offers only encrypted streams (crypto_provide {provide:#x}); "
                                "we accept the plaintext method only")
        self._pad_length = int.from_bytes(plain[12:14], "big")
        if self._pad_length > MAX_PAD:
            raise ProtocolError(f"MSE: PadC of {self._pad_length} bytes (at most {MAX_PAD})")
        self._step = self._pad_c
        # VC, crypto_select = plaintext, len(PadD) = 0
        return RC4(key_b, DISCARD).crypt(VC + CRYPTO_PLAINTEXT.to_bytes(4, "big") + bytes(2))

    def _pad_c(self) -> bytes | None:
        data = self._take(self._pad_length + 2)
        if data is None:
            return None
        assert self._decrypt is not None
        self._ia_length = int.from_bytes(self._decrypt.crypt(data)[-2:], "big")
        if self._ia_length > MAX_IA:
            raise ProtocolError(f"MSE: initial payload of {self._ia_length} bytes (at most {MAX_IA})")
        self._step = self._ia
        return b""

    def _ia(self) -> bytes | None:
        data = self._take(self._ia_length)
        if data is None:
            return None
        assert self._decrypt is not None
        self.plaintext = self._decrypt.crypt(data) + bytes(self._buffer)
        self._buffer.clear()
        self._decrypt = None
        return b""


class Initiator(_Exchange):
    """Our side of an outgoing MSE handshake (we are A above), offering the plaintext
    method only. `hello()` is what to send first; feed what the peer sends to `receive`,
    which returns what to send next. `ia` is the start of our plain stream (our 68-byte
    handshake), sent encrypted inside the MSE handshake. Once `plaintext` is not None
    the handshake is over: the peer's plain stream starts with those bytes, and ours
    continues, plain, after `ia`. Raises ProtocolError when the peer answers with
    something else than MSE or selects RC4."""

    def __init__(self, skey: bytes, ia: bytes, *, private: int | None = None, pad: bytes | None = None) -> None:
        super().__init__(private, pad)
        self._skey = skey
        self.ia = ia
        self._vc = b""                     # how the peer's VC looks encrypted

    def hello(self) -> bytes:
        return public_key(self._private) + self._pad

    def _their_key(self) -> bytes | None:
        """Yb: now both sides know S, and we send step 3 at once."""
        yb = self._take(KEY_LENGTH)
        if yb is None:
            return None
        secret = shared_secret(self._private, yb)
        key_a, key_b = stream_keys(secret, self._skey)
        self._decrypt = RC4(key_b, DISCARD)
        self._vc = self._decrypt.crypt(VC)
        self._step = self._sync
        mask = sha1(b"req3", secret)
        skey_hash = bytes(a ^ b for a, b in zip(sha1(b"req2", self._skey), mask, strict=True))
        header = VC + CRYPTO_PLAINTEXT.to_bytes(4, "big") + bytes(2) + len(self.ia).to_bytes(2, "big")
        return sha1(b"req1", secret) + skey_hash + RC4(key_a, DISCARD).crypt(header + self.ia)

    def _sync(self) -> bytes | None:
        """The peer's encrypted VC must start within MAX_PAD bytes (PadB) after Yb."""
        at = self._buffer.find(self._vc, 0, MAX_PAD + len(VC))
        if at < 0:
            if len(self._buffer) >= MAX_PAD + len(VC):
                raise ProtocolError("MSE: no verification constant within 520 bytes (not an MSE answer)")
            return None
        del self._buffer[:at + len(VC)]
        self._step = self._select
        return b""

    def _select(self) -> bytes | None:
        data = self._take(4 + 2)
        if data is None:
            return None
        assert self._decrypt is not None
        plain = self._decrypt.crypt(data)
        select = int.from_bytes(plain[:4], "big")
        if select != CRYPTO_PLAINTEXT:
            raise ProtocolError(f"MSE: peer selected crypto method {select:#x}; we offered plaintext only")
        self._pad_length = int.from_bytes(plain[4:6], "big")
        if self._pad_length > MAX_PAD:
            raise ProtocolError(f"MSE: PadD of {self._pad_length} bytes (at most {MAX_PAD})")
        self._step = self._pad_d
        return b""

    def _pad_d(self) -> bytes | None:
        if self._take(self._pad_length) is None:
            return None
        self.plaintext = bytes(self._buffer)   # plaintext selected: the rest is the plain stream
        self._buffer.clear()
        self._decrypt = None
        return b""

    @property
    def encrypted(self) -> bool:
        return True


class Incoming:
    """An incoming connection's first bytes: a plain handshake (passed on as it is, once
    its first SNIFF_LENGTH bytes are in) or an MSE handshake (answered by a Responder).
    `receive` returns what to send back; once `plaintext` is not None, the plain
    BitTorrent stream starts with those bytes."""

    def __init__(self, info_hashes: Iterable[bytes]) -> None:
        self._info_hashes = list(info_hashes)
        self._first = bytearray()
        self.responder: Responder | None = None
        self.plaintext: bytes | None = None

    def receive(self, data: bytes) -> bytes:
        if self.responder is None:
            self._first += data
            if len(self._first) < SNIFF_LENGTH:
                return b""
            data = bytes(self._first)
            self._first.clear()
            if starts_plain(data):
                self.plaintext = data
                return b""
            self.responder = Responder(self._info_hashes)
        reply = self.responder.receive(data)
        self.plaintext = self.responder.plaintext
        return reply

    @property
    def encrypted(self) -> bool:
        """Whether the connection began with an MSE handshake (known once it is over)."""
        return self.responder is not None
