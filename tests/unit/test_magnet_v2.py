"""v2 magnet links (BEP 52 `xt=urn:btmh:`) and the metadata check for them
(app/core/magnet.py, app/core/extension.py MetadataAssembler)."""

import hashlib

import libtorrent as lt
import pytest

from app.core import bencode
from app.core.errors import MagnetError, ProtocolError
from app.core.extension import METADATA_PIECE_SIZE, MetadataAssembler
from app.core.magnet import format_magnet, parse_magnet
from app.core.metainfo import parse_info
from support.torrents import make_lt_torrent, write_payload

V2 = bytes(range(32))
V2_HEX = V2.hex()
V1 = bytes(range(100, 120))
V1_HEX = V1.hex()


def test_btmh_alone_is_a_v2_magnet():
    m = parse_magnet(f"magnet:?xt=urn:btmh:1220{V2_HEX}&dn=x&tr=http%3A%2F%2F127.0.0.1%3A1%2Fa")
    assert m.info_hash_v2 == V2
    assert m.info_hash == V2[:20]      # the truncated hash is what the wire uses
    assert not m.has_v1_hash
    assert m.display_name == "x" and m.trackers == ("http://127.0.0.1:1/a",)


@pytest.mark.parametrize("order", ["btih first", "btmh first"])
def test_btih_and_btmh_is_a_hybrid_magnet(order):
    topics = [f"xt=urn:btih:{V1_HEX}", f"xt=urn:btmh:1220{V2_HEX}"]
    if order == "btmh first":
        topics.reverse()
    m = parse_magnet("magnet:?" + "&".join(topics))
    assert m.info_hash == V1 and m.info_hash_v2 == V2 and m.has_v1_hash


def test_btmh_hex_is_case_insensitive_and_btih_only_is_unchanged():
    assert parse_magnet(f"magnet:?xt=urn:btmh:1220{V2_HEX.upper()}").info_hash_v2 == V2
    assert parse_magnet(f"magnet:?xt=urn:BTMH:1220{V2_HEX}").info_hash_v2 == V2
    m = parse_magnet(f"magnet:?xt=urn:btih:{V1_HEX}")
    assert m.info_hash == V1 and m.info_hash_v2 is None and m.has_v1_hash


@pytest.mark.parametrize("value,message", [
    ("1114" + V2_HEX, "only sha2-256"),                 # sha1 multihash code
    ("1320" + V2_HEX, "only sha2-256"),                 # sha2-512 code
    ("1220" + V2_HEX[:-2], "1220 and 64 hex"),          # 31 bytes
    ("1220" + V2_HEX + "00", "1220 and 64 hex"),        # 33 bytes
    ("1240" + V2_HEX + V2_HEX, "only sha2-256"),        # sha2-256 code but 64 bytes
    (V2_HEX, "only sha2-256"),                          # no multihash prefix at all
    ("1220" + "g" * 64, "in hex"),
    ("1220" + V2_HEX[:-1], "in hex"),                   # odd number of digits
    ("", "in hex"),
    ("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "in hex"),   # base32 is not taken
])
def test_bad_btmh_is_refused(value, message):
    with pytest.raises(MagnetError, match=message):
        parse_magnet(f"magnet:?xt=urn:btmh:{value}")


def test_no_hash_at_all_names_both_kinds():
    with pytest.raises(MagnetError, match="btih.*btmh"):
        parse_magnet("magnet:?dn=x")


def test_format_magnet_v2_and_hybrid_round_trip():
    v2_only = format_magnet(V2[:20], "a b", ["http://127.0.0.1:1/a"], V2)
    assert v2_only == f"magnet:?xt=urn:btmh:1220{V2_HEX}&dn=a%20b&tr=http%3A%2F%2F127.0.0.1%3A1%2Fa"
    assert format_magnet(None, info_hash_v2=V2) == f"magnet:?xt=urn:btmh:1220{V2_HEX}"
    hybrid = format_magnet(V1, None, (), V2)
    assert hybrid == f"magnet:?xt=urn:btih:{V1_HEX}&xt=urn:btmh:1220{V2_HEX}"
    for link in (v2_only, hybrid):
        m = parse_magnet(link)
        assert format_magnet(m.info_hash, m.display_name, m.trackers, m.info_hash_v2) == link
    assert format_magnet(V1) == f"magnet:?xt=urn:btih:{V1_HEX}"
    with pytest.raises(ValueError):
        format_magnet(None)


@pytest.mark.parametrize("version", ["v1", "v2", "hybrid"])
def test_libtorrents_magnet_links_give_its_hashes(tmp_path, version):
    write_payload(tmp_path / "d" / "f.bin", 50_000, seed=3)
    raw = make_lt_torrent(tmp_path, "d", tmp_path / "t.torrent", piece_length=16384, version=version)
    ti = lt.torrent_info(raw)
    m = parse_magnet(lt.make_magnet_uri(ti))
    hashes = ti.info_hashes()
    info = parse_info(bencode.decode_dict_with_raw(raw)[1][b"info"])
    assert m.info_hash == info.info_hash
    assert m.info_hash_v2 == info.info_hash_v2
    if version != "v1":
        assert m.info_hash_v2.hex() == str(hashes.v2)
    if version != "v2":
        assert m.info_hash.hex() == str(hashes.v1)


# --- MetadataAssembler -------------------------------------------------------------------------

RAW = b"d4:name1:x" + b"7:padding" + b"%d:" % 40_000 + b"\x07" * 40_000 + b"e"   # 3 metadata pieces


def assemble(info_hash: bytes, info_hash_v2: bytes | None, raw: bytes = RAW) -> bytes:
    asm = MetadataAssembler(info_hash, len(raw), info_hash_v2)
    for piece in asm.missing():
        asm.add(piece, raw[piece * METADATA_PIECE_SIZE:(piece + 1) * METADATA_PIECE_SIZE])
    return asm.result()


SHA1, SHA256 = hashlib.sha1(RAW).digest(), hashlib.sha256(RAW).digest()


def test_metadata_of_a_v2_magnet_is_checked_by_sha256():
    assert assemble(SHA256[:20], SHA256) == RAW
    other = bytearray(SHA256)
    other[31] ^= 1      # same first 20 bytes: only the full hash tells them apart
    with pytest.raises(ProtocolError, match="SHA-256"):
        assemble(SHA256[:20], bytes(other))


def test_metadata_of_a_hybrid_magnet_needs_both_hashes():
    assert assemble(SHA1, SHA256) == RAW
    with pytest.raises(ProtocolError, match="SHA-256"):
        assemble(SHA1, hashlib.sha256(b"other").digest())
    with pytest.raises(ProtocolError, match="does not match the info hash"):
        assemble(hashlib.sha1(b"other").digest(), SHA256)


def test_metadata_of_a_v1_magnet_is_checked_by_sha1_and_a_failure_starts_over():
    assert assemble(SHA1, None) == RAW
    asm = MetadataAssembler(SHA256[:20], len(RAW))   # a truncated v2 hash, but no btmh: SHA-1 fails
    for piece in asm.missing():
        asm.add(piece, RAW[piece * METADATA_PIECE_SIZE:(piece + 1) * METADATA_PIECE_SIZE])
    with pytest.raises(ProtocolError):
        asm.result()
    assert asm.missing() == [0, 1, 2]
