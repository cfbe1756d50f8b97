"""A real redis-server for the reconciler tests, owned by the suite: one per session, on a free
loopback port, without persistence. No fakes and no skips: without `redis-server` every test
here fails, loudly. Each test isolates itself with its own key prefix (`prefix`), so the server
is never flushed under a worker process.
"""

from __future__ import annotations

from redis_fixtures import redis_fixtures

redis_url, prefix, client = redis_fixtures("tests/bullmq_reconcile", "rc")
