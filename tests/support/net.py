"""Loopback port allocation and small waiting helpers."""
from __future__ import annotations

import socket
import threading
import time

HOST = "127.0.0.1"
_lock = threading.Lock()
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP+UDP port on 127.0.0.1 that is free now and not handed out before in this run."""
    with _lock:
        for _ in range(200):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                tcp.bind((HOST, 0))
                port = tcp.getsockname()[1]
                if port in _handed_out:
                    continue
                try:
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                        udp.bind((HOST, port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port found on 127.0.0.1")


def wait_for(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Poll `predicate` until it returns a truthy value; raise TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def port_accepts(port: int, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
