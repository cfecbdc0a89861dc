"""The grader-like fakes accept a correct client and flag what the grader would reject."""
import hashlib
import os
import time
import urllib.parse
import urllib.request

from support.bencoding import bdecode, bencode
from support.fakes import EXT_RESERVED, GraderTracker, HandshakePeer, MagnetPeer
from support.net import wait_for
from support.wire import PeerConnection, WireError

INFO = {"length": 5000, "name": "x.bin", "piece length": 16384, "pieces": os.urandom(20)}
METADATA = bencode(INFO)


def info_hash() -> str:
    return hashlib.sha1(METADATA).hexdigest()


def test_handshake_peer_accepts_plain_and_extension_reserved():
    with HandshakePeer(info_hash()) as peer:
        for reserved in (bytes(8), EXT_RESERVED):
            with PeerConnection("127.0.0.1", peer.port, bytes.fromhex(info_hash()),
                                reserved=reserved) as conn:
                assert conn.remote_peer_id.hex() == peer.sent_peer_ids[-1]
        wait_for(lambda: peer.completed == 2, 5)
        assert peer.violations == []


def test_handshake_peer_flags_the_fast_bit_and_a_wrong_hash():
    with HandshakePeer(info_hash()) as peer:
        try:
            PeerConnection("127.0.0.1", peer.port, bytes.fromhex(info_hash()),
                           reserved=bytes(7) + b"\x04", timeout=3).close()
        except (WireError, OSError):
            pass
        try:
            PeerConnection("127.0.0.1", peer.port, os.urandom(20), timeout=3).close()
        except (WireError, OSError):
            pass
        wait_for(lambda: len(peer.violations) == 2, 5)
        assert "reserved bytes" in peer.violations[0]
        assert "info hash" in peer.violations[1]
        assert peer.completed == 0


def test_magnet_peer_serves_metadata_to_a_correct_client():
    with MagnetPeer(info_hash(), METADATA, 1, mode="info") as peer:
        with PeerConnection("127.0.0.1", peer.port, bytes.fromhex(info_hash()),
                            reserved=EXT_RESERVED) as conn:
            assert conn.read_message() == (5, b"\x80")
            assert conn.fetch_metadata() == METADATA
        wait_for(lambda: peer.completed == 1, 5)
        assert peer.violations == []
        assert peer.request_ext_ids == [peer.ut_metadata_id]


def test_magnet_peer_rejects_a_message_before_the_extension_handshake():
    with MagnetPeer(info_hash(), METADATA, 1, mode="handshake") as peer:
        with PeerConnection("127.0.0.1", peer.port, bytes.fromhex(info_hash()),
                            reserved=EXT_RESERVED) as conn:
            conn.send(2)  # interested first: the grader fails this
            time.sleep(0.2)
        wait_for(lambda: peer.violations, 5)
        assert peer.violations == ["expected message id: 20, actual: 2"]


def test_magnet_peer_requires_the_extension_bit():
    with MagnetPeer(info_hash(), METADATA, 1, mode="handshake") as peer:
        try:
            PeerConnection("127.0.0.1", peer.port, bytes.fromhex(info_hash()), timeout=3)
        except (WireError, OSError):
            pass
        wait_for(lambda: peer.violations, 5)
        assert "reserved bytes 0000000000000000" in peer.violations[0]


def announce(tracker, **overrides):
    params = {"info_hash": bytes.fromhex(info_hash()), "peer_id": b"-TS0001-abcdefghijkl",
              "port": 6881, "uploaded": 0, "downloaded": 0, "left": 5000, "compact": 1}
    params.update(overrides)
    params = {k: v for k, v in params.items() if v is not None}
    with urllib.request.urlopen(tracker.announce_url + "?" + urllib.parse.urlencode(params),
                                timeout=5) as reply:
        return bdecode(reply.read())


def test_grader_tracker_answers_a_correct_announce_with_compact_peers():
    with GraderTracker() as tracker:
        tracker.add(info_hash(), 5000, ["188.119.61.177:6881", "127.0.0.1:51413"])
        reply = announce(tracker)
        assert reply[b"peers"] == bytes([188, 119, 61, 177, 0x1A, 0xE1, 127, 0, 0, 1,
                                         0xC8, 0xD5])
        assert tracker.violations == []


def test_grader_tracker_flags_what_the_grader_rejects():
    with GraderTracker() as tracker:
        tracker.add(info_hash(), 5000, ["1.2.3.4:5"])
        bad = [dict(info_hash=info_hash().encode()), dict(left=5001), dict(compact=0),
               dict(peer_id=b"short"), dict(left=None), dict(port="x")]
        for overrides in bad:
            assert b"failure reason" in announce(tracker, **overrides), overrides
        assert b"peers" not in announce(tracker, left=0)
        assert len(tracker.violations) == len(bad) + 1
        assert "hexadecimal" in tracker.violations[0]
