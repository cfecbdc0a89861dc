"""Debian's nginx as a web seed (BEP 19) on 127.0.0.1: our own process, a config in a
temporary directory, serving one directory; started and stopped by PID, never a service.

It runs with `master_process off` (one process, as the user who started it), so it can
read test data in private temporary directories. `limit_rate` (nginx's, per
connection, e.g. "512k") makes a mirror slow enough to share the work with peers. Its access log shows each request's
path, status and Range header, so a test can tell whether a mirror was used.
"""
from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

from .net import HOST, free_port, port_accepts, wait_for


class NginxMissing(RuntimeError):
    pass


class Nginx:
    def __init__(self, root: Path, workdir: Path, limit_rate: str | None = None):
        binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
        if binary is None:
            raise NginxMissing("nginx is not installed: tests/run.sh installs Debian's package")
        self.binary = binary
        self.root = root
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        self.access_log = workdir / "access.log"
        self.error_log = workdir / "error.log"
        temp = {name: workdir / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
        self.config = workdir / "nginx.conf"
        self.config.write_text(f"""
daemon off;
master_process off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {self.error_log} info;
events {{ worker_connections 256; }}
http {{
    default_type application/octet-stream;
    log_format ranges '$request_uri $status "$http_range"';
    access_log {self.access_log} ranges;
    client_body_temp_path {temp['body']};
    proxy_temp_path {temp['proxy']};
    fastcgi_temp_path {temp['fastcgi']};
    uwsgi_temp_path {temp['uwsgi']};
    scgi_temp_path {temp['scgi']};
    server {{
        listen {HOST}:{self.port};
        root {root};
        location / {{ {f"limit_rate {limit_rate};" if limit_rate else ""} }}
    }}
}}
""")

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> Nginx:
        self.proc = subprocess.Popen([self.binary, "-p", str(self.workdir), "-c", str(self.config),
                                      "-e", str(self.error_log)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        try:
            wait_for(lambda: self.proc.poll() is not None or port_accepts(self.port), 10,
                     what="nginx to listen")
        except TimeoutError:
            self.stop()
            raise
        if self.proc.poll() is not None:
            raise RuntimeError(f"nginx exited at once: {self.proc.stderr.read().decode(errors='replace')}")
        return self

    def requests(self) -> list[str]:
        """Access log lines: `URI STATUS "RANGE"`."""
        return self.access_log.read_text().splitlines() if self.access_log.exists() else []

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)   # the process we started, by PID
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
