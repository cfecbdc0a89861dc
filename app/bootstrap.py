"""Start the CLI, first installing the locked packages if they are missing.

Run by your_bittorrent.sh with the system python3 when the project venv is
absent or older than Pipfile.lock. Uses only the standard library.

  python3 app/bootstrap.py ARGS...        run the CLI (installing if needed)
  python3 app/bootstrap.py --install dev  install runtime + dev packages

Packages are installed from Pipfile.lock with pip's --require-hashes, so the
exact locked files are used. Reading the lock directly avoids installing
pipenv itself on every fresh machine.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "Pipfile.lock"
VENV = ROOT / ".venv"
RUNTIME_MODULES = ("bencodepy", "requests", "click")
SECTIONS = {"default": ("default",), "dev": ("default", "develop")}


def stamp_path(kind: str) -> Path:
    return VENV / f"installed.{kind}.lock"


def is_installed(kind: str) -> bool:
    stamp = stamp_path(kind)
    return stamp.exists() and stamp.read_bytes() == LOCK.read_bytes()


def requirement_lines(lock: dict, sections: tuple[str, ...]) -> list[str]:
    """Turn Pipfile.lock entries into hash-pinned pip requirement lines."""
    lines = []
    for section in sections:
        for name, entry in sorted(lock.get(section, {}).items()):
            line = f"{name}{entry['version']}"
            if entry.get("markers"):
                line += f"; {entry['markers']}"
            line += "".join(f" --hash={h}" for h in entry.get("hashes", []))
            lines.append(line)
    return lines


def log(message: str) -> None:
    print(f"[setup] {message}", file=sys.stderr, flush=True)


def install(kind: str) -> None:
    """Create .venv if needed and install the locked packages of `kind`."""
    if is_installed(kind):
        return
    os.environ.setdefault("PIP_INDEX_URL", default_index_url())
    python = VENV / "bin" / "python"
    if not python.exists():
        log(f"creating {VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True,
                       stdout=sys.stderr)
    lock = json.loads(LOCK.read_text())
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as req:
        req.write("\n".join(requirement_lines(lock, SECTIONS[kind])) + "\n")
    try:
        log(f"installing {kind} packages from Pipfile.lock")
        pip_install(python, req.name)
    finally:
        os.unlink(req.name)
    install_speedups(python, lock)
    compile_app(python)
    shutil.copyfile(LOCK, stamp_path(kind))
    if kind == "dev":  # a dev install includes every runtime package
        shutil.copyfile(LOCK, stamp_path("default"))


def pip_install(python: Path, requirements: str) -> None:
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--require-hashes", "--no-deps", "-r", requirements],
        check=True, stdout=sys.stderr)


def compile_app(python: Path) -> None:
    """Byte-compile app/, as pip does for the packages it installs: with
    PYTHONDONTWRITEBYTECODE set (some sandboxes and CI images set it) every run would
    otherwise compile each module from source, ~80 ms of CPU per command."""
    subprocess.run([str(python), "-m", "compileall", "-q", str(ROOT / "app")],
                   stdout=sys.stderr, check=False)


def install_speedups(python: Path, lock: dict) -> None:
    """The optional packages (uvloop): installed when they can be, never required."""
    lines = requirement_lines(lock, ("speedups",))
    if not lines:
        return
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as req:
        req.write("\n".join(lines) + "\n")
    try:
        pip_install(python, req.name)
    except (subprocess.CalledProcessError, OSError):
        log("optional packages (speedups) not installed; the client runs without them")
    finally:
        os.unlink(req.name)


def default_index_url() -> str:
    from pip._internal.models.index import PyPI  # pip's built-in default
    return PyPI.simple_url


def runtime_importable() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in RUNTIME_MODULES)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--install"]:
        install(argv[1] if len(argv) > 1 else "default")
        return
    if not is_installed("default") and runtime_importable():
        # Packages provided by the platform: run in this very process.
        sys.path.insert(0, str(ROOT))
        import runpy
        sys.argv = ["your_bittorrent.sh", *argv]
        runpy.run_module("app", run_name="__main__", alter_sys=True)
        return
    try:
        install("default")
    except (subprocess.CalledProcessError, OSError) as exc:
        sys.exit(f"Error: could not install the locked packages: {exc}")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    python = str(VENV / "bin" / "python")
    os.execve(python, [python, "-m", "app", *argv], env)


if __name__ == "__main__":
    main(sys.argv[1:])
