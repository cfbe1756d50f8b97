"""A suite-owned redis-server for the run-control tests (started only if a test asks for it);
`control_nodes` is importable by the tests here."""

from __future__ import annotations

import sys
from pathlib import Path

from redis_fixtures import redis_fixtures

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

redis_url, prefix, client = redis_fixtures("tests/run_control", "rn")
