"""`saga_nodes` is importable by the tests here and by worker processes started from here; the
Redis tests get a suite-owned redis-server (started only if a test asks for it)."""

from __future__ import annotations

import sys
from pathlib import Path

from redis_fixtures import redis_fixtures

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

redis_url, prefix, client = redis_fixtures("tests/compensation", "cp")
