"""A real redis-server for the adapter tests: one per session, on a free loopback port.

No fakes and no skips: if `redis-server` is missing the tests fail, loudly. Each test isolates
itself with its own key prefix (see `prefix`), so the server is never flushed under a worker.
"""

from __future__ import annotations

from redis_fixtures import redis_fixtures

redis_url, prefix, client = redis_fixtures("tests/bullmq_adapter", "t")
