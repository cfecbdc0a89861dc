#!/usr/bin/env python3
"""One libtorrent peer on 127.0.0.1, run as a subprocess so a test can SIGKILL it.

  lt_peer.py seed  --torrent T --save-path DIR --port P --ready-file F
                   [--have 0,2,5] [--corrupt 1,3] [--no-announce] [--upload-rate B]
                   [--encryption default|forced|rc4]
  lt_peer.py leech (--torrent T | --magnet URI) --save-path DIR --port P
                   [--peer 127.0.0.1:PORT ...] [--timeout S] [--ready-file F]
                   [--encryption default|rc4]

seed: adds the torrent, waits until libtorrent has checked the data, and then serves it.
  --have      the pieces this peer holds; the others are garbled on disk BEFORE the check,
              so libtorrent finds them missing. Such a partial seeder runs in upload mode,
              so it never downloads what it lacks.
  --corrupt   pieces served with wrong bytes: they are checked as good first, then every
              byte of them is flipped on disk. libtorrent does not re-hash a piece it already
              verified when it uploads, so peers receive the garbled bytes.
  The data under --save-path is modified: give every peer its own copy.
  When ready (checked, listening, and -- if the torrent has a tracker and --no-announce is
  not given -- announced successfully) it writes --ready-file as JSON and runs until
  SIGTERM/SIGINT, its parent exiting, or --max-lifetime seconds.

leech: downloads into --save-path, connecting to each --peer, and exits 0 when it has every
  piece (1 on timeout). Writes --ready-file once listening.
  --encryption  default: libtorrent's own policy (protocol encryption, MSE, tried first,
              plaintext allowed); forced: MSE required on every connection, either
              crypto method; rc4: MSE required, and with RC4 only. (For seed too.)

Everything is logged to stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

import libtorrent as lt

STOP = False


def log(*parts) -> None:
    print(f"[lt_peer {os.getpid()} {time.strftime('%H:%M:%S')}]", *parts, file=sys.stderr,
          flush=True)


def on_signal(signum, _frame) -> None:
    global STOP
    STOP = True


def piece_list(text: str | None) -> list[int] | None:
    if text is None:
        return None
    return sorted({int(x) for x in text.split(",") if x.strip()})


ENCRYPTION = {
    "default": {},
    "forced": {"out_enc_policy": int(lt.enc_policy.forced), "in_enc_policy": int(lt.enc_policy.forced),
               "allowed_enc_level": int(lt.enc_level.both)},
    "rc4": {"out_enc_policy": int(lt.enc_policy.forced), "in_enc_policy": int(lt.enc_policy.forced),
            "allowed_enc_level": int(lt.enc_level.rc4)},
}


def make_session(port: int, upload_rate: int = 0, encryption: str = "default") -> lt.session:
    cats = lt.alert.category_t
    settings = {
        "listen_interfaces": f"127.0.0.1:{port}",
        "listen_system_port_fallback": False,
        "outgoing_interfaces": "127.0.0.1",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True,
        "listen_queue_size": 128,
        "connections_limit": 500,
        "unchoke_slots_limit": -1,      # every interested peer is unchoked at once
        "upload_rate_limit": upload_rate,  # bytes/s, 0 = unlimited
        "ignore_limits_on_local_network": False,  # 127.0.0.1 is "local": apply the limit
        "download_rate_limit": 0,
        "max_allowed_in_request_queue": 2000,
        "stop_tracker_timeout": 1,
        "min_announce_interval": 1,
        "ssrf_mitigation": False,
        "alert_mask": (cats.error_notification | cats.status_notification
                       | cats.tracker_notification | cats.storage_notification
                       | cats.port_mapping_notification),
    }
    settings.update(ENCRYPTION[encryption])
    return lt.session(settings)


def wait_listening(ses: lt.session, port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        for alert in ses.pop_alerts():
            name = type(alert).__name__
            if name == "listen_succeeded_alert" and alert.port == port:
                return
            if name == "listen_failed_alert":
                raise SystemExit(f"listen failed: {alert.message()}")
        ses.wait_for_alert(100)
    raise SystemExit("timed out waiting to listen")


def write_ready(path: str | None, payload: dict) -> None:
    if not path:
        return
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(payload, handle)
    os.replace(tmp, path)


def garble(ti: lt.torrent_info, save_path: str, pieces: list[int]) -> None:
    """Flip every byte of `pieces` in the files on disk (in place, same length)."""
    files = ti.layout()
    for index in pieces:
        size = ti.piece_size(index)
        for piece_slice in ti.map_block(index, 0, size):
            path = os.path.join(save_path, files.file_path(piece_slice.file_index))
            with open(path, "r+b") as handle:
                handle.seek(piece_slice.offset)
                chunk = handle.read(piece_slice.size)
                handle.seek(piece_slice.offset)
                handle.write(bytes(b ^ 0xFF for b in chunk))
                handle.flush()
                os.fsync(handle.fileno())


def held_pieces(handle) -> list[int]:
    return [i for i, have in enumerate(handle.status(lt.status_flags_t.query_pieces).pieces)
            if have]


def seed(args) -> int:
    ti = lt.torrent_info(args.torrent)
    all_pieces = list(range(ti.num_pieces()))
    have = piece_list(args.have)
    have = all_pieces if have is None else have
    corrupt = piece_list(args.corrupt) or []
    if not set(have) <= set(all_pieces) or not set(corrupt) <= set(have):
        raise SystemExit("--have must be valid piece indices and --corrupt a subset of them")
    partial = have != all_pieces
    if partial:
        garble(ti, args.save_path, [i for i in all_pieces if i not in have])

    deadline = time.monotonic() + args.start_timeout
    ses = make_session(args.port, args.upload_rate, args.encryption)
    wait_listening(ses, args.port, deadline)

    params = lt.add_torrent_params()
    params.ti = ti
    params.save_path = args.save_path
    params.flags &= ~lt.torrent_flags.auto_managed
    params.flags &= ~lt.torrent_flags.paused
    if partial:
        params.flags |= lt.torrent_flags.upload_mode
    if args.no_announce:  # ignore the .torrent's trackers
        params.flags |= lt.torrent_flags.override_trackers
        params.trackers = []
    handle = ses.add_torrent(params)

    seen = {"checked": False, "announced": False}

    def drain(wait_ms: int) -> None:
        ses.wait_for_alert(wait_ms)
        for alert in ses.pop_alerts():
            name = type(alert).__name__
            if name == "torrent_checked_alert":
                seen["checked"] = True
            elif name == "tracker_reply_alert":
                seen["announced"] = True
            elif "error" in name or "warning" in name:
                log(alert.message())

    # 1. wait for the check to finish
    while not (seen["checked"] and (partial or handle.status().state == lt.torrent_status.seeding)):
        if time.monotonic() >= deadline or STOP:
            log("did not finish checking; state", handle.status().state)
            return 3
        drain(100)
    got = held_pieces(handle)
    if got != have:
        log(f"after the check libtorrent holds {got}, expected {have}")
        return 4
    log(f"checked: holds {len(got)}/{len(all_pieces)} pieces, state {handle.status().state}")

    # 2. corrupt what was asked, now that libtorrent considers it verified
    if corrupt:
        garble(ti, args.save_path, corrupt)
        log(f"garbled pieces {corrupt} on disk after the check")

    # 3. a successful announce after the check (if there is a tracker to announce to)
    trackers = [t["url"] for t in handle.trackers()] if not args.no_announce else []
    if trackers:
        seen["announced"] = False
        handle.force_reannounce(0, -1, lt.reannounce_flags_t.ignore_min_interval)
        while not seen["announced"]:
            if time.monotonic() >= deadline or STOP:
                log("no successful announce before the start timeout")
                return 5
            drain(100)
    announced = seen["announced"]

    write_ready(args.ready_file, {
        "pid": os.getpid(), "port": ses.listen_port(), "pieces": got, "corrupt": corrupt,
        "announced": announced, "trackers": trackers, "info_hash": str(ti.info_hashes().v1)})
    log(f"ready on 127.0.0.1:{ses.listen_port()}")

    parent = os.getppid()
    end = time.monotonic() + args.max_lifetime
    while not STOP and time.monotonic() < end and os.getppid() == parent:
        drain(200)
    log("stopping")
    return 0


def leech(args) -> int:
    if bool(args.torrent) == bool(args.magnet):
        raise SystemExit("give exactly one of --torrent and --magnet")
    deadline = time.monotonic() + args.timeout
    ses = make_session(args.port, encryption=args.encryption)
    wait_listening(ses, args.port, deadline)
    if args.torrent:
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(args.torrent)
    else:
        params = lt.parse_magnet_uri(args.magnet)
    params.save_path = args.save_path
    params.flags &= ~lt.torrent_flags.auto_managed
    params.flags &= ~lt.torrent_flags.paused
    handle = ses.add_torrent(params)
    peers = []
    for text in args.peer:
        host, _, port = text.rpartition(":")
        peers.append((host, int(port)))
    write_ready(args.ready_file, {"pid": os.getpid(), "port": ses.listen_port()})

    next_connect = 0.0
    while time.monotonic() < deadline and not STOP:
        status = handle.status()
        if status.has_metadata and status.is_seeding:
            log(f"complete: {status.total_wanted} bytes")
            print(json.dumps({"complete": True, "bytes": status.total_wanted}), flush=True)
            return 0
        if peers and time.monotonic() >= next_connect and status.num_peers < len(peers):
            for peer in peers:
                handle.connect_peer(peer)
            next_connect = time.monotonic() + 2.0
        for alert in ses.pop_alerts():
            if "error" in type(alert).__name__ or "failed" in type(alert).__name__:
                log(alert.message())
        ses.wait_for_alert(100)
    status = handle.status()
    log(f"gave up: state {status.state}, progress {status.progress:.3f}")
    print(json.dumps({"complete": False, "progress": status.progress}), flush=True)
    return 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("seed")
    s.add_argument("--torrent", required=True)
    s.add_argument("--save-path", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--ready-file")
    s.add_argument("--have")
    s.add_argument("--corrupt")
    s.add_argument("--no-announce", action="store_true")
    s.add_argument("--upload-rate", type=int, default=0, help="bytes/s; 0 = unlimited")
    s.add_argument("--start-timeout", type=float, default=60.0)
    s.add_argument("--max-lifetime", type=float, default=1800.0)
    s.add_argument("--encryption", choices=sorted(ENCRYPTION), default="default")
    g = sub.add_parser("leech")
    g.add_argument("--torrent")
    g.add_argument("--magnet")
    g.add_argument("--save-path", required=True)
    g.add_argument("--port", type=int, required=True)
    g.add_argument("--peer", action="append", default=[])
    g.add_argument("--ready-file")
    g.add_argument("--timeout", type=float, default=60.0)
    g.add_argument("--encryption", choices=sorted(ENCRYPTION), default="default")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return seed(args) if args.mode == "seed" else leech(args)


if __name__ == "__main__":
    sys.exit(main())
