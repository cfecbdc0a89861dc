"""Issue #11 against libtorrent seeders on 127.0.0.1: `files`, --select-file (only the
chosen files plus the hidden part-file; a wider rerun fetches only what is new), and
`verify` on a good and on a damaged download."""
from __future__ import annotations

import re

from support.bencoding import bdecode, bencode
from support.checks import assert_error, assert_ok
from support.cli import run_cli
from support.net import free_port

from swarm.kit import KIB, OurSeeder, run_cli_tty, summary

PIECE = 64 * KIB
# libtorrent chooses the order (spec.files has it); most boundaries fall inside a piece.
SIZES = {"a.bin": 150_001, "b.bin": 70_000, "c.txt": 1_234, "d/e.bin": 200_000, "f.bin": 90_000}


def files_of(spec):
    return ["/".join(parts) for parts, _ in spec.files]


def test_files_lists_index_size_and_path(swarms):
    spec = swarms.multi("sel", SIZES, piece_length=PIECE, seed=61, seeders=0).spec
    result = run_cli("files", spec.torrent_path)
    assert_ok(result)
    expected = [f"{i} {length} {'/'.join(parts)}" for i, (parts, length) in enumerate(spec.files, 1)]
    assert result.stdout.splitlines() == expected, result.describe()


def test_select_files_then_a_wider_selection(swarms, tmp_path, client_port):
    swarm = swarms.multi("sel", SIZES, piece_length=PIECE, seed=62, seeders=2)
    spec = swarm.spec
    names = files_of(spec)
    chosen = [names[1], names[3]]
    assert {o // PIECE for o in _pieces_of(spec, {1, 3})} - set(_pieces_of(spec, {0, 2, 4})), \
        "the selection should also hold pieces of its own"
    out = tmp_path / "out"
    first = run_cli("download", "-o", out, "--port", client_port, "--select-file", "2,4",
                    spec.torrent_path, timeout=40)
    assert_ok(first, within=30)
    part = f".{spec.info_hash}.parts"
    on_disk = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert on_disk == sorted([part, *chosen]), first.describe()
    for name in chosen:
        assert (out / name).read_bytes() == (spec.data_root / name).read_bytes(), name

    check = run_cli("verify", spec.torrent_path, out)
    assert check.returncode == 1, check.describe()
    assert check.stdout.splitlines() == [f"{i} {'complete' if n in chosen else 'missing'} {n}"
                                         for i, n in enumerate(names, 1)], check.describe()

    # wider: everything. The pieces held already (b, e and the boundary pieces) are not fetched again.
    wider = run_cli_tty("download", "-o", out, "--port", client_port, "--select-file", "1-5",
                        spec.torrent_path, timeout=40)
    assert_ok(wider, within=30)
    facts = summary(wider)
    held = len({o // PIECE for o in _pieces_of(spec, {1, 3})})
    assert facts["resumed"] == held, wider.stderr
    assert facts["downloaded"] <= spec.total_length - (held - 1) * PIECE, facts
    check = run_cli("verify", spec.torrent_path, out)
    assert_ok(check)
    assert check.stdout.splitlines() == [f"{i} complete {n}" for i, n in enumerate(names, 1)]


def _pieces_of(spec, indices):
    """Byte offsets (one per piece) of the pieces holding files `indices` (0-based)."""
    offset, out = 0, set()
    for i, (_, length) in enumerate(spec.files):
        if i in indices and length:
            out.update(range(offset - offset % PIECE, offset + length, PIECE))
        offset += length
    return out


def test_bad_select_file_spec_is_one_error_line(swarms, tmp_path):
    spec = swarms.multi("sel", SIZES, piece_length=PIECE, seed=63, seeders=0).spec
    for bad in ("0", "7", "2-x"):
        result = run_cli("download", "-o", tmp_path / "x", "--select-file", bad, "--peer", "127.0.0.1:9",
                         spec.torrent_path)
        message = assert_error(result)
        assert re.search(r"select-file", message), result.describe()
    assert not (tmp_path / "x").exists()


def test_verify_good_and_damaged(swarms, tmp_path, client_port):
    swarm = swarms.multi("sel", SIZES, piece_length=PIECE, seed=64, seeders=1)
    spec = swarm.spec
    out = tmp_path / "out"
    assert_ok(run_cli("download", "-o", out, "--port", client_port, spec.torrent_path, timeout=40))
    good = run_cli("verify", spec.torrent_path, out)
    assert_ok(good)
    assert all(" complete " in line for line in good.stdout.splitlines()), good.describe()
    names = files_of(spec)
    damaged = out / "sel" / "d" / "e.bin"
    data = bytearray(damaged.read_bytes())
    data[100_000] ^= 0xFF
    damaged.write_bytes(data)
    (out / "sel" / "c.txt").unlink()
    bad = run_cli("verify", spec.torrent_path, out)
    assert bad.returncode == 1, bad.describe()
    lines = dict(zip(names, bad.stdout.splitlines(), strict=True))
    number = {n: i for i, n in enumerate(names, 1)}
    assert lines["sel/c.txt"] == f"{number['sel/c.txt']} missing sel/c.txt", bad.describe()
    assert re.fullmatch(rf"{number['sel/d/e.bin']} incomplete \(\d/\d pieces\) sel/d/e\.bin",
                        lines["sel/d/e.bin"]), bad.describe()
    assert lines["sel/a.bin"] == f"{number['sel/a.bin']} complete sel/a.bin", bad.describe()
    # the missing c.txt also fails the pieces it shares with its neighbours
    assert re.search(r"Error: [23] of 5 files are not complete", bad.stderr), bad.describe()


def test_files_and_select_file_with_a_magnet_link(swarms, tmp_path, client_port):
    swarm = swarms.multi("mag", SIZES, piece_length=PIECE, seed=65, seeders=1)
    spec = swarm.spec
    link = spec.magnet(name=True)
    listed = run_cli("files", "--peer", swarm.addresses[0], link)
    assert_ok(listed)
    assert listed.stdout.splitlines() == [f"{i} {length} {'/'.join(parts)}"
                                          for i, (parts, length) in enumerate(spec.files, 1)]
    out = tmp_path / "out"
    result = run_cli("magnet_download", "-o", out, "--port", client_port, "--select-file", "3", link,
                     timeout=40)
    assert_ok(result, within=30)
    third = "/".join(spec.files[2][0])
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert third in files and all(f == third or f.endswith(".parts") for f in files), files
    assert (out / third).read_bytes() == (spec.data_root / third).read_bytes()


def test_a_partial_download_is_seeded(swarms, tmp_path, client_port):
    """`seed` of a --select-file download serves what it has: the selected files and the
    other files' bytes kept in the part-file for the pieces they share. A second download
    of the same selection, from that seed alone, completes."""
    swarm = swarms.multi("sel", SIZES, piece_length=PIECE, seed=64, seeders=1)
    spec = swarm.spec
    names = files_of(spec)
    first = tmp_path / "first"
    assert_ok(run_cli("download", "-o", first, "--port", client_port, "--select-file", "2,4",
                      spec.torrent_path, timeout=40), within=30)
    private = tmp_path / "private.torrent"   # no tracker: the second download knows only our seed
    meta = bdecode(spec.torrent_path.read_bytes())
    meta.pop(b"announce", None)
    meta.pop(b"announce-list", None)
    private.write_bytes(bencode(meta))
    with OurSeeder(private, first, "--no-dht") as seeder:
        again = tmp_path / "again"
        result = run_cli("download", "-o", again, "--port", free_port(), "--peer", seeder.address,
                         "--select-file", "2,4", private, timeout=40)
        assert_ok(result, within=30)
        for name in (names[1], names[3]):
            assert (again / name).read_bytes() == (spec.data_root / name).read_bytes(), name
