"""A real redis-server for the inspector tests (one per session) and a key prefix per test."""

from __future__ import annotations

from redis_fixtures import redis_fixtures

redis_url, prefix, client = redis_fixtures("tests/inspector", "i")
