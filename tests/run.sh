#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs pytest.
#   tests/run.sh [PYTEST ARGS...]      e.g. tests/run.sh -q tests/e2e -k magnet
# Installs the locked runtime + dev packages into .venv (app/bootstrap.py) and Debian's
# opentracker and nginx when they are missing. Installation output goes to stderr.
# Before pytest, a lint and type gate: `ruff check app tests bench dev` and `mypy app`
# (settings in pyproject.toml); either one reporting anything fails the run.
# SKIP_LINT=1 skips the gate, for quick local pytest runs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

if [[ -z ${PIP_INDEX_URL:-} ]]; then
  PIP_INDEX_URL=$(python3 -c 'from pip._internal.models.index import PyPI; print(PyPI.simple_url)')
  export PIP_INDEX_URL
fi
python3 "$root/app/bootstrap.py" --install dev >&2

# Debian packages the end-to-end tests run (never as services: the tests start their own
# processes). install_debian PACKAGE PROGRAM WHO-NEEDS-IT
install_debian() {
  if command -v "$2" >/dev/null 2>&1 || [[ -x /usr/sbin/$2 ]]; then return; fi
  echo "tests/run.sh: installing Debian's $1" >&2
  if [[ $(id -u) == 0 ]]; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1"; } >&2 \
      || echo "tests/run.sh: could not install $1; $3 will fail" >&2
  else
    echo "tests/run.sh: not root, cannot apt-get install $1; $3 will fail" >&2
  fi
}
install_debian opentracker opentracker "the tests that need it"
install_debian nginx nginx "the web-seed tests (BEP 19)"

cd "$root"
if [[ ${SKIP_LINT:-} != 1 ]]; then
  failed=()
  "$root/.venv/bin/ruff" check app tests bench dev >&2 || failed+=("ruff check app tests bench dev")
  "$root/.venv/bin/mypy" app >&2 || failed+=("mypy app")
  if (( ${#failed[@]} )); then
    printf 'tests/run.sh: failed: %s\n' "${failed[@]}" >&2
    echo "tests/run.sh: fix the reports above (SKIP_LINT=1 runs pytest without this gate)" >&2
    exit 1
  fi
fi
exec "$root/.venv/bin/python" -m pytest "$@"
