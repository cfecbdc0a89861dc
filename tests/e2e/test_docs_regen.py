"""Every excerpt in docs/ is what `docs/regen` produces now: the stages run against a
local swarm, traced, and normalised. A change to the trace or to a stage shows here."""
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_excerpts_match_a_fresh_run():
    result = subprocess.run([str(ROOT / "docs" / "regen"), "--check"], capture_output=True, text=True,
                            timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, (
        "the guide's excerpts differ from a fresh run; run docs/regen and review the diff:\n"
        + result.stdout[-6000:] + result.stderr[-2000:])
