#!/usr/bin/env bash
# The whole test suite: lint (ruff), types (mypy --strict), then pytest.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k joins`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh
V="$ROOT/.venv/bin"
# System programs the tests use (the Redis tests start their own redis-server on a free loopback
# port, TLS tests make certificates with openssl). Installed with apt-get when missing.
APT_UPDATED=0
need() {  # need COMMAND DEBIAN_PACKAGE
    if ! command -v "$1" >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "== installing $2 (apt-get)"
            if [ "$APT_UPDATED" = 0 ]; then apt-get update -qq >/dev/null; APT_UPDATED=1; fi
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
        fi
    fi
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "error: $1 is required by the test suite and could not be installed" >&2
        echo "       (install it, e.g. 'apt-get install $2', and run again)" >&2
        exit 1
    fi
}
need redis-server redis-server
need openssl openssl
need chromium chromium  # tests/inspector: the inspector page in a real headless browser
echo "redis-server: $(redis-server --version)"
echo "== ruff"
"$V/ruff" check .
"$V/ruff" format --check .
echo "== mypy"
"$V/mypy"
echo "== pytest"
"$V/pytest" "$@"
