#!/usr/bin/env bash
# The whole test suite: lint (ruff), types (mypy --strict), then pytest.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k joins`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh
V="$ROOT/.venv/bin"
echo "== ruff"
"$V/ruff" check .
"$V/ruff" format --check .
echo "== mypy"
"$V/mypy"
echo "== pytest"
"$V/pytest" "$@"
