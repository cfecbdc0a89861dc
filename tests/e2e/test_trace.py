"""--trace end to end: the wire story of download_piece against libtorrent, the decoded
announce of `peers` against opentracker, and stdout untouched by either."""
import re

from support.checks import assert_ok
from support.cli import run_cli

LINE = re.compile(r"^\s*\d+\.\d{3} (?P<dir>[→←×…]) (?P<who>\S+) (?P<text>.*)$")


def trace_lines(stderr: str) -> list[tuple[str, str, str]]:
    lines = [LINE.match(line) for line in stderr.splitlines()]
    return [(m["dir"], m["who"], m["text"]) for m in lines if m]


def first_index(lines, direction, prefix):
    for i, (d, _, text) in enumerate(lines):
        if d == direction and text.startswith(prefix):
            return i
    raise AssertionError(f"no {direction} {prefix!r} line in the trace:\n" + "\n".join(map(str, lines)))


def test_download_piece_trace_tells_the_story_in_order(single_swarm, tmp_path):
    """Without the fast extension libtorrent sends a real bitfield (with it, have_all)."""
    seeder = single_swarm.addresses[0]
    out = tmp_path / "piece"
    result = run_cli("download_piece", "--trace", "--no-fast-extension", "--peer", seeder,
                     "-o", out, single_swarm.spec.torrent_path, 2)
    assert_ok(result, within=10)
    assert result.stdout == ""
    assert out.read_bytes() == single_swarm.spec.piece_bytes(2)
    lines = [line for line in trace_lines(result.stderr) if line[1] == seeder]
    story = "\n".join(map(str, lines))
    order = [first_index(lines, "→", "handshake info_hash=" + single_swarm.spec.info_hash),
             first_index(lines, "←", "handshake "),
             first_index(lines, "←", "bitfield has 10 of 10 pieces"),
             first_index(lines, "→", "interested"),
             first_index(lines, "←", "unchoke"),
             first_index(lines, "→", "request index=2 begin="),
             first_index(lines, "←", "piece index=2 begin=")]
    handshakes, bitfield, interested, unchoke, request, block = max(order[:2]), *order[2:]
    assert handshakes < bitfield < interested < request < block, story
    # libtorrent may unchoke before it hears our interest (and then again after it):
    # what matters is that the unchoke comes before our first request
    assert unchoke < request, story
    assert "extension_protocol (BEP 10)" in lines[order[0]][2]
    request = lines[order[5]][2]
    assert re.fullmatch(r"request index=2 begin=\d+ length=16384", request)
    assert any(t.startswith("extended handshake m={") for _, _, t in lines), "libtorrent's m dict"


def test_trace_all_shows_every_block(single_swarm, tmp_path):
    seeder = single_swarm.addresses[1]
    result = run_cli("download_piece", "--trace=all", "--peer", seeder, "-o", tmp_path / "p",
                     single_swarm.spec.torrent_path, 0)
    assert_ok(result, within=10)
    # other seeders may join (peer exchange) and send endgame copies: count distinct blocks
    pieces = {t for d, w, t in trace_lines(result.stderr) if d == "←" and t.startswith("piece index=0 ")}
    assert pieces == {f"piece index=0 begin={i * 16384} length=16384" for i in range(16)}, \
        "a 256 KiB piece is 16 blocks, each traced"
    assert "not shown" not in result.stderr


def test_peers_trace_shows_the_decoded_announce(single_swarm):
    plain = run_cli("peers", single_swarm.spec.torrent_path)
    result = run_cli("peers", "--trace", single_swarm.spec.torrent_path)
    assert_ok(result, within=10)
    assert sorted(result.stdout.splitlines()) == sorted(plain.stdout.splitlines())
    lines = trace_lines(result.stderr)
    sent = [t for d, _, t in lines if d == "→"]
    assert len(sent) == 1 and sent[0].startswith("GET /announce ")
    for field in ("info_hash=" + single_swarm.spec.info_hash, "peer_id=-PY", "port=", "left=",
                  "compact=1"):
        assert field in sent[0], sent[0]
    reply = [t for d, _, t in lines if d == "←"]
    assert len(reply) == 1 and reply[0].startswith("announce reply interval=")
    for address in single_swarm.addresses:
        assert address in reply[0]


def test_peers_trace_over_udp(single_swarm, tmp_path):
    from support.bencoding import bdecode, bencode
    meta = bdecode(single_swarm.spec.torrent_path.read_bytes())
    meta[b"announce"] = single_swarm.tracker.udp_url.encode()
    torrent = tmp_path / "udp.torrent"
    torrent.write_bytes(bencode(meta))
    result = run_cli("peers", "--trace", torrent)
    assert_ok(result, within=10)
    lines = trace_lines(result.stderr)
    assert lines[0][0] == "→" and lines[0][1].startswith("udp://") and "(BEP 15)" in lines[0][2]
    assert lines[1][0] == "←" and lines[1][2].startswith("announce reply interval=")


def test_handshake_trace_keeps_stdout(single_swarm):
    seeder = single_swarm.addresses[0]
    result = run_cli("handshake", single_swarm.spec.torrent_path, seeder, "--trace")
    assert_ok(result, within=10)
    assert re.fullmatch(r"Peer ID: [0-9a-f]{40}\n", result.stdout)
    peer_id = result.stdout.split()[-1]
    received = [t for d, _, t in trace_lines(result.stderr) if d == "←" and t.startswith("handshake ")]
    assert len(received) == 1
    # the trace shows the id with its readable client prefix; its hex tail is the printed id's tail
    assert peer_id[16:] in received[0]


def test_tracker_trace_shows_each_announce_served():
    import signal
    import time
    import urllib.request

    from support.cli import start_cli
    from support.net import free_port
    port = free_port()
    running = start_cli("tracker", "--port", port, "--trace")
    info_hash = "%61" * 20
    url = (f"http://127.0.0.1:{port}/announce?info_hash={info_hash}&peer_id=-XX0001-aaaaaaaaaaaa"
           "&port=7000&uploaded=0&downloaded=0&left=5&compact=1")
    deadline = time.monotonic() + 10
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            break
        except OSError:
            assert time.monotonic() < deadline, "the tracker did not start"
            time.sleep(0.1)
    running.proc.send_signal(signal.SIGINT)
    result = running.finish(timeout=10)
    assert result.returncode == 0, result.describe()
    lines = trace_lines(result.stderr)
    assert lines[0][:2] == ("←", "127.0.0.1") and lines[0][2].startswith("GET /announce info_hash=" + "61" * 20)
    assert "peer_id=-XX0001-" in lines[0][2] and "left=5" in lines[0][2]
    assert lines[1][:2] == ("→", "127.0.0.1") and lines[1][2].startswith("announce reply interval=")
