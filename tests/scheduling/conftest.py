"""A real redis-server for the scheduling tests (queues, priorities, limiter, delayed and cron
starts, bulk starts): one per session, on a free loopback port, without persistence. Each
test isolates itself with its own key prefix."""

from __future__ import annotations

from redis_fixtures import redis_fixtures

redis_url, prefix, client = redis_fixtures("tests/scheduling", "q")
