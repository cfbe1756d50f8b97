"""A real redis-server for the durable sleep and buffered resume tests: one per session, on a
free loopback port, without persistence. No fakes and no skips: if `redis-server` is missing,
the tests fail loudly. Each test isolates itself with its own key prefix."""

from __future__ import annotations

from redis_fixtures import redis_fixtures

redis_url, prefix, client = redis_fixtures("tests/bullmq_sleep_resume", "s")
