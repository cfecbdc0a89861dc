"""BEP 19 details without a network: url-list parsing, the URL of each file, and how
picked blocks become Range requests (app/core/metainfo.py, app/io/web_seed.py)."""

import hashlib

from app.core import bencode
from app.core.metainfo import parse_torrent
from app.core.pieces import Block
from app.io.web_seed import contiguous_runs, file_url


def torrent(url_list, files=None):
    info = {b"name": b"my file", b"piece length": 16, b"pieces": hashlib.sha1(b"").digest()}
    if files is None:
        info[b"length"] = 10
    else:
        info[b"files"] = files
    meta = {b"info": info}
    if url_list is not None:
        meta[b"url-list"] = url_list
    return parse_torrent(bencode.encode(meta))


def test_url_list_one_or_many_only_http():
    assert torrent(b"http://h/x").web_seeds == ("http://h/x",)
    assert torrent([b"https://h/a/", b"ftp://h/b", b"https://h/a/", b"", 5]).web_seeds == ("https://h/a/",)
    assert torrent(None).web_seeds == ()
    assert torrent({b"not": b"a list"}).web_seeds == ()


def test_single_file_urls():
    info = torrent(None).info
    entry = info.files[0]
    assert file_url(info, "http://h/dir/", entry) == "http://h/dir/my%20file"
    assert file_url(info, "http://h/exact.bin", entry) == "http://h/exact.bin"


def test_multi_file_urls_get_name_and_path():
    info = torrent(None, files=[{b"length": 5, b"path": [b"sub", b"a b.txt"]},
                                {b"length": 5, b"path": [b"c"]}]).info
    assert file_url(info, "http://h/root", info.files[0]) == "http://h/root/my%20file/sub/a%20b.txt"
    assert file_url(info, "http://h/root/", info.files[1]) == "http://h/root/my%20file/c"


def test_blocks_become_contiguous_ranges_within_a_piece():
    blocks = [Block(3, 32, 16), Block(2, 0, 16), Block(2, 16, 16), Block(3, 0, 16), Block(2, 48, 8)]
    runs = contiguous_runs(blocks)
    assert [(i, b, [x.begin for x in g]) for i, b, g in runs] == [(2, 0, [0, 16]), (2, 48, [48]),
                                                                  (3, 0, [0]), (3, 32, [32])]
