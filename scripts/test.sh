#!/usr/bin/env bash
# The whole test suite: lint (ruff), types (mypy --strict), then pytest.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k joins`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh
V="$ROOT/.venv/bin"
# The Redis tests start their own redis-server on a free loopback port; install it if missing.
if ! command -v redis-server >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing redis-server (apt-get)"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    fi
fi
if ! command -v redis-server >/dev/null 2>&1; then
    echo "error: redis-server is required by the test suite and could not be installed" >&2
    echo "       (install it, e.g. 'apt-get install redis-server', and run again)" >&2
    exit 1
fi
echo "redis-server: $(redis-server --version)"
echo "== ruff"
"$V/ruff" check .
"$V/ruff" format --check .
echo "== mypy"
"$V/mypy"
echo "== pytest"
"$V/pytest" "$@"
