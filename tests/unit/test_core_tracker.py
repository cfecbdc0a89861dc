"""app/core/tracker.py: the announce URL and the HTTP tracker reply, against hand-written bytes."""

import pytest

from app.core.errors import TrackerError
from app.core.tracker import (
    DEFAULT_INTERVAL,
    AnnounceRequest,
    PeerAddress,
    announce_url,
    encode_compact_peers,
    parse_announce_response,
    parse_compact_peers,
)

BASE = "http://127.0.0.1:6969/announce"
# every awkward byte once: space, '+', '&', '%', '~', NUL, 0xff, then 13 plain letters
AWKWARD_HASH = b" +&%~\x00\xff" + b"abcdefghijklm"
AWKWARD_HASH_ENCODED = "%20" "%2B" "%26" "%25" "~" "%00" "%FF" "abcdefghijklm"
PEER_ID = b"-PY0001-" + b"0123456789ab"


def _query(url: str) -> list[str]:
    assert url.count("?") == 1
    return url.split("?", 1)[1].split("&")


def test_awkward_hash_is_percent_encoded_byte_by_byte():
    assert len(AWKWARD_HASH) == 20
    url = announce_url(BASE, AnnounceRequest(AWKWARD_HASH, PEER_ID, 6881))
    assert url.startswith(BASE + "?")
    query = _query(url)
    assert query[0] == "info_hash=" + AWKWARD_HASH_ENCODED
    assert query[1] == "peer_id=-PY0001-0123456789ab"


@pytest.mark.parametrize("byte, encoded", [
    (0x20, "%20"), (ord("+"), "%2B"), (ord("&"), "%26"), (ord("%"), "%25"), (ord("="), "%3D"),
    (ord("/"), "%2F"), (ord("?"), "%3F"), (ord("#"), "%23"), (0x00, "%00"), (0x7F, "%7F"),
    (0x80, "%80"), (0xFF, "%FF"), (ord("~"), "~"), (ord("-"), "-"), (ord("."), "."),
    (ord("_"), "_"), (ord("A"), "A"), (ord("z"), "z"), (ord("0"), "0"),
])
def test_each_byte_of_the_hash(byte, encoded):
    info_hash = bytes([byte]) * 20
    url = announce_url(BASE, AnnounceRequest(info_hash, PEER_ID, 1))
    assert _query(url)[0] == "info_hash=" + encoded * 20


def test_full_url_with_defaults():
    url = announce_url(BASE, AnnounceRequest(b"\x01" * 20, PEER_ID, 6881))
    assert url == (BASE + "?info_hash=" + "%01" * 20 + "&peer_id=-PY0001-0123456789ab"
                   "&port=6881&uploaded=0&downloaded=0&left=1&compact=1&numwant=50")


def test_full_url_with_every_field():
    request = AnnounceRequest(b"\xaa" * 20, b"\x00" * 20, 51413, uploaded=10, downloaded=20,
                              left=30, event="started", numwant=5, tracker_id=b"t i&d",
                              key=0xBEEF)
    query = _query(announce_url(BASE, request))
    assert query == ["info_hash=" + "%AA" * 20, "peer_id=" + "%00" * 20, "port=51413",
                     "uploaded=10", "downloaded=20", "left=30", "compact=1", "numwant=5",
                     "key=0000beef", "event=started", "trackerid=t%20i%26d"]


def test_base_url_with_a_query_gets_an_ampersand():
    url = announce_url("http://127.0.0.1:1/ann?passkey=abc", AnnounceRequest(b"a" * 20, PEER_ID, 1))
    assert url.startswith("http://127.0.0.1:1/ann?passkey=abc&info_hash=" + "a" * 20 + "&")


# --- replies -----------------------------------------------------------------------------

def test_compact_peers():
    body = (b"d8:intervali900e5:peers12:"
            b"\x7f\x00\x00\x01\x1a\xe1"      # 127.0.0.1:6881
            b"\x0a\x00\x00\x02\xc8\xd5"      # 10.0.0.2:51413
            b"e")
    reply = parse_announce_response(body)
    assert reply.peers == (PeerAddress("127.0.0.1", 6881), PeerAddress("10.0.0.2", 51413))
    assert reply.interval == 900
    assert reply.min_interval is None
    assert reply.tracker_id is None
    assert reply.warning is None
    assert [str(p) for p in reply.peers] == ["127.0.0.1:6881", "10.0.0.2:51413"]


def test_dict_peers_keep_good_entries_and_skip_bad_ones():
    body = (b"d5:peersl"
            b"d2:ip9:127.0.0.17:peer id20:AAAAAAAAAAAAAAAAAAAA4:porti6881ee"
            b"d2:ip3:::14:porti80ee"                 # IPv6 literal
            b"d2:ip11:example.org4:porti1ee"         # hostname: skipped
            b"d2:ip9:127.0.0.14:porti0ee"            # port 0: skipped
            b"d2:ip9:127.0.0.14:porti65536ee"        # port too big: skipped
            b"d4:porti1ee"                           # no ip: skipped
            b"d2:ipi5e4:porti1ee"                    # ip not a string: skipped
            b"d2:ip9:127.0.0.14:port2:80e"           # port not an int: skipped
            b"i5e"                                   # not a dict: skipped
            b"ee")
    reply = parse_announce_response(body)
    assert reply.peers == (PeerAddress("127.0.0.1", 6881), PeerAddress("::1", 80))
    assert str(reply.peers[1]) == "[::1]:80"
    assert reply.interval == DEFAULT_INTERVAL


def test_peers6():
    body = (b"d5:peers6:\x7f\x00\x00\x01\x00\x50"
            b"6:peers636:"
            + b"\x00" * 15 + b"\x01" + b"\x1a\xe1"                       # [::1]:6881
            + b"\x20\x01\x0d\xb8" + b"\x00" * 11 + b"\x05" + b"\xff\xff"  # [2001:db8::5]:65535
            + b"e")
    reply = parse_announce_response(body)
    assert reply.peers == (PeerAddress("127.0.0.1", 80), PeerAddress("::1", 6881),
                           PeerAddress("2001:db8::5", 65535))


def test_no_peers_key():
    reply = parse_announce_response(b"d8:intervali60ee")
    assert reply.peers == ()
    assert reply.interval == 60


def test_optional_fields():
    body = (b"d8:completei3e10:incompletei4e8:intervali1800e12:min intervali300e"
            b"5:peers0:10:tracker id3:xyz15:warning message7:careful"
            b"e")
    reply = parse_announce_response(body)
    assert reply.interval == 1800
    assert reply.min_interval == 300
    assert reply.tracker_id == b"xyz"
    assert reply.warning == "careful"
    assert (reply.complete, reply.incomplete) == (3, 4)


def test_negative_or_ill_typed_numbers_fall_back():
    body = b"d8:completei-1e8:intervali-5e12:min interval2:xx5:peers0:e"
    reply = parse_announce_response(body)
    assert reply.interval == DEFAULT_INTERVAL
    assert reply.min_interval is None
    assert reply.complete is None


def test_failure_reason_raises_with_the_message():
    with pytest.raises(TrackerError, match="torrent not registered"):
        parse_announce_response(b"d14:failure reason22:torrent not registerede")


def test_failure_reason_wins_even_with_peers():
    with pytest.raises(TrackerError):
        parse_announce_response(b"d14:failure reason2:no5:peers6:\x7f\x00\x00\x01\x00\x50e")


@pytest.mark.parametrize("body", [
    b"d5:peers7:\x7f\x00\x00\x01\x00\x50\x00e",          # 7 bytes: not a multiple of 6
    b"d5:peers5:\x7f\x00\x00\x01\x00e",
    b"d5:peersi5ee",                                     # neither string nor list
    b"d5:peers0:6:peers617:" + b"\x00" * 17 + b"e",      # peers6 not a multiple of 18
    b"d5:peers0:6:peers6le" + b"e",                      # peers6 not a string
    b"le",                                               # not a dict
    b"i1e",
    b"",
    b"<html>not bencode</html>",
    b"d8:intervali60e",                                  # truncated
    b"d8:intervali60eejunk",                             # trailing data
])
def test_bad_replies_raise_tracker_error(body):
    with pytest.raises(TrackerError):
        parse_announce_response(body)


def test_compact_peer_codec_by_hand():
    peers = [PeerAddress("1.2.3.4", 258), PeerAddress("255.255.255.255", 65535)]
    assert encode_compact_peers(peers) == b"\x01\x02\x03\x04\x01\x02\xff\xff\xff\xff\xff\xff"
    assert parse_compact_peers(b"\x01\x02\x03\x04\x01\x02\xff\xff\xff\xff\xff\xff") == tuple(peers)
    assert parse_compact_peers(b"") == ()
