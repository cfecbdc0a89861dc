"""Run the CLI inside shared/grader-net: a copy of the grader's download network (the
tracker at bittorrent-test-tracker.codecrafters.io and rain-like seeders) on the loopback
of a private network namespace. Needs root and unshare; missing them is a failure."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .cli import REPO_ROOT, CliResult

GRADER_NET = REPO_ROOT.parent / "shared" / "grader-net"
DATA = GRADER_NET / "data"
BATCH = Path(__file__).with_name("cli_batch.py")


def magnet_links() -> dict[str, str]:
    """{'magnet1.gif': link, ...} from data/magnet_links.txt."""
    links = {}
    for line in (DATA / "magnet_links.txt").read_text().splitlines():
        name, _, link = line.partition(": ")
        links[name.removesuffix(".torrent")] = link
    return links


def check_available() -> None:
    script = GRADER_NET / "with-grader-net.sh"
    assert script.exists(), f"{script} missing: shared/ must be beside the repo"
    assert os.geteuid() == 0, "grader-net needs root (unshare)"
    assert shutil.which("unshare"), "grader-net needs unshare (util-linux)"


def run_in_grader_net(steps: list[tuple[list, float]], workdir: Path, *,
                      latency_ms: int = 0) -> list[CliResult]:
    """Run each (args, timeout) in order inside one grader-net session."""
    check_available()
    workdir.mkdir(parents=True, exist_ok=True)
    plan, result = workdir / "plan.json", workdir / "result.json"
    plan.write_text(json.dumps([{"args": [str(a) for a in args], "timeout": timeout}
                                for args, timeout in steps]))
    budget = 30 + sum(timeout for _, timeout in steps)
    proc = subprocess.run([str(GRADER_NET / "with-grader-net.sh"), "--latency-ms",
                           str(latency_ms), sys.executable, str(BATCH), str(plan),
                           str(result)], stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=budget)
    assert proc.returncode == 0, f"grader-net failed ({proc.returncode}): {proc.stderr!r}"
    return [CliResult(args=tuple(r["args"]), returncode=r["returncode"], stdout=r["stdout"],
                      stderr=r["stderr"], elapsed=r["elapsed"], timed_out=r["timed_out"])
            for r in json.loads(result.read_text())]
