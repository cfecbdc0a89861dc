"""app/core/peer_list.py: whom to dial and when, back-off, bans, and which connected peer to give up.

Time is a value passed in, so the back-off schedule is checked to the second without waiting.
"""

import pytest

from app.core import peer_list
from app.core.peer_list import (
    IDLE_LIMIT,
    MAX_BACKOFF,
    MAX_CONNECT_FAILURES,
    MAX_STRIKES,
    USELESS_AFTER,
    PeerList,
    SlotView,
    is_useless,
    peers_to_evict,
    slowest_to_replace,
)
from app.core.tracker import PeerAddress

A, B, C, D, E = (PeerAddress(f"10.0.0.{i}", 6881) for i in range(1, 6))


def dialled_and_failed(peers, address, now, error="connection refused"):
    assert peers.next_to_dial(now, 10) == [address]
    peers.disconnected(address, now, error)


# --- adding addresses ----------------------------------------------------------------------

def test_add_counts_only_new_addresses():
    peers = PeerList()
    assert peers.add([A, B, A]) == 2
    assert peers.add([B, C]) == 1
    assert len(peers) == 3
    assert peers.next_to_dial(0, 10) == [A, B, C]


def test_own_address_is_never_added():
    peers = PeerList(own_port=6881)
    ours = [PeerAddress(h, 6881) for h in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "::")]
    others = [PeerAddress("127.0.0.1", 6882), PeerAddress("192.168.1.9", 6881)]
    assert peers.add(ours + others) == 2
    assert peers.next_to_dial(0, 10) == others


def test_own_hosts_grow_with_how_peers_see_us():
    peers = PeerList(own_port=6881)
    peers.own_hosts.add("192.168.1.9")
    assert peers.add([PeerAddress("192.168.1.9", 6881), PeerAddress("192.168.1.9", 7000)]) == 1


def test_without_a_listening_port_loopback_peers_are_fine():
    peers = PeerList()
    assert peers.add([PeerAddress("127.0.0.1", 6881), PeerAddress("::1", 6881)]) == 2


def test_port_zero_is_not_an_address():
    peers = PeerList()
    assert peers.add([PeerAddress("10.0.0.1", 0)]) == 0
    assert len(peers) == 0 and not peers.has_prospects()


# --- dialling --------------------------------------------------------------------------------

def test_next_to_dial_in_arrival_order_and_up_to_count():
    peers = PeerList()
    peers.add([A, B, C, D])
    assert peers.next_to_dial(0, 0) == []
    assert peers.next_to_dial(0, 2) == [A, B]
    assert peers.next_to_dial(0, 5) == [C, D]
    assert peers.next_to_dial(0, 5) == []                  # all dialling: none twice
    peers.add([E])
    assert peers.next_to_dial(0, 5) == [E]


def test_an_address_is_not_dialled_again_while_connected():
    peers = PeerList()
    peers.add([A])
    assert peers.next_to_dial(0, 1) == [A]
    peers.connected(A)
    assert peers.next_to_dial(100, 10) == []
    assert peers.add([A]) == 0                              # the tracker lists it again: nothing new


def test_addresses_due_for_a_retry_come_after_new_ones():
    peers = PeerList()
    peers.add([A, B])
    assert peers.next_to_dial(0, 1) == [A]
    peers.disconnected(A, 0, "timed out")
    peers.add([C])
    assert peers.next_to_dial(1.0, 10) == [B, C, A]


def test_a_clean_disconnect_is_not_redialled():
    peers = PeerList()
    peers.add([A])
    peers.next_to_dial(0, 1)
    peers.disconnected(A, 0)                                # no error: it simply ended
    assert peers.next_to_dial(1000, 10) == []
    assert not peers.has_prospects()
    assert peers.connecting(A)                              # but it may come back by itself


# --- back-off --------------------------------------------------------------------------------------

def redials_after(peers, address, now, waits):
    """Fail `address` at `now`, check it is redialled exactly `wait` seconds later, and so on."""
    for wait in waits:
        peers.disconnected(address, now, "connection refused")
        assert peers.next_to_dial(now + wait - 0.01, 10) == []
        assert peers.has_prospects()                        # a retry is due later
        assert peers.next_to_dial(now + wait, 10) == [address]
        now += wait
    return now


def test_back_off_doubles_then_gives_up():
    peers = PeerList()
    peers.add([A])
    assert peers.next_to_dial(0, 10) == [A]
    now = redials_after(peers, A, 0.0, [1.0, 2.0, 4.0])   # after failures 1, 2 and 3
    assert MAX_CONNECT_FAILURES == 4
    peers.disconnected(A, now, "connection refused")        # the fourth: given up
    assert peers.next_to_dial(now + 10_000, 10) == []
    assert not peers.has_prospects()


def test_back_off_is_capped(monkeypatch):
    monkeypatch.setattr(peer_list, "MAX_CONNECT_FAILURES", 10)
    peers = PeerList()
    peers.add([A])
    peers.next_to_dial(0, 10)
    redials_after(peers, A, 0.0, [1.0, 2.0, 4.0, 8.0, 16.0, MAX_BACKOFF, MAX_BACKOFF, MAX_BACKOFF, MAX_BACKOFF])


def test_no_retry_when_told_not_to():
    peers = PeerList()
    peers.add([A])
    peers.next_to_dial(0, 1)
    peers.disconnected(A, 0, "no free slot", retry=False)
    assert peers.next_to_dial(100, 10) == []
    assert not peers.has_prospects()


def test_a_completed_handshake_does_not_forgive_earlier_failures():
    """A peer that handshakes and then always fails must not be redialled forever."""
    peers = PeerList()
    peers.add([A])
    dialled_and_failed(peers, A, 0)
    dialled_and_failed(peers, A, 1)
    assert peers.next_to_dial(3, 10) == [A]                 # two failures: the wait was 2 s
    peers.connected(A)
    assert peers.failure_summary() == "1 peers known, none could be reached"
    peers.disconnected(A, 20, "reset by peer")              # the third failure: the next wait is 4 s
    assert peers.next_to_dial(23.99, 10) == []
    assert peers.next_to_dial(24, 10) == [A]
    peers.connected(A)
    peers.disconnected(A, 30, "reset by peer")              # the fourth: given up
    assert peers.next_to_dial(1000, 10) == []
    assert not peers.has_prospects()
    assert peers.failure_summary() == "10.0.0.1:6881: reset by peer"


# --- bans and strikes --------------------------------------------------------------------------------

def test_a_banned_address_is_never_dialled_nor_accepted():
    peers = PeerList()
    peers.add([A, B])
    peers.ban(A, "broke the protocol")
    assert peers.is_banned(A) and not peers.is_banned(B)
    assert peers.next_to_dial(0, 10) == [B]
    assert peers.add([A]) == 0
    assert not peers.connecting(A)
    assert peers.next_to_dial(10_000, 10) == []


def test_a_ban_while_connected_stops_the_retry():
    peers = PeerList()
    peers.add([A])
    peers.next_to_dial(0, 1)
    peers.ban(A, "broke the protocol")
    peers.disconnected(A, 0, "broke the protocol")
    assert peers.next_to_dial(10_000, 10) == []
    assert not peers.has_prospects()


def test_a_ban_during_back_off_cancels_the_retry():
    peers = PeerList()
    peers.add([A])
    dialled_and_failed(peers, A, 0)
    assert peers.has_prospects()
    peers.ban(A, "sent bad data")
    assert not peers.has_prospects()
    assert peers.next_to_dial(100, 10) == []


def test_unknown_addresses_can_be_banned():
    peers = PeerList()
    peers.ban(A, "broke the protocol")
    assert peers.is_banned(A)
    assert peers.add([A]) == 0
    assert not PeerList().is_banned(A)


def test_strikes_up_to_a_ban():
    peers = PeerList()
    peers.add([A])
    assert MAX_STRIKES == 2
    assert peers.strike(A) is False and not peers.is_banned(A)
    assert peers.strike(A) is True and peers.is_banned(A)   # the strike that bans says so
    assert peers.strike(A) is False                         # already banned
    assert "sent bad data 2 times" in peers.failure_summary()


def test_several_strikes_at_once():
    peers = PeerList()
    assert peers.strike(B, MAX_STRIKES) is True
    assert peers.is_banned(B)


# --- incoming connections --------------------------------------------------------------------------------

def test_connecting_refuses_duplicates_and_bans():
    peers = PeerList()
    assert peers.connecting(A) is True
    assert len(peers) == 1
    assert peers.connecting(A) is False                    # already connected
    peers.disconnected(A, 0)
    assert peers.connecting(A) is True
    peers.ban(B, "broke the protocol")
    assert peers.connecting(B) is False


def test_an_incoming_candidate_is_not_dialled_as_well():
    peers = PeerList()
    peers.add([A, B])
    assert peers.connecting(A)
    assert peers.next_to_dial(0, 10) == [B]


def test_an_address_dialled_by_us_cannot_also_come_in():
    peers = PeerList()
    peers.add([A])
    peers.next_to_dial(0, 1)
    assert not peers.connecting(A)


# --- prospects and the error summary -----------------------------------------------------------------------

def test_has_prospects():
    peers = PeerList()
    assert not peers.has_prospects()
    peers.add([A])
    assert peers.has_prospects()                            # a candidate waits
    peers.next_to_dial(0, 1)
    assert peers.has_prospects()                            # dialling
    peers.disconnected(A, 0, "refused")
    assert peers.has_prospects()                            # a retry is due
    for now in (1, 3, 7):
        dialled_and_failed(peers, A, now)
    assert not peers.has_prospects()                        # given up


def test_failure_summary_with_no_failures():
    peers = PeerList()
    peers.add([A, B, C])
    assert peers.failure_summary() == "3 peers known, none could be reached"
    assert PeerList().failure_summary() == "0 peers known, none could be reached"


def test_failure_summary_lists_a_few_then_counts_the_rest():
    peers = PeerList()
    peers.add([A, B])
    peers.next_to_dial(0, 10)
    peers.disconnected(A, 0, "refused")
    peers.disconnected(B, 0, "timed out")
    assert peers.failure_summary() == "10.0.0.1:6881: refused; 10.0.0.2:6881: timed out"
    peers.add([C, D, E])
    peers.next_to_dial(0, 10)
    for address in (C, D, E):
        peers.disconnected(address, 0, "reset")
    assert peers.failure_summary() == ("10.0.0.1:6881: refused; 10.0.0.2:6881: timed out; 10.0.0.3:6881: reset; "
                                       "and 2 more")
    assert peers.failure_summary(limit=5).count("; ") == 4
    assert peers.failure_summary(limit=1) == "10.0.0.1:6881: refused; and 4 more"


def test_failure_summary_keeps_the_last_error_and_forgets_forgiven_ones():
    peers = PeerList()
    v6 = PeerAddress("2001:db8::1", 51413)
    peers.add([A, v6])
    peers.next_to_dial(0, 10)
    peers.disconnected(v6, 0, "refused")
    peers.connected(A)
    assert peers.failure_summary() == "[2001:db8::1]:51413: refused"
    peers.ban(A, "broke the protocol: bad bitfield")
    assert peers.failure_summary() == "10.0.0.1:6881: broke the protocol: bad bitfield; [2001:db8::1]:51413: refused"


# --- which connected peer gives up its slot ---------------------------------------------------------------

def view(key, connected_for=100.0, idle_for=0.0, interest=True):
    return SlotView(key, connected_for, idle_for, interest)


def test_is_useless():
    assert not is_useless(view("a"))
    assert not is_useless(view("a", connected_for=USELESS_AFTER, interest=False))   # still within its grace
    assert is_useless(view("a", connected_for=USELESS_AFTER + 0.1, interest=False))
    assert not is_useless(view("a", idle_for=IDLE_LIMIT))                          # interested, not idle too long
    assert is_useless(view("a", idle_for=IDLE_LIMIT + 0.1))                        # interest, but no block for long
    assert is_useless(view("a", connected_for=1.0, idle_for=IDLE_LIMIT + 1, interest=False))


def test_peers_to_evict_longest_idle_first():
    peers = [view("busy"), view("quiet", idle_for=10, interest=False), view("new", connected_for=2, interest=False),
             view("stale", idle_for=90), view("dead", idle_for=300, interest=False),
             view("waiting", idle_for=30, interest=False)]
    assert peers_to_evict(peers, 10) == ["dead", "stale", "waiting", "quiet"]
    assert peers_to_evict(peers, 2) == ["dead", "stale"]
    assert peers_to_evict(peers, 0) == []


def test_interested_peers_within_the_limits_are_kept():
    peers = [view("a", idle_for=IDLE_LIMIT), view("b", idle_for=5), view("c", connected_for=1, interest=False)]
    assert peers_to_evict(peers, 3) == []
    assert peers_to_evict([], 3) == []


# --- replacing a slow peer when others wait (moved here from the choker) -----------------------------

def test_the_far_slowest_peer_is_replaced():
    rates = {"a": 1000.0, "b": 900.0, "c": 1100.0, "slow": 50.0}
    assert slowest_to_replace(rates) == "slow"             # 50 < 10% of the median (1000)


def test_no_replacement_when_the_slowest_is_close_enough():
    assert slowest_to_replace({"a": 1000.0, "b": 900.0, "c": 150.0}) is None   # 150 >= 10% of 1000
    assert slowest_to_replace({"a": 1000.0, "b": 1000.0, "c": 100.0}) is None  # exactly 10%: kept


def test_no_replacement_with_too_few_peers_or_no_traffic():
    assert slowest_to_replace({}) is None
    assert slowest_to_replace({"a": 1000.0, "slow": 1.0}) is None               # too few to judge
    assert slowest_to_replace({"a": 0.0, "b": 0.0, "c": 0.0}) is None           # nobody sends yet
    assert slowest_to_replace({"a": 0.0, "b": 0.0, "c": 0.0, "d": 500.0}) is None   # the median is 0


def test_a_peer_that_sends_nothing_is_replaced_when_the_others_send():
    assert slowest_to_replace({"a": 500.0, "b": 400.0, "idle": 0.0}) == "idle"


@pytest.mark.parametrize(("rates", "expected"), [
    ({"a": 1.0, "b": 100.0, "c": 100.0, "d": 5.0}, "a"),
    ({"a": 5.0, "b": 50.0, "c": 60.0, "d": 100.0}, "a"),     # of four, the upper middle rate (60) counts
    ({"a": 7.0, "b": 50.0, "c": 60.0, "d": 100.0}, None),    # 7 is not under 6
    ({"a": 9.0, "b": 90.0, "c": 95.0, "d": 1000.0, "e": 1000.0}, "a"),   # of five, the third (95)
])
def test_the_median_is_the_middle_rate(rates, expected):
    assert slowest_to_replace(rates) == expected
