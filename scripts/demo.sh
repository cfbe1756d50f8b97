#!/usr/bin/env bash
# Run the main example in-process (no server needed) and print its result.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh
exec "$ROOT/.venv/bin/flowcraft" run blueprints/order_processing/order-processing.yaml \
    --registry blueprints.order_processing.nodes:registry \
    --context '{"order": {"id": "A-100", "amount": 120.0, "customer": "ada@example.com"}}' "$@"
