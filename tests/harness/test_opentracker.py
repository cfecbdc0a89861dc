"""The opentracker fixture behaves as REAL-PEERS.md says (whitelist, SIGHUP, compact peers)."""
import os

from support.net import free_port


def test_unknown_hash_is_refused_and_whitelisting_allows_it(opentracker):
    info_hash = os.urandom(20).hex()
    reply = opentracker.announce(info_hash, port=free_port(), left=5)
    assert b"not authorized" in reply[b"failure reason"]
    opentracker.whitelist(info_hash)
    reply = opentracker.announce(info_hash, port=4242, left=5)
    assert b"failure reason" not in reply
    assert b"\x7f\x00\x00\x01\x10\x92" in reply[b"peers"]  # 127.0.0.1:4242, compact
    assert "127.0.0.1:4242" in opentracker.peers(info_hash)
    opentracker.announce(info_hash, port=4242, left=5, event="stopped")
    assert "127.0.0.1:4242" not in opentracker.peers(info_hash)
