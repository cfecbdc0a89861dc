#!/bin/sh
# Install what the benchmark needs, then run it: bench/run.sh [bench/run.py options]
#   - the project's dev packages (libtorrent) into .venv,
#   - Debian's opentracker (required),
#   - Debian's aria2 (optional third client; skip with BENCH_NO_ARIA2=1).
set -e
root=$(cd "$(dirname "$0")/.." && pwd)
python3 "$root/app/bootstrap.py" --install dev
updated=""
apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "bench/run.sh: not root, cannot apt-get install $1" >&2
    return 1
  fi
  [ -n "$updated" ] || { apt-get update -qq >&2 && updated=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >&2
}
command -v opentracker >/dev/null 2>&1 || apt_install opentracker
if [ "${BENCH_NO_ARIA2:-0}" != 1 ] && ! command -v aria2c >/dev/null 2>&1; then
  apt_install aria2 || echo "bench/run.sh: aria2 not installed; it will be skipped" >&2
fi
exec "$root/.venv/bin/python" "$root/bench/run.py" "$@"
