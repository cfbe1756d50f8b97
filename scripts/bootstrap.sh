#!/usr/bin/env bash
# Create .venv (if missing) and install flowcraft with its dev extras into it.
# Sourced by the other scripts; safe to run again (pip skips what is already there).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
if ! command -v "$PY" >/dev/null 2>&1; then
    echo "error: $PY not found; install Python 3.11+ first" >&2
    exit 1
fi
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    echo "error: Python 3.11+ is required, found $("$PY" --version)" >&2
    exit 1
fi
if [ ! -x "$ROOT/.venv/bin/python" ]; then
    "$PY" -m venv "$ROOT/.venv"
fi
VENV="$ROOT/.venv"
STAMP="$VENV/.flowcraft-installed"
if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ]; then
    LOG="$VENV/pip-install.log"
    echo "installing flowcraft[${EXTRAS:-dev}] into .venv (log: .venv/pip-install.log)" >&2
    if ! { "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip &&
           "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
               -e "$ROOT[${EXTRAS:-dev}]"; } >"$LOG" 2>&1; then
        cat "$LOG" >&2
        echo "error: installing flowcraft's Python dependencies failed (see above)" >&2
        exit 1
    fi
    touch "$STAMP"
fi
