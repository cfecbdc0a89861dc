#!/usr/bin/env python3
"""Run a list of CLI invocations one after another and write their results as JSON.

  cli_batch.py PLAN.json RESULT.json

PLAN is [{"args": [...], "timeout": seconds}, ...]. Used to run the CLI inside
shared/grader-net's private network namespace, where the grader's tracker host name
resolves to 127.0.0.1 and only loopback exists.
"""
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.cli import run_cli  # noqa: E402


def main(plan_path: str, result_path: str) -> int:
    plan = json.loads(Path(plan_path).read_text())
    results = [dataclasses.asdict(run_cli(*step["args"], timeout=step["timeout"]))
               for step in plan]
    Path(result_path).write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
