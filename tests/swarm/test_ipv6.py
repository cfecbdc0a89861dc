"""IPv6 peers: our seeder listens on every interface, [::1] included, and our
downloader dials an IPv6 address given as [host]:port."""
import socket

import pytest

from support.checks import assert_ok
from support.cli import run_cli
from support.net import free_port
from support.torrents import make_single_file

from swarm.kit import OurSeeder

PIECE = 32 * 1024


def loopback_v6_works() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_download_from_an_ipv6_peer(tmp_path):
    # Not a skip: a machine without ::1 cannot run this test, and that is a failure to see.
    assert loopback_v6_works(), "this machine has no IPv6 loopback (::1)"
    spec = make_single_file(tmp_path / "torrent", "six.bin", 700_001, piece_length=PIECE,
                            seed=66, announce=None)
    with OurSeeder(spec.torrent_path, spec.data_root / spec.name) as seeder:
        out = tmp_path / "out.bin"
        result = run_cli("download", "-vv", "-o", out, "--port", free_port(),
                         "--peer", f"[::1]:{seeder.port}", spec.torrent_path, timeout=30)
        assert_ok(result)
        assert out.read_bytes() == spec.payload(), result.describe()
        assert f"peer [::1]:{seeder.port} connected" in result.stderr, result.describe()  # over IPv6


@pytest.mark.parametrize("text,host", [("[::1]:6881", "::1"), ("[2001:db8::7]:51413", "2001:db8::7")])
def test_ipv6_peer_addresses_parse_and_print_back(text, host):
    from app.core.tracker import parse_peer_address
    address = parse_peer_address(text)
    assert address.host == host and str(address) == text
