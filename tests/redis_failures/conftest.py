"""A real redis-server for the Redis failure-mode tests (one per session, no persistence); the
tests that stop and restart Redis start their own."""

from __future__ import annotations

from redis_fixtures import redis_fixtures

redis_url, prefix, client = redis_fixtures("tests/redis_failures", "rf")
