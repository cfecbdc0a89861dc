"""app/core/magnet.py: parse_magnet on hand-written links."""

import base64

import pytest

from app.core.errors import MagnetError, TorrentError
from app.core.magnet import format_magnet, parse_magnet

HASH = bytes.fromhex("d69f91e6b2ae4c542468d1073a71d4ea13879a7f")
HEX = "d69f91e6b2ae4c542468d1073a71d4ea13879a7f"


def test_hex_hash_only():
    m = parse_magnet("magnet:?xt=urn:btih:" + HEX)
    assert m.info_hash == HASH
    assert m.display_name is None
    assert m.trackers == ()
    assert m.peers == ()
    assert m.tracker_tiers == ()


def test_uppercase_hex_and_uppercase_urn():
    assert parse_magnet("magnet:?xt=URN:BTIH:" + HEX.upper()).info_hash == HASH


def test_base32_hash():
    b32 = base64.b32encode(HASH).decode()
    assert len(b32) == 32
    assert parse_magnet("magnet:?xt=urn:btih:" + b32).info_hash == HASH
    assert parse_magnet("magnet:?xt=urn:btih:" + b32.lower()).info_hash == HASH


def test_base32_of_a_hash_written_by_hand():
    # 20 zero bytes are 32 'A's; 0xff * 20 is 32 '7's (each 5-bit group is 31)
    assert parse_magnet("magnet:?xt=urn:btih:" + "A" * 32).info_hash == b"\x00" * 20
    assert parse_magnet("magnet:?xt=urn:btih:" + "7" * 32).info_hash == b"\xff" * 20


def test_full_link_with_several_trackers_and_peers():
    link = ("magnet:?xt=urn:btih:" + HEX
            + "&dn=My%20File.iso"
            + "&tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce"
            + "&tr=udp%3A%2F%2F127.0.0.1%3A6970"
            + "&tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce"   # repeated: kept once
            + "&x.pe=127.0.0.1:6881"                          # literal ':' before the port
            + "&x.pe=127.0.0.1%3A6882")
    m = parse_magnet(link)
    assert m.info_hash == HASH
    assert m.display_name == "My File.iso"
    assert m.trackers == ("http://127.0.0.1:6969/announce", "udp://127.0.0.1:6970")
    assert m.tracker_tiers == (("http://127.0.0.1:6969/announce",), ("udp://127.0.0.1:6970",))
    assert m.peers == ("127.0.0.1:6881", "127.0.0.1:6882")


def test_parameters_in_any_order_and_unencoded_tracker():
    link = "magnet:?tr=http://127.0.0.1:1/a&dn=x&xt=urn:btih:" + HEX
    m = parse_magnet(link)
    assert m.info_hash == HASH
    assert m.trackers == ("http://127.0.0.1:1/a",)
    assert m.display_name == "x"


def test_utf8_percent_encoded_display_name():
    assert parse_magnet("magnet:?xt=urn:btih:" + HEX + "&dn=caf%C3%A9").display_name == "caf\u00e9"


def test_empty_values_are_ignored():
    m = parse_magnet("magnet:?xt=urn:btih:" + HEX + "&dn=&tr=&x.pe=")
    assert (m.display_name, m.trackers, m.peers) == (None, (), ())


def test_surrounding_whitespace_is_stripped():
    assert parse_magnet("  magnet:?xt=urn:btih:" + HEX + "\n").info_hash == HASH


def test_other_xt_before_btih_is_skipped():
    link = "magnet:?xt=urn:sha1:ABCDEF&xt=urn:btih:" + HEX
    assert parse_magnet(link).info_hash == HASH


@pytest.mark.parametrize("link", [
    "magnet:?dn=no-hash",                                  # missing xt
    "magnet:?xt=urn:sha1:" + HEX,                          # xt of another kind
    "magnet:",
    "",
    "http://127.0.0.1/?xt=urn:btih:" + HEX,                # wrong scheme
    "magnet:?xt=urn:btih:" + HEX[:-1],                     # 39 hex
    "magnet:?xt=urn:btih:" + HEX + "0",                    # 41 hex
    "magnet:?xt=urn:btih:" + HEX[:-2],                     # 38 hex
    "magnet:?xt=urn:btih:" + "g" * 40,                     # not hex
    "magnet:?xt=urn:btih:" + "A" * 31,                     # 31 base32
    "magnet:?xt=urn:btih:" + "A" * 33,
    "magnet:?xt=urn:btih:" + "1" * 32,                     # '1' is not base32
    "magnet:?xt=urn:btih:",
])
def test_bad_links(link):
    with pytest.raises(MagnetError):
        parse_magnet(link)


def test_magnet_error_is_a_torrent_error():
    assert issubclass(MagnetError, TorrentError)


# --- known bugs -------------------------------------------------------------------------

@pytest.mark.parametrize("btih", ["aa" * 19 + "++", "aa" * 18 + "%20aa%20", "aa" * 19 + "%0A%0A"])
def test_hex_hash_with_whitespace_is_refused(btih):
    with pytest.raises(MagnetError):
        m = parse_magnet("magnet:?xt=urn:btih:" + btih)
        assert len(m.info_hash) == 20   # if no error, the hash must at least be 20 bytes


@pytest.mark.parametrize("btih", ["A" * 31 + "=", "A" * 28 + "====", "A" * 26 + "======"])
def test_padded_base32_hash_is_refused(btih):
    assert len(btih) == 32
    with pytest.raises(MagnetError):
        m = parse_magnet("magnet:?xt=urn:btih:" + btih)
        assert len(m.info_hash) == 20


@pytest.mark.parametrize("link", ["magnet://[?xt=urn:btih:" + HEX,
                                  "magnet://a\uff03b?xt=urn:btih:" + HEX])
def test_malformed_netloc_is_a_magnet_error(link):
    with pytest.raises(MagnetError):
        parse_magnet(link)


# --- format_magnet ---------------------------------------------------------------------------

def test_format_magnet_by_hand():
    link = format_magnet(HASH, "a b&c=d", ["http://127.0.0.1:6969/announce?x=1&y=2", "udp://127.0.0.1:1"])
    assert link == ("magnet:?xt=urn:btih:" + HEX + "&dn=a%20b%26c%3Dd"
                    "&tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce%3Fx%3D1%26y%3D2"
                    "&tr=udp%3A%2F%2F127.0.0.1%3A1")
    m = parse_magnet(link)
    assert (m.info_hash, m.display_name) == (HASH, "a b&c=d")
    assert m.trackers == ("http://127.0.0.1:6969/announce?x=1&y=2", "udp://127.0.0.1:1")


def test_format_magnet_hash_only():
    assert format_magnet(HASH) == "magnet:?xt=urn:btih:" + HEX


def test_ws_names_web_seeds_http_only_once_each():
    link = parse_magnet("magnet:?xt=urn:btih:" + "ab" * 20 + "&ws=http%3A%2F%2Fmirror%2Fa.iso"
                        "&ws=ftp%3A%2F%2Fold%2Fa.iso&ws=https://m2/&ws=http%3A%2F%2Fmirror%2Fa.iso&ws=")
    assert link.web_seeds == ("http://mirror/a.iso", "https://m2/")
    assert parse_magnet("magnet:?xt=urn:btih:" + "ab" * 20).web_seeds == ()
