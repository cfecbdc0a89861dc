"""The demo tracker: the pure registry (app.core.tracker_server) and its HTTP server
(app.io.tracker_server) on 127.0.0.1. Replies are decoded with the tests' own bencode."""
import random
import socket
import struct
from urllib.parse import quote_from_bytes, urlsplit

import pytest

from app.core.tracker import AnnounceRequest, PeerAddress, announce_url, parse_announce_response
from app.core.tracker_server import Registry, parse_query
from app.io.tracker_client import announce_http
from app.io.tracker_server import MAX_REQUEST, BackgroundTracker
from support.bencoding import bdecode

HASH_A = bytes(range(20))
HASH_B = bytes(range(100, 120))
IP = "127.0.0.1"


def peer_id(n: int) -> bytes:
    return b"-TS0001-" + b"%012d" % n


def query(info_hash=HASH_A, pid=1, port=6881, left=100, event="", **extra) -> bytes:
    """A query string as our tracker client builds it; `extra` fields come first, and the
    first of repeated fields counts, so they override the client's compact and numwant."""
    request = AnnounceRequest(info_hash, peer_id(pid), port, left=left, event=event)
    text = urlsplit(announce_url("http://t/announce", request)).query
    return "".join(f"{k}={v}&" for k, v in extra.items()).encode() + text.encode()


def compact(*peers: tuple[str, int]) -> bytes:
    return b"".join(socket.inet_aton(ip) + struct.pack(">H", port) for ip, port in peers)


def ask(registry: Registry, raw: bytes, ip: str = IP, now: float = 0.0) -> dict:
    return bdecode(registry.handle(raw, ip, now))


# --- query parsing -------------------------------------------------------------------------

def test_query_values_are_percent_decoded_to_raw_bytes():
    params = parse_query(b"info_hash=%00%ff%2B+a&peer_id=x&peer_id=y&flag&empty=")
    assert params == {"info_hash": [b"\x00\xff+ a"], "peer_id": [b"x", b"y"], "flag": [b""],
                      "empty": [b""]}


def test_binary_info_hash_survives_the_client_encoding():
    every_byte = bytes(range(236, 256))
    params = parse_query(b"info_hash=" + quote_from_bytes(every_byte, safe="").encode())
    assert params["info_hash"] == [every_byte]


# --- announces ---------------------------------------------------------------------------

def test_first_peer_gets_no_peers_but_the_counts_and_intervals():
    reply = ask(Registry(interval=60), query(left=0))
    assert reply == {b"interval": 60, b"min interval": 30, b"complete": 1, b"incomplete": 0,
                     b"peers": b""}


def test_compact_reply_lists_others_and_never_the_peer_itself():
    registry = Registry()
    ask(registry, query(pid=1, port=1001))
    ask(registry, query(pid=2, port=1002), ip="10.0.0.2")
    reply = ask(registry, query(pid=3, port=1003, left=0))
    assert sorted(reply[b"peers"][i:i + 6] for i in range(0, 12, 6)) == sorted(
        [compact((IP, 1001)), compact(("10.0.0.2", 1002))])
    assert (reply[b"complete"], reply[b"incomplete"]) == (1, 2)
    again = ask(registry, query(pid=1, port=1001))
    assert compact((IP, 1001)) not in [again[b"peers"][i:i + 6] for i in range(0, 12, 6)]
    assert len(again[b"peers"]) == 12


def test_non_compact_reply_is_a_list_of_dicts_with_peer_ids():
    registry = Registry()
    ask(registry, query(pid=1, port=1001))
    reply = ask(registry, query(pid=2, port=1002, compact=0))
    assert reply[b"peers"] == [{b"ip": b"127.0.0.1", b"port": 1001, b"peer id": peer_id(1)}]
    without_ids = ask(registry, query(pid=2, port=1002, compact=0, no_peer_id=1))
    assert without_ids[b"peers"] == [{b"ip": b"127.0.0.1", b"port": 1001}]


def test_our_tracker_client_reads_the_reply():
    registry = Registry(interval=90)
    ask(registry, query(pid=1, port=1001))
    response = parse_announce_response(registry.handle(query(pid=2, port=1002), IP, 0.0))
    assert response.peers == (PeerAddress(IP, 1001),)
    assert (response.interval, response.min_interval) == (90, 45)
    assert (response.complete, response.incomplete) == (0, 2)


def test_swarms_are_kept_apart():
    registry = Registry()
    ask(registry, query(info_hash=HASH_A, port=1001))
    reply = ask(registry, query(info_hash=HASH_B, pid=2, port=1002))
    assert reply[b"peers"] == b"" and reply[b"incomplete"] == 1


def test_stopped_removes_the_peer():
    registry = Registry()
    ask(registry, query(pid=1, port=1001))
    ask(registry, query(pid=2, port=1002))
    stopped = ask(registry, query(pid=1, port=1001, event="stopped"))
    assert stopped[b"peers"] == b"" and stopped[b"incomplete"] == 1
    assert ask(registry, query(pid=2, port=1002))[b"peers"] == b""
    assert registry.peers(HASH_A) == [PeerAddress(IP, 1002)]


def test_the_last_peer_stopping_forgets_the_swarm():
    registry = Registry()
    ask(registry, query(port=1001))
    ask(registry, query(port=1001, event="stopped"))
    assert registry.swarms == {}


def test_a_completed_peer_counts_as_a_seed():
    registry = Registry()
    ask(registry, query(pid=1, port=1001, left=5))
    reply = ask(registry, query(pid=1, port=1001, left=0, event="completed"))
    assert (reply[b"complete"], reply[b"incomplete"]) == (1, 0)


def test_a_restarted_client_on_the_same_address_replaces_itself():
    registry = Registry()
    ask(registry, query(pid=1, port=1001))
    ask(registry, query(pid=9, port=1001))
    reply = ask(registry, query(pid=2, port=1002, compact=0))
    assert reply[b"peers"] == [{b"ip": b"127.0.0.1", b"port": 1001, b"peer id": peer_id(9)}]


def test_silent_peers_expire():
    registry = Registry(interval=60, peer_ttl=100)
    ask(registry, query(pid=1, port=1001), now=0)
    ask(registry, query(pid=2, port=1002), now=50)
    assert len(ask(registry, query(pid=3, port=1003), now=100)[b"peers"]) == 12
    reply = ask(registry, query(pid=3, port=1003), now=120)   # 1001 silent for 120 s
    assert reply[b"peers"] == compact((IP, 1002))
    assert registry.expire(now=1000) == 2 and registry.swarms == {}


def test_default_ttl_outlives_one_missed_announce():
    registry = Registry(interval=60)
    ask(registry, query(pid=1, port=1001), now=0)
    assert len(ask(registry, query(pid=2, port=1002), now=125)[b"peers"]) == 6
    assert ask(registry, query(pid=2, port=1002), now=200)[b"peers"] == b""


def test_numwant_limits_the_list_to_a_random_sample():
    registry = Registry(rng=random.Random(3))
    for n in range(30):
        ask(registry, query(pid=n, port=2000 + n))
    samples = {ask(registry, query(pid=99, port=999, numwant=5))[b"peers"] for _ in range(5)}
    assert all(len(s) == 30 for s in samples)
    assert len(samples) > 1, "everyone should get introduced eventually"
    assert ask(registry, query(pid=99, port=999, numwant=0))[b"peers"] == b""
    assert len(ask(registry, query(pid=99, port=999, numwant=1000))[b"peers"]) == 6 * 30


def test_ipv4_mapped_clients_are_stored_as_ipv4_and_ipv6_goes_to_peers6():
    registry = Registry()
    ask(registry, query(pid=1, port=1001), ip="::ffff:127.0.0.1")
    ask(registry, query(pid=2, port=1002), ip="::1")
    reply = ask(registry, query(pid=3, port=1003))
    assert reply[b"peers"] == compact((IP, 1001))
    assert reply[b"peers6"] == bytes(15) + b"\x01" + struct.pack(">H", 1002)


@pytest.mark.parametrize("raw, reason", [
    (b"peer_id=" + b"p" * 20 + b"&port=1", b"missing info_hash"),
    (b"info_hash=abc&peer_id=" + b"p" * 20 + b"&port=1", b"info_hash must be 20 bytes, got 3"),
    (b"info_hash=" + b"h" * 21 + b"&peer_id=" + b"p" * 20 + b"&port=1", b"info_hash must be 20 bytes"),
    (b"info_hash=" + b"h" * 20 + b"&port=1", b"missing peer_id"),
    (b"info_hash=" + b"h" * 20 + b"&peer_id=short&port=1", b"peer_id must be 20 bytes"),
    (b"info_hash=" + b"h" * 20 + b"&peer_id=" + b"p" * 20, b"missing port"),
    (b"info_hash=" + b"h" * 20 + b"&peer_id=" + b"p" * 20 + b"&port=http", b"port must be"),
    (b"info_hash=" + b"h" * 20 + b"&peer_id=" + b"p" * 20 + b"&port=0", b"port 0 is out of range"),
    (b"info_hash=" + b"h" * 20 + b"&peer_id=" + b"p" * 20 + b"&port=65536", b"out of range"),
    (b"info_hash=" + b"h" * 20 + b"&peer_id=" + b"p" * 20 + b"&port=1&left=-1", b"left must be"),
    (b"info_hash=" + b"h" * 20 + b"&peer_id=" + b"p" * 20 + b"&port=1&left=1e3", b"left must be"),
    (b"info_hash=" + b"h" * 20 + b"&peer_id=" + b"p" * 20 + b"&port=1&uploaded=+5", b"uploaded must"),
    (b"info_hash=" + b"h" * 20 + b"&peer_id=" + b"p" * 20 + b"&port=1&downloaded=", b"downloaded must"),
    (b"info_hash=" + b"h" * 20 + b"&peer_id=" + b"p" * 20 + b"&port=1&numwant=lots", b"numwant must"),
    (b"info_hash=" + b"h" * 20 + b"&peer_id=" + b"p" * 20 + b"&port=1&event=exploded", b"unknown event"),
    (b"", b"missing info_hash"),
])
def test_bad_requests_get_a_failure_reason_and_change_nothing(raw, reason):
    registry = Registry()
    reply = ask(registry, raw)
    assert list(reply) == [b"failure reason"]
    assert reason in reply[b"failure reason"]
    assert registry.swarms == {}


def test_an_unusable_client_address_is_a_failure():
    assert b"failure reason" in ask(Registry(), query(), ip="not-an-ip")


def test_the_number_of_swarms_is_capped():
    registry = Registry(max_swarms=1)
    ask(registry, query(info_hash=HASH_A))
    assert b"too many" in ask(registry, query(info_hash=HASH_B))[b"failure reason"]
    assert b"failure reason" not in ask(registry, query(info_hash=HASH_A, pid=2, port=2))


# --- over HTTP (127.0.0.1) ---------------------------------------------------------------------

@pytest.fixture
def tracker():
    with BackgroundTracker("127.0.0.1", 0, interval=30) as server:
        yield server


def http(port: int, request: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):   # the server closes after one reply
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    length = [int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
    assert length == [len(body)]
    return status, body


def test_our_http_client_announces_to_the_server(tracker):
    first = AnnounceRequest(HASH_A, peer_id(1), 1001, left=0, event="started")
    assert announce_http(tracker.announce_url, first, timeout=5).peers == ()
    reply = announce_http(tracker.announce_url, AnnounceRequest(HASH_A, peer_id(2), 1002), timeout=5)
    assert reply.peers == (PeerAddress(IP, 1001),)
    assert (reply.interval, reply.complete, reply.incomplete) == (30, 1, 1)


def test_server_answers_a_raw_http_get(tracker):
    status, body = http(tracker.port, b"GET /announce?" + query(port=1001) + b" HTTP/1.0\r\n\r\n")
    assert status == 200 and bdecode(body)[b"incomplete"] == 1
    assert tracker.registry.peers(HASH_A) == [PeerAddress(IP, 1001)]


def test_bad_announce_is_http_200_with_a_failure_reason(tracker):
    status, body = http(tracker.port, b"GET /announce?info_hash=x HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status == 200 and b"info_hash must be 20 bytes" in bdecode(body)[b"failure reason"]


@pytest.mark.parametrize("request_bytes, status", [
    (b"GET /scrape?info_hash=x HTTP/1.0\r\n\r\n", 404),
    (b"GET / HTTP/1.0\r\n\r\n", 404),
    (b"GET /announce/extra HTTP/1.0\r\n\r\n", 404),
    (b"POST /announce HTTP/1.0\r\nContent-Length: 0\r\n\r\n", 405),
    (b"hello\r\n\r\n", 400),
    (b"GET /announce\r\n\r\n", 400),
    (b"GET /announce?" + b"a" * (MAX_REQUEST + 10) + b" HTTP/1.0\r\n\r\n", 400),
])
def test_other_paths_methods_and_garbage_get_http_errors(tracker, request_bytes, status):
    assert http(tracker.port, request_bytes)[0] == status
    assert tracker.registry.swarms == {}


def test_the_server_keeps_serving_after_a_client_hangs_up(tracker):
    with socket.create_connection(("127.0.0.1", tracker.port), timeout=5) as sock:
        sock.sendall(b"GET /announce?")   # and leave without finishing the request
    assert http(tracker.port, b"GET /announce?" + query() + b" HTTP/1.0\r\n\r\n")[0] == 200


def test_stop_closes_the_port():
    server = BackgroundTracker("127.0.0.1", 0)
    port = server.port
    server.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
