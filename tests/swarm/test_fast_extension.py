"""The fast extension (BEP 6) on and off: reserved bit 0x04 of byte 7, HAVE_ALL / HAVE_NONE /
REJECT_REQUEST / ALLOWED_FAST / SUGGEST, and the switch `--no-fast-extension` on
`download`, `download_piece`, `magnet_download`, `magnet_download_piece` and `seed`.

- every download command fetches a multi-piece torrent from a libtorrent seeder (which
  speaks BEP 6) with the extension on (the default) and off; the bytes are checked;
- a libtorrent leecher downloads from our `seed` with it on and off;
- raw peer-wire probes show the negotiation itself: our seeder's handshake reply and first
  message (HAVE_ALL when both sides set the bit, BITFIELD otherwise), and the bit in our
  downloader's handshake.

Written against the contract of the engine being built: until it lands, the runs with
`--no-fast-extension` fail on the unknown option and the negotiation probes fail on a
missing bit / a BITFIELD where HAVE_ALL is due.
"""
from __future__ import annotations

import pytest

from support.checks import assert_ok
from support.cli import run_cli
from support.peers import start_leecher, start_seeder
from support.torrents import make_single_file
from support.wire import PeerConnection

from hostile.evil_peer import EvilPeer
from swarm.kit import KIB, MIB, OurSeeder

NO_FAST = "--no-fast-extension"
FAST_BIT = 0x04          # in reserved byte 7
EXTENSION_BIT = 0x10     # in reserved byte 5 (BEP 10)
BITFIELD, EXTENDED, HAVE_ALL = 5, 20, 14
MODES = ["fast-on", "fast-off"]


def switch(mode: str) -> list[str]:
    return [NO_FAST] if mode == "fast-off" else []


def reserved(*, fast: bool, extensions: bool = True) -> bytes:
    data = bytearray(8)
    if extensions:
        data[5] |= EXTENSION_BIT
    if fast:
        data[7] |= FAST_BIT
    return bytes(data)


def full_bitfield(count: int) -> bytes:
    bits = bytearray((count + 7) // 8)
    for i in range(count):
        bits[i // 8] |= 0x80 >> (i % 8)
    return bytes(bits)


@pytest.fixture(scope="module")
def lt_seeded(tmp_path_factory):
    """A 2 MiB torrent of 33 pieces of 64 KiB (the last one short), no tracker, served by
    one libtorrent seeder (fast extension on, as libtorrent always has it)."""
    root = tmp_path_factory.mktemp("fast-extension")
    spec = make_single_file(root / "torrent", "fast.bin", 2 * MIB + 4321, piece_length=64 * KIB,
                            seed=101, announce=None)
    seeder = start_seeder(spec, root / "lt-seeder", announce=False)
    yield spec, seeder
    seeder.stop()


# --- downloading from libtorrent -----------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("command", ["download", "download_piece", "magnet_download",
                                     "magnet_download_piece"])
def test_download_from_libtorrent_seeder(lt_seeded, tmp_path, client_port, command, mode):
    spec, seeder = lt_seeded
    out = tmp_path / "out.bin"
    source = spec.magnet() if command.startswith("magnet") else spec.torrent_path
    piece = spec.num_pieces - 1 if command.endswith("_piece") else None
    args = [command, "-o", out, "--port", client_port, "--peer", seeder.address,
            *switch(mode), source]
    if piece is not None:
        args.append(piece)
    result = run_cli(*args, timeout=30)
    assert_ok(result, within=20)
    expected = spec.payload() if piece is None else spec.piece_bytes(piece)
    got = out.read_bytes()
    assert len(got) == len(expected) and got == expected, result.describe()


# --- libtorrent downloading from our seeder --------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_libtorrent_leecher_from_our_seed(tmp_path, mode):
    spec = make_single_file(tmp_path / "torrent", "served.bin", 3 * MIB + 777,
                            piece_length=32 * KIB, seed=102, announce=None)
    seeder = OurSeeder(spec.torrent_path, spec.data_root / spec.name, *switch(mode))
    leecher = None
    try:
        leecher = start_leecher(tmp_path / "lt", torrent=spec.torrent_path,
                                peers=[seeder.address], timeout=30)
        code = leecher.wait_exit(40)
    finally:
        if leecher is not None:
            leecher.stop()
        result = seeder.stop()
    why = f"leecher log (tail):\n{leecher.log_text()[-2000:]}\nseeder: {result.describe()}"
    assert code == 0, why
    assert (tmp_path / "lt" / "download" / spec.name).read_bytes() == spec.payload(), why
    assert not result.timed_out and "Traceback" not in result.stderr, why


# --- the negotiation itself, on the wire -----------------------------------------------------

def first_message(port: int, spec, ours: bytes) -> tuple[bytes, int, bytes]:
    """Handshake with our seeder using reserved bytes `ours`; return its reserved bytes and
    its first message other than an extension handshake (keep-alives skipped)."""
    with PeerConnection("127.0.0.1", port, bytes.fromhex(spec.info_hash), reserved=ours,
                        timeout=5) as conn:
        conn.sock.settimeout(5)
        for _ in range(10):
            msg_id, payload = conn.read_message()
            if msg_id is not None and msg_id != EXTENDED:
                return conn.remote_reserved, msg_id, payload
    raise AssertionError("our seeder sent only keep-alives and extension messages")


def test_probe_control_against_libtorrent(lt_seeded):
    """Control for the probe itself: libtorrent's seeder, which implements BEP 6, sets the
    bit and opens with HAVE_ALL for a peer that sets it, and with a BITFIELD otherwise."""
    spec, seeder = lt_seeded
    theirs, msg_id, payload = first_message(seeder.port, spec, reserved(fast=True))
    assert theirs[7] & FAST_BIT and (msg_id, payload) == (HAVE_ALL, b""), (theirs.hex(), msg_id)
    theirs, msg_id, payload = first_message(seeder.port, spec, reserved(fast=False))
    assert (msg_id, payload) == (BITFIELD, full_bitfield(spec.num_pieces)), (theirs.hex(), msg_id)


def test_our_seed_negotiates_the_fast_extension(tmp_path):
    """Default `seed`: a peer that sets the fast bit gets it back, and HAVE_ALL (empty) as
    the first message, since we have everything. A peer that does not set it gets a
    BITFIELD: no fast message goes to a peer that did not negotiate BEP 6."""
    spec = make_single_file(tmp_path / "torrent", "probe.bin", 1 * MIB + 5, piece_length=32 * KIB,
                            seed=103, announce=None)
    with OurSeeder(spec.torrent_path, spec.data_root / spec.name) as seeder:
        theirs, msg_id, payload = first_message(seeder.port, spec, reserved(fast=True))
        plain = first_message(seeder.port, spec, reserved(fast=False))
    why = f"reply reserved {theirs.hex()}, first message {msg_id} ({payload[:16].hex()})"
    assert theirs[7] & FAST_BIT, "our seeder does not set the fast bit\n" + why
    assert (msg_id, payload) == (HAVE_ALL, b""), "the first message is not HAVE_ALL\n" + why
    assert plain[1:] == (BITFIELD, full_bitfield(spec.num_pieces)), \
        f"a peer without the fast bit got message {plain[1]}, not a full BITFIELD"


def test_our_seed_without_the_fast_extension(tmp_path):
    """`seed --no-fast-extension`: the fast bit stays clear even when the peer sets it, and
    the first message is a full BITFIELD."""
    spec = make_single_file(tmp_path / "torrent", "probe.bin", 1 * MIB + 5, piece_length=32 * KIB,
                            seed=104, announce=None)
    with OurSeeder(spec.torrent_path, spec.data_root / spec.name, NO_FAST) as seeder:
        theirs, msg_id, payload = first_message(seeder.port, spec, reserved(fast=True))
    why = f"reply reserved {theirs.hex()}, first message {msg_id} ({payload[:16].hex()})"
    assert not theirs[7] & FAST_BIT, "the fast bit is set although switched off\n" + why
    assert (msg_id, payload) == (BITFIELD, full_bitfield(spec.num_pieces)), why


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("command", ["download", "download_piece"])
def test_our_download_handshake_carries_the_fast_bit(lt_seeded, tmp_path, client_port,
                                                     command, mode):
    """Our downloader sets the fast bit by default and clears it with --no-fast-extension.
    The peer (a plain BEP 3 seeder in the test) does not set it, so the download must still
    work without any fast message."""
    spec, _ = lt_seeded
    out = tmp_path / "out.bin"
    with EvilPeer.for_spec(spec, "honest") as peer:
        args = [command, "-o", out, "--port", client_port, "--peer", peer.address,
                *switch(mode), spec.torrent_path]
        if command == "download_piece":
            args.append(2)
        result = run_cli(*args, timeout=30)
        handshakes = list(peer.client_handshakes)
    assert_ok(result, within=20)
    assert handshakes, "our client never handshook\n" + result.describe()
    bits = {h[20:28].hex() for h in handshakes}
    if mode == "fast-on":
        assert all(h[27] & FAST_BIT for h in handshakes), f"reserved {bits}: fast bit missing"
    else:
        assert not any(h[27] & FAST_BIT for h in handshakes), f"reserved {bits}: fast bit set"
    expected = spec.piece_bytes(2) if command == "download_piece" else spec.payload()
    assert out.read_bytes() == expected, result.describe()
