"""app/core/metainfo.py: parse_torrent / parse_info on hand-built bencode.

Torrents are written out as literal bytes (or with `_b`: the tests' own bencoder from
tests/support, dict keys in the given order, independent of app.core.bencode) so the info
hash can be checked against hashlib.sha1 over the exact slice.
"""

import hashlib

import pytest

from app.core.errors import MetainfoError, TorrentError
from app.core.metainfo import FileEntry, default_output, parse_info, parse_torrent
from support.bencoding import bencode_as_given as _b

H1, H2, H3 = b"\x11" * 20, b"\x22" * 20, b"\x33" * 20


def single_info(**overrides) -> dict:
    info = {b"length": 40, b"name": b"file.bin", b"piece length": 16, b"pieces": H1 + H2 + H3}
    info.update({k.replace("_", " ").encode(): v for k, v in overrides.items()})
    return {k: v for k, v in info.items() if v is not None}


def multi_info(files, **overrides) -> dict:
    info = {b"files": files, b"name": b"dir", b"piece length": 16, b"pieces": H1 + H2 + H3}
    info.update({k.replace("_", " ").encode(): v for k, v in overrides.items()})
    return {k: v for k, v in info.items() if v is not None}


# --- single file ----------------------------------------------------------------------

def test_single_file_torrent_by_hand():
    raw_info = b"d6:lengthi40e4:name8:file.bin12:piece lengthi16e6:pieces60:" + H1 + H2 + H3 + b"e"
    data = b"d8:announce27:http://127.0.0.1:1/announce4:info" + raw_info + b"e"
    torrent = parse_torrent(data)
    info = torrent.info
    assert torrent.announce == "http://127.0.0.1:1/announce"
    assert info.info_hash == hashlib.sha1(raw_info).digest()
    assert info.raw == raw_info
    assert info.name == "file.bin"
    assert info.piece_length == 16
    assert info.piece_hashes == (H1, H2, H3)
    assert info.piece_count == 3
    assert info.files == (FileEntry(("file.bin",), 40, 0),)
    assert info.multi_file is False
    assert info.total_length == 40
    assert [info.piece_size(i) for i in range(3)] == [16, 16, 8]
    assert info.private is False


def test_piece_size_out_of_range():
    info = parse_info(_b(single_info()))
    for index in (-1, 3):
        with pytest.raises(MetainfoError):
            info.piece_size(index)


def test_exact_multiple_last_piece_is_full():
    info = parse_info(_b(single_info(length=48)))
    assert [info.piece_size(i) for i in range(3)] == [16, 16, 16]


def test_private_flag():
    assert parse_info(_b(single_info(private=1))).private is True
    assert parse_info(_b(single_info(private=0))).private is False


# --- info hash over raw bytes ---------------------------------------------------------

def test_info_hash_is_over_unsorted_raw_bytes():
    # keys deliberately out of order: name, piece length, length, pieces, and an unknown key
    raw_info = (b"d4:name8:file.bin12:piece lengthi16e6:lengthi40e"
                b"6:pieces60:" + H1 + H2 + H3 + b"7:comment2:hie")
    sorted_info = (b"d7:comment2:hi6:lengthi40e4:name8:file.bin12:piece lengthi16e"
                   b"6:pieces60:" + H1 + H2 + H3 + b"e")
    data = b"d4:info" + raw_info + b"8:announce4:http" + b"e"  # top level unsorted too
    torrent = parse_torrent(data)
    assert torrent.info.info_hash == hashlib.sha1(raw_info).digest()
    assert torrent.info.info_hash != hashlib.sha1(sorted_info).digest()
    assert torrent.info.raw == raw_info
    assert torrent.announce == "http"


def test_parse_info_hash_matches_sha1_of_its_argument():
    raw = _b(single_info())
    assert parse_info(raw).info_hash == hashlib.sha1(raw).digest()


# --- multi file -----------------------------------------------------------------------

def test_multi_file_torrent():
    files = [{b"length": 10, b"path": [b"a.txt"]},
             {b"length": 0, b"path": [b"empty"]},
             {b"length": 25, b"path": [b"sub", b"b.bin"]},
             {b"length": 5, b"path": [b"sub", b"deeper", b"c"]}]
    info = parse_info(_b(multi_info(files)))
    assert info.multi_file is True
    assert info.name == "dir"
    assert info.files == (FileEntry(("a.txt",), 10, 0), FileEntry(("empty",), 0, 10),
                          FileEntry(("sub", "b.bin"), 25, 10), FileEntry(("sub", "deeper", "c"), 5, 35))
    assert info.total_length == 40


def test_path_utf8_is_preferred():
    files = [{b"length": 40, b"path": [b"old"], b"path.utf-8": [b"caf\xc3\xa9"]}]
    assert parse_info(_b(multi_info(files))).files[0].path == ("caf\u00e9",)


def test_non_utf8_name_falls_back_to_latin1():
    assert parse_info(_b(single_info(name=b"caf\xe9"))).name == "caf\u00e9"


def test_duplicate_paths_are_refused():
    files = [{b"length": 20, b"path": [b"a"]}, {b"length": 20, b"path": [b"a"]}]
    with pytest.raises(MetainfoError):
        parse_info(_b(multi_info(files)))


# --- missing and ill-typed fields -------------------------------------------------------

def test_no_info_key():
    with pytest.raises(MetainfoError):
        parse_torrent(b"d8:announce4:httpe")


@pytest.mark.parametrize("data", [
    b"", b"le", b"i1e", b"d4:info", b"d4:infodee", b"d4:infoi1ee", b"d4:info4:spame",
    b"d4:infolee", b"not bencode at all",
])
def test_bad_torrent_bytes(data):
    with pytest.raises(MetainfoError):
        parse_torrent(data)


@pytest.mark.parametrize("info", [
    single_info(name=None),
    single_info(name=5),
    single_info(name=[b"x"]),
    single_info(piece_length=None),
    single_info(piece_length=b"16"),
    single_info(piece_length=0),
    single_info(piece_length=-16),
    single_info(pieces=None),
    single_info(pieces=7),
    single_info(pieces=H1 + H2 + H3[:19]),          # not a multiple of 20
    single_info(pieces=H1 + H2 + H3 + b"\x00"),
    single_info(length=-1),                         # negative length
    single_info(length=b"40"),
    single_info(length=None),                       # neither length nor files
    single_info(files=[{b"length": 40, b"path": [b"x"]}]),   # both length and files
    single_info(length=50),                         # 4 pieces' worth, 3 hashes
    single_info(length=32),                         # 2 pieces' worth, 3 hashes
    single_info(length=0),                          # 0 pieces' worth, 3 hashes
    multi_info(files=[]),
    multi_info(files=b"x"),
    multi_info(files=[b"x"]),
    multi_info(files=[{b"path": [b"a"]}]),          # file without length
    multi_info(files=[{b"length": -1, b"path": [b"a"]}, {b"length": 41, b"path": [b"b"]}]),
    multi_info(files=[{b"length": 40}]),            # file without path
    multi_info(files=[{b"length": 40, b"path": []}]),
    multi_info(files=[{b"length": 40, b"path": b"a"}]),
    multi_info(files=[{b"length": 40, b"path": [1]}]),
    multi_info(files=[{b"length": 40, b"path": [b"a"], b"path.utf-8": b"a"}]),
    multi_info(files=[{b"length": 20, b"path": [b"a"]}]),   # 2 pieces' worth, 3 hashes
])
def test_invalid_info_dicts(info):
    with pytest.raises(MetainfoError):
        parse_info(_b(info))
    with pytest.raises(MetainfoError):
        parse_torrent(b"d4:info" + _b(info) + b"e")


def test_info_that_is_not_a_dict():
    for raw in (b"le", b"i1e", b"3:abc", b"", b"d", b"de junk"):
        with pytest.raises(MetainfoError):
            parse_info(raw)


def test_zero_length_torrent_with_no_pieces_is_consistent():
    info = parse_info(_b(single_info(length=0, pieces=b"")))
    assert info.piece_count == 0
    assert info.total_length == 0


def test_metainfo_error_is_a_torrent_error():
    assert issubclass(MetainfoError, TorrentError)


# --- path safety ---------------------------------------------------------------------------

UNSAFE_PARTS = [b"..", b".", b"", b"a/b", b"/etc", b"a\\b", b"\\x", b"nul\x00byte",
                b"C:", b"c:evil", b"x:y", b"Z:\\x"]


@pytest.mark.parametrize("part", UNSAFE_PARTS)
def test_unsafe_file_path_parts(part):
    files = [{b"length": 40, b"path": [b"ok", part]}]
    with pytest.raises(MetainfoError):
        parse_info(_b(multi_info(files)))


@pytest.mark.parametrize("part", UNSAFE_PARTS)
def test_unsafe_path_utf8_parts(part):
    files = [{b"length": 40, b"path": [b"ok"], b"path.utf-8": [part]}]
    with pytest.raises(MetainfoError):
        parse_info(_b(multi_info(files)))


@pytest.mark.parametrize("name", UNSAFE_PARTS)
def test_unsafe_names(name):
    with pytest.raises(MetainfoError):
        parse_info(_b(single_info(name=name)))
    with pytest.raises(MetainfoError):
        parse_info(_b(multi_info([{b"length": 40, b"path": [b"x"]}], name=name)))


@pytest.mark.parametrize("part", [b"...", b".hidden", b"a..b", b"1:", b"name with spaces"])
def test_odd_but_safe_parts_are_kept(part):
    info = parse_info(_b(multi_info([{b"length": 40, b"path": [part]}])))
    assert info.files[0].path == (part.decode(),)


# --- trackers -----------------------------------------------------------------------------

def _torrent(**top) -> bytes:
    body = {k.replace("_", "-").encode(): v for k, v in top.items()}
    body[b"info"] = single_info()
    return _b(body)


def test_announce_list_tiers():
    data = _torrent(announce=b"http://a/ann",
                    announce_list=[[b"http://t1/a", b"udp://t2:80"], [b"http://t3/a"]])
    torrent = parse_torrent(data)
    assert torrent.announce == "http://a/ann"
    assert torrent.announce_list == (("http://t1/a", "udp://t2:80"), ("http://t3/a",))
    assert torrent.trackers == (("http://t1/a", "udp://t2:80"), ("http://t3/a",))


def test_trackers_fall_back_to_announce():
    torrent = parse_torrent(_torrent(announce=b"http://a/ann"))
    assert torrent.announce_list == ()
    assert torrent.trackers == (("http://a/ann",),)


def test_empty_or_junk_announce_list_falls_back_to_announce():
    for junk in ([], [[]], [[b""]], b"http://x", 5, [b"http://not-a-tier"], [[1, 2]]):
        torrent = parse_torrent(_torrent(announce=b"http://a/ann", announce_list=junk))
        assert torrent.trackers == (("http://a/ann",),), junk


def test_junk_entries_inside_tiers_are_dropped():
    torrent = parse_torrent(_torrent(announce_list=[[b"http://t1/a", 5, b"", [b"x"]], [], [b"udp://t2:1"]]))
    assert torrent.trackers == (("http://t1/a",), ("udp://t2:1",))


def test_no_trackers_at_all():
    torrent = parse_torrent(_torrent())
    assert torrent.announce is None
    assert torrent.trackers == ()


def test_non_text_announce_is_ignored():
    assert parse_torrent(_torrent(announce=5)).announce is None


# --- where a download goes without -o ----------------------------------------------------

@pytest.mark.parametrize("suggested,expected", [
    (None, "file.bin"),                 # no dn=: the torrent's own name
    ("cat.gif", "cat.gif"),             # a plain dn= is used
    ("../evil", "file.bin"),            # a dn= that climbs out is ignored
    ("a/b", "file.bin"),
    ("C:evil", "file.bin"),
    ("", "file.bin"),
])
def test_default_output_of_a_single_file_torrent(suggested, expected):
    info = parse_info(_b(single_info()))
    assert default_output(info, suggested) == expected


def test_default_output_of_a_multi_file_torrent_is_the_current_directory():
    files = [{b"length": 40, b"path": [b"a.bin"]}]
    info = parse_info(_b(multi_info(files)))
    assert default_output(info, "anything") == "."
