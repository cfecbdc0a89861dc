"""UDP tracker (BEP 15): codec against hand-written packets, policy, and I/O
against a small in-test tracker on 127.0.0.1."""

import asyncio
import time

import pytest

from app.core.errors import TrackerError
from app.core.tracker import AnnounceRequest, PeerAddress
from app.core.udp_tracker import (
    ConnectionIdCache,
    ScrapeStats,
    build_announce_request,
    build_connect_request,
    build_scrape_request,
    is_connection_id_fresh,
    parse_announce_response,
    parse_connect_response,
    parse_peer_list,
    parse_scrape_response,
    parse_udp_url,
    reply_body,
    retry_timeouts,
)
from app.io import udp_tracker as udp_io

pytestmark = pytest.mark.timeout(30)

TID = 0x01020304
CONN_ID = 0xAABBCCDDEEFF0011
CONN_ID_BYTES = b"\xaa\xbb\xcc\xdd\xee\xff\x00\x11"
INFO_HASH = bytes(range(20))
PEER_ID = b"-PY0001-abcdefghijkl"


# --- connect ------------------------------------------------------------------

def test_connect_request_bytes():
    assert build_connect_request(TID) == (
        b"\x00\x00\x04\x17\x27\x10\x19\x80"  # protocol id 0x41727101980
        b"\x00\x00\x00\x00"                  # action 0: connect
        b"\x01\x02\x03\x04")                 # transaction id


def test_connect_response_gives_connection_id():
    reply = b"\x00\x00\x00\x00" b"\x01\x02\x03\x04" + CONN_ID_BYTES
    assert parse_connect_response(reply, TID) == CONN_ID


@pytest.mark.parametrize("reply", [
    b"",
    b"\x00\x00\x00\x00\x01\x02\x03",                                 # shorter than a header
    b"\x00\x00\x00\x00\x01\x02\x03\x04\xaa\xbb\xcc",                 # truncated connection id
    b"\x00\x00\x00\x00\x09\x09\x09\x09" + CONN_ID_BYTES,             # another transaction
    b"\x00\x00\x00\x01\x01\x02\x03\x04" + CONN_ID_BYTES,             # action 1, not connect
    b"\x00\x00\x00\x02\x01\x02\x03\x04" + CONN_ID_BYTES,             # action 2, not connect
], ids=["empty", "short-header", "short-body", "wrong-tid", "announce-action", "scrape-action"])
def test_connect_response_rejects_datagrams_that_are_not_our_reply(reply):
    assert parse_connect_response(reply, TID) is None


def test_error_reply_raises_with_the_tracker_message():
    reply = b"\x00\x00\x00\x03" b"\x01\x02\x03\x04" b"unregistered torrent"
    with pytest.raises(TrackerError, match="unregistered torrent"):
        parse_connect_response(reply, TID)
    with pytest.raises(TrackerError, match="unregistered torrent"):
        parse_announce_response(reply, TID)


def test_error_reply_for_another_transaction_is_ignored():
    reply = b"\x00\x00\x00\x03" b"\x07\x07\x07\x07" b"not for you"
    assert parse_announce_response(reply, TID) is None


def test_error_reply_without_message():
    with pytest.raises(TrackerError, match="no message"):
        parse_announce_response(b"\x00\x00\x00\x03\x01\x02\x03\x04", TID)


# --- announce -----------------------------------------------------------------

def announce_request(**changes) -> AnnounceRequest:
    fields = dict(info_hash=INFO_HASH, peer_id=PEER_ID, port=6881, uploaded=7,
                  downloaded=100, left=1000, event="started", numwant=50, key=0xDEADBEEF)
    fields.update(changes)
    return AnnounceRequest(**fields)


def test_announce_request_bytes():
    expected = (
        CONN_ID_BYTES
        + b"\x00\x00\x00\x01"                   # action 1: announce
        + b"\x0a\x0b\x0c\x0d"                   # transaction id
        + bytes(range(20))                      # info hash
        + b"-PY0001-abcdefghijkl"               # peer id
        + b"\x00\x00\x00\x00\x00\x00\x00\x64"   # downloaded 100
        + b"\x00\x00\x00\x00\x00\x00\x03\xe8"   # left 1000
        + b"\x00\x00\x00\x00\x00\x00\x00\x07"   # uploaded 7
        + b"\x00\x00\x00\x02"                   # event 2: started
        + b"\x00\x00\x00\x00"                   # ip 0: use the sender's address
        + b"\xde\xad\xbe\xef"                   # key
        + b"\x00\x00\x00\x32"                   # num_want 50
        + b"\x1a\xe1")                          # port 6881
    packet = build_announce_request(CONN_ID, 0x0A0B0C0D, announce_request())
    assert len(packet) == 98
    assert packet == expected


@pytest.mark.parametrize("event, code", [
    ("", b"\x00\x00\x00\x00"), ("completed", b"\x00\x00\x00\x01"),
    ("started", b"\x00\x00\x00\x02"), ("stopped", b"\x00\x00\x00\x03")])
def test_announce_event_codes(event, code):
    packet = build_announce_request(CONN_ID, TID, announce_request(event=event))
    assert packet[80:84] == code


def test_negative_numwant_means_tracker_default():
    packet = build_announce_request(CONN_ID, TID, announce_request(numwant=-5))
    assert packet[92:96] == b"\xff\xff\xff\xff"


def test_unknown_event_is_refused():
    with pytest.raises(ValueError):
        build_announce_request(CONN_ID, TID, announce_request(event="paused"))


ANNOUNCE_HEAD = (b"\x00\x00\x00\x01" b"\x01\x02\x03\x04"
                 b"\x00\x00\x07\x08"     # interval 1800
                 b"\x00\x00\x00\x03"     # leechers 3
                 b"\x00\x00\x00\x05")    # seeders 5


def test_announce_response_with_ipv4_peers():
    reply = ANNOUNCE_HEAD + b"\xc0\xa8\x01\x02\x1a\xe1" b"\x0a\x00\x00\x01\x00\x50"
    response = parse_announce_response(reply, TID)
    assert response.peers == (PeerAddress("192.168.1.2", 6881), PeerAddress("10.0.0.1", 80))
    assert response.interval == 1800
    assert response.incomplete == 3
    assert response.complete == 5


def test_announce_response_without_peers():
    response = parse_announce_response(ANNOUNCE_HEAD, TID)
    assert response.peers == ()


def test_announce_response_with_ipv6_peers():
    reply = (ANNOUNCE_HEAD
             + b"\x00" * 15 + b"\x01" + b"\x1a\xe1"
             + b"\x20\x01\x0d\xb8" + b"\x00" * 11 + b"\x05" + b"\x01\xbb")
    response = parse_announce_response(reply, TID, ipv6=True)
    assert response.peers == (PeerAddress("::1", 6881), PeerAddress("2001:db8::5", 443))


def test_six_byte_entries_are_not_ipv6_entries():
    with pytest.raises(TrackerError, match="multiple of 18"):
        parse_announce_response(ANNOUNCE_HEAD + b"\x7f\x00\x00\x01\x1a\xe1", TID, ipv6=True)


def test_misaligned_ipv4_peer_list_is_an_error():
    with pytest.raises(TrackerError, match="multiple of 6"):
        parse_announce_response(ANNOUNCE_HEAD + b"\x7f\x00\x00\x01\x1a", TID)


def test_nonpositive_interval_falls_back_to_default():
    reply = b"\x00\x00\x00\x01\x01\x02\x03\x04" + b"\x00" * 4 + b"\x00" * 8
    assert parse_announce_response(reply, TID).interval == 1800


def test_opentracker_bare_reply_is_an_error_not_a_crash():
    # opentracker's answer to a hash that is not on its whitelist: just the header
    with pytest.raises(TrackerError, match="empty announce reply"):
        parse_announce_response(b"\x00\x00\x00\x01\x01\x02\x03\x04", TID)


@pytest.mark.parametrize("reply", [
    b"\x00\x00\x00\x01\x01\x02",                                        # short header
    b"\x00\x00\x00\x01\x01\x02\x03\x04\x00\x00\x07\x08\x00\x00",        # short body
    ANNOUNCE_HEAD[:4] + b"\x04\x03\x02\x01" + ANNOUNCE_HEAD[8:],        # another transaction
    b"\x00\x00\x00\x00\x01\x02\x03\x04" + CONN_ID_BYTES,                # a connect reply
    b"\x00\x00\x00\x02" + ANNOUNCE_HEAD[4:],                            # a scrape reply
], ids=["short-header", "short-body", "wrong-tid", "connect-action", "scrape-action"])
def test_announce_response_rejects_datagrams_that_are_not_our_reply(reply):
    assert parse_announce_response(reply, TID) is None


def test_reply_body_strips_header_only_for_a_match():
    assert reply_body(b"\x00\x00\x00\x02\x01\x02\x03\x04xyz", TID, 2) == b"xyz"
    assert reply_body(b"\x00\x00\x00\x02\x01\x02\x03\x04xyz", TID, 1) is None


def test_parse_peer_list_directly():
    assert parse_peer_list(b"\x01\x02\x03\x04\x00\x01") == (PeerAddress("1.2.3.4", 1),)


# --- scrape -------------------------------------------------------------------

def test_scrape_request_bytes():
    hashes = [b"\x11" * 20, b"\x22" * 20]
    assert build_scrape_request(CONN_ID, TID, hashes) == (
        CONN_ID_BYTES + b"\x00\x00\x00\x02" + b"\x01\x02\x03\x04"
        + b"\x11" * 20 + b"\x22" * 20)


def test_scrape_request_limits():
    with pytest.raises(ValueError):
        build_scrape_request(CONN_ID, TID, [])
    with pytest.raises(ValueError):
        build_scrape_request(CONN_ID, TID, [b"\x00" * 20] * 75)
    with pytest.raises(ValueError):
        build_scrape_request(CONN_ID, TID, [b"short"])


def test_scrape_response():
    reply = (b"\x00\x00\x00\x02" b"\x01\x02\x03\x04"
             b"\x00\x00\x00\x0a" b"\x00\x00\x00\x14" b"\x00\x00\x00\x1e"
             b"\x00\x00\x00\x00" b"\x00\x00\x00\x01" b"\x00\x00\x00\x02")
    assert parse_scrape_response(reply, TID, 2) == (ScrapeStats(10, 20, 30), ScrapeStats(0, 1, 2))


def test_scrape_response_rejects_short_and_foreign_replies():
    one_entry = b"\x00\x00\x00\x02\x01\x02\x03\x04" + b"\x00" * 12
    assert parse_scrape_response(one_entry, TID, 2) is None
    assert parse_scrape_response(one_entry, 0x05050505, 1) is None


# --- URL, retry schedule, connection ids --------------------------------------

def test_parse_udp_url():
    assert parse_udp_url("udp://tracker.example:6969/announce") == ("tracker.example", 6969)
    assert parse_udp_url("udp://[::1]:80") == ("::1", 80)


@pytest.mark.parametrize("url", ["http://a:80/announce", "udp://a/announce", "udp://:80",
                                 "udp://a:99999"])
def test_parse_udp_url_rejects(url):
    with pytest.raises(TrackerError):
        parse_udp_url(url)


def test_retry_schedule_is_bep15_when_uncapped():
    assert retry_timeouts(100_000) == (15, 30, 60, 120, 240, 480, 960, 1920, 3840)


@pytest.mark.parametrize("cap, expected", [
    (0, ()), (5, (5,)), (15, (15,)), (20, (15, 5)), (100, (15, 30, 55)),
    (105, (15, 30, 60)), (7665, (15, 30, 60, 120, 240, 480, 960, 1920, 3840))])
def test_retry_schedule_fits_the_cap(cap, expected):
    assert retry_timeouts(cap) == expected


def test_retry_schedule_with_a_smaller_first_wait():
    assert retry_timeouts(1.5, first_wait=0.1) == pytest.approx((0.1, 0.2, 0.4, 0.8))


def test_connection_id_lifetime_is_one_minute():
    assert is_connection_id_fresh(100.0, 100.0)
    assert is_connection_id_fresh(100.0, 159.9)
    assert not is_connection_id_fresh(100.0, 160.0)
    assert not is_connection_id_fresh(100.0, 99.0)  # clock went backwards: don't trust


def test_connection_id_cache_expiry_and_forget():
    cache = ConnectionIdCache()
    cache.put(("127.0.0.1", 1), 42, now=1000.0)
    assert cache.get(("127.0.0.1", 1), now=1059.0) == 42
    assert cache.get(("127.0.0.1", 2), now=1059.0) is None
    assert cache.get(("127.0.0.1", 1), now=1060.0) is None
    cache.put(("127.0.0.1", 1), 43, now=2000.0)
    cache.forget(("127.0.0.1", 1))
    assert cache.get(("127.0.0.1", 1), now=2000.0) is None


def test_connection_id_cache_drops_expired_entries_when_adding():
    cache = ConnectionIdCache()
    cache.put("old", 1, now=0.0)
    cache.put("new", 2, now=61.0)
    assert "old" not in cache._entries


# --- I/O against an in-test tracker on 127.0.0.1 ------------------------------

SERVER_CONN_ID = b"\x12\x34\x56\x78\x9a\xbc\xde\xf0"
PEERS_BLOB = b"\x7f\x00\x00\x01\x1a\xe1" b"\x7f\x00\x00\x02\x1a\xe2"
PEERS = (PeerAddress("127.0.0.1", 6881), PeerAddress("127.0.0.2", 6882))


class FakeTracker(asyncio.DatagramProtocol):
    """Answers connect and announce like a BEP 15 tracker, with optional misbehaviour.

    Like opentracker, it silently ignores announces with an unknown connection id.
    """

    def __init__(self, *, drop_first=0, wrong_tid_first=False, silent=False,
                 announce_reply=None):
        self.drop_first = drop_first
        self.wrong_tid_first = wrong_tid_first
        self.silent = silent
        self.announce_reply = announce_reply  # bytes after the header, to override
        self.received = []

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.received.append(data)
        if self.silent or len(self.received) <= self.drop_first:
            return
        for reply in self.replies_to(data):
            self.transport.sendto(reply, addr)

    def replies_to(self, data):
        if len(data) == 16 and data[:12] == b"\x00\x00\x04\x17\x27\x10\x19\x80\x00\x00\x00\x00":
            header, body = b"\x00\x00\x00\x00" + data[12:16], SERVER_CONN_ID
        elif len(data) == 98 and data[8:12] == b"\x00\x00\x00\x01":
            if data[:8] != SERVER_CONN_ID:
                return []
            header = b"\x00\x00\x00\x01" + data[12:16]
            body = (b"\x00\x00\x03\x84" b"\x00\x00\x00\x01" b"\x00\x00\x00\x02" + PEERS_BLOB
                    if self.announce_reply is None else self.announce_reply)
        else:
            return []
        replies = [header + body]
        if self.wrong_tid_first:
            wrong = header[:4] + bytes(b ^ 0xFF for b in header[4:8])
            replies.insert(0, wrong + b"\x00\x00\x03\x84" + b"\x00" * 8 + b"\x01\x01\x01\x01\x00\x01")
            replies.insert(1, b"junk")
        return replies


def run_against(tracker, *, timeout=3.0, first_wait=0.2, request=None, announces=1):
    async def scenario():
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: tracker, local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        try:
            url = f"udp://127.0.0.1:{port}/announce"
            results = []
            for _ in range(announces):
                results.append(await udp_io.announce_udp(
                    url, request or announce_request(), timeout=timeout, first_wait=first_wait))
            return results[-1]
        finally:
            transport.close()
    return asyncio.run(scenario())


def connects(tracker):
    return [d for d in tracker.received if len(d) == 16]


@pytest.fixture(autouse=True)
def fresh_connection_cache():
    udp_io.CONNECTION_IDS.clear()
    yield
    udp_io.CONNECTION_IDS.clear()


def test_announce_over_udp():
    tracker = FakeTracker()
    response = run_against(tracker)
    assert response.peers == PEERS
    assert (response.interval, response.incomplete, response.complete) == (900, 1, 2)
    assert len(tracker.received) == 2
    sent = tracker.received[1]
    assert sent[:8] == SERVER_CONN_ID and sent[16:36] == INFO_HASH and sent[36:56] == PEER_ID


def test_dropped_packet_is_sent_again():
    tracker = FakeTracker(drop_first=1)
    response = run_against(tracker, first_wait=0.2)
    assert response.peers == PEERS
    assert len(connects(tracker)) == 2  # the dropped connect went out twice


def test_reply_with_wrong_transaction_id_is_ignored():
    tracker = FakeTracker(wrong_tid_first=True)
    response = run_against(tracker, first_wait=2.0)
    assert response.peers == PEERS
    assert len(tracker.received) == 2  # accepted within the first wait, no retransmission


def test_silent_tracker_fails_clearly_within_the_timeout():
    tracker = FakeTracker(silent=True)
    started = time.monotonic()
    with pytest.raises(TrackerError, match=r"udp://127\.0\.0\.1:\d+/announce: no reply within 1 s"):
        run_against(tracker, timeout=1.0, first_wait=0.1)
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 2.0
    # waits of 0.1, 0.2, 0.4 and the remaining 0.3 (a slow machine may lose the last)
    assert len(tracker.received) in (3, 4)


def test_error_reply_becomes_tracker_error():
    tracker = FakeTracker(announce_reply=b"")
    tracker.replies_to = lambda data: [b"\x00\x00\x00\x03" + data[12:16] + b"go away"]
    with pytest.raises(TrackerError, match="go away"):
        run_against(tracker)


def test_bare_announce_reply_becomes_tracker_error():
    with pytest.raises(TrackerError, match="empty announce reply"):
        run_against(FakeTracker(announce_reply=b""))


def test_connection_id_is_reused_for_a_minute():
    tracker = FakeTracker()
    run_against(tracker, announces=3)
    assert len(connects(tracker)) == 1
    assert len(tracker.received) == 4


def test_unknown_connection_id_leads_to_a_new_connect():
    # A cached id the tracker no longer accepts (it restarted): the announce goes
    # unanswered, so the client must drop the id and connect again.
    tracker = FakeTracker()

    async def scenario():
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: tracker, local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        udp_io.CONNECTION_IDS.put(("127.0.0.1", port), 0x0BADC0DE, time.monotonic())
        try:
            return await udp_io.announce_udp(f"udp://127.0.0.1:{port}", announce_request(),
                                             timeout=3.0, first_wait=0.2)
        finally:
            transport.close()

    response = asyncio.run(scenario())
    assert response.peers == PEERS
    assert [len(d) for d in tracker.received] == [98, 16, 98]


def test_unresolvable_or_bad_url_is_a_tracker_error():
    with pytest.raises(TrackerError):
        asyncio.run(udp_io.announce_udp("udp://127.0.0.1/announce", announce_request()))
