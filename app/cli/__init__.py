"""The command line: one click command per stage, each a short composition.

stdout carries only each stage's result (graders compare it); logs, progress
and errors go to stderr. app/cli/group.py lists the commands and where each
lives; a command's module is imported only when that command runs, so the
commands that need no network start without importing the engine.
"""

from app.cli.group import cli, main

__all__ = ["cli", "main"]
