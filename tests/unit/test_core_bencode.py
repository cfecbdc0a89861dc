"""app/core/bencode.py: strict decoding, the prefix decoder, raw value slices, encoding.

Every expected encoding below is written out by hand from BEP 3, never produced
by the code under test.
"""

import pytest

from app.core import bencode
from app.core.errors import BencodeError, TorrentError

# --- decoding valid input -------------------------------------------------------

@pytest.mark.parametrize("data, expected", [
    (b"i0e", 0),
    (b"i42e", 42),
    (b"i-42e", -42),
    (b"i1234567890123456789012345678901234567890e", 1234567890123456789012345678901234567890),
    (b"0:", b""),
    (b"4:spam", b"spam"),
    (b"3:\x00\xff:", b"\x00\xff:"),
    (b"10:0123456789", b"0123456789"),
    (b"le", []),
    (b"l4:spami7ee", [b"spam", 7]),
    (b"lli1eelee", [[1], []]),
    (b"de", {}),
    (b"d3:cow3:moo4:spam4:eggse", {b"cow": b"moo", b"spam": b"eggs"}),
    (b"d4:spaml1:a1:bee", {b"spam": [b"a", b"b"]}),
    (b"d1:ad1:bi-1eee", {b"a": {b"b": -1}}),
])
def test_decode_valid(data, expected):
    assert bencode.decode(data) == expected


def test_decoded_types_are_bytes_int_list_dict():
    value = bencode.decode(b"d1:kl1:vi1eee")
    assert type(value) is dict
    assert type(next(iter(value))) is bytes
    assert type(value[b"k"]) is list
    assert type(value[b"k"][0]) is bytes
    assert type(value[b"k"][1]) is int


def test_unsorted_keys_are_accepted_and_kept_in_file_order():
    # Real torrents exist with unsorted keys; their info hash depends on the raw bytes.
    value = bencode.decode(b"d1:bi1e1:ai2ee")
    assert value == {b"b": 1, b"a": 2}
    assert list(value) == [b"b", b"a"]


# --- strictness -------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    b"i03e",        # leading zero
    b"i00e",
    b"i-0e",        # negative zero
    b"i-03e",
    b"i+5e",        # int() would take these ...
    b"i 5e",
    b"i5 e",
    b"i1_0e",
    b"ie",          # ... and these are empty
    b"i-e",
    b"i5",          # unterminated integer
    b"i0x10e",
    b"i1.5e",
    b"-1:a",        # negative string length
    b"1_0:0123456789",
    b"+1:a",
    b" 1:a",
    b"01:a",        # leading zero in a length
    b"00:",
    b"5:abc",       # string runs past the end
    b"1:",
    b"4",           # no colon
    b"l",           # truncated containers
    b"li1e",
    b"d",
    b"d1:a",
    b"d1:ai1e",
    b"d1:ae",       # key without a value
    b"di1ei2ee",    # non-string key
    b"dlei1ee",
    b"",            # nothing at all
    b"e",
    b"x",
    b"i1ei2e",      # trailing data
    b"i1e ",
    b"4:spamx",
    b"lee",
    b"dee",
])
def test_decode_rejects(data):
    with pytest.raises(BencodeError):
        bencode.decode(data)


def test_bencode_error_is_a_torrent_error():
    assert issubclass(BencodeError, TorrentError)


def test_very_deep_nesting_is_a_bencode_error_not_a_recursion_error():
    with pytest.raises(BencodeError):
        bencode.decode(b"l" * 100_000 + b"e" * 100_000)
    with pytest.raises(BencodeError):
        bencode.decode(b"d1:a" * 50_000 + b"e" * 50_000)


def test_moderate_nesting_is_fine():
    value = bencode.decode(b"l" * 50 + b"e" * 50)
    depth = 0
    while value:
        value = value[0]
        depth += 1
    assert depth == 49


# --- decode_prefix ------------------------------------------------------------------

def test_decode_prefix_returns_value_and_end_offset():
    assert bencode.decode_prefix(b"i42eXYZ") == (42, 4)
    assert bencode.decode_prefix(b"d1:ai1ee\x00\x01") == ({b"a": 1}, 8)
    assert bencode.decode_prefix(b"4:spam4:eggs") == (b"spam", 6)


def test_decode_prefix_from_an_offset():
    data = b"4:spam4:eggsi-7e"
    assert bencode.decode_prefix(data, 6) == (b"eggs", 12)
    assert bencode.decode_prefix(data, 12) == (-7, 16)


@pytest.mark.parametrize("data, start", [
    (b"", 0), (b"i1e", 3), (b"i1e", 1), (b"5:abc", 0), (b"i03eX", 0), (b"xi1e", 0),
])
def test_decode_prefix_rejects(data, start):
    with pytest.raises(BencodeError):
        bencode.decode_prefix(data, start)


# --- decode_dict_with_raw -------------------------------------------------------------

def test_decode_dict_with_raw_gives_exact_slices():
    data = b"d8:announce3:url4:infod6:lengthi5e4:name1:xe3:zzzli1ei2eee"
    values, raw = bencode.decode_dict_with_raw(data)
    assert values == {b"announce": b"url", b"info": {b"length": 5, b"name": b"x"},
                      b"zzz": [1, 2]}
    assert raw == {b"announce": b"3:url", b"info": b"d6:lengthi5e4:name1:xe",
                   b"zzz": b"li1ei2ee"}


def test_decode_dict_with_raw_keeps_unsorted_inner_bytes_verbatim():
    inner = b"d4:name1:x6:lengthi5ee"      # keys out of order on purpose
    _, raw = bencode.decode_dict_with_raw(b"d4:info" + inner + b"e")
    assert raw[b"info"] == inner
    assert bencode.encode(bencode.decode(inner)) != inner   # re-encoding would sort them


def test_decode_dict_with_raw_empty_dict():
    assert bencode.decode_dict_with_raw(b"de") == ({}, {})


@pytest.mark.parametrize("data", [
    b"", b"le", b"i1e", b"4:spam", b"d", b"d1:a", b"d1:ai1e", b"d1:ai1eex", b"dei1e",
    b"di1ei2ee", b"d1:ai03ee", b"d1:a5:abce", b"d-1:ai1ee", b"dxe", b"d1:ae",
])
def test_decode_dict_with_raw_rejects(data):
    with pytest.raises(BencodeError):
        bencode.decode_dict_with_raw(data)


# --- encoding ---------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    (0, b"i0e"),
    (-3, b"i-3e"),
    (2 ** 70, b"i1180591620717411303424e"),
    (b"", b"0:"),
    (b"spam", b"4:spam"),
    ("\u00e9", b"2:\xc3\xa9"),   # str is UTF-8 encoded
    ([], b"le"),
    ([1, b"a", [2]], b"li1e1:ali2eee"),
    ({}, b"de"),
    ({b"zeta": 1, b"alpha": 2, b"mid": 3}, b"d5:alphai2e3:midi3e4:zetai1ee"),
    ({b"b": {b"d": 1, b"c": 2}}, b"d1:bd1:ci2e1:di1eee"),
    # keys sort as raw bytes: 0x5a 'Z' < 0x61 'a', and b"a" < b"aa"
    ({b"aa": 1, b"a": 2, b"Z": 3}, b"d1:Zi3e1:ai2e2:aai1ee"),
])
def test_encode(value, expected):
    assert bencode.encode(value) == expected


@pytest.mark.parametrize("value", [1.5, None, object(), {b"k": 1.5}, [None]])
def test_encode_unsupported_value_raises_bencode_error(value):
    with pytest.raises(BencodeError):
        bencode.encode(value)


def test_encode_refuses_keys_that_collide_as_bytes():
    with pytest.raises(BencodeError):
        bencode.encode({b"a": 1, "a": 2})


def test_round_trip_of_a_nested_value():
    value = {b"info": {b"files": [{b"length": 3, b"path": [b"a", b"b"]}], b"name": b"n"},
             b"list": [b"", 0, -1, [], {}]}
    assert bencode.decode(bencode.encode(value)) == value
