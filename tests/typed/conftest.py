"""The Redis test gets the suite's redis-server fixtures (the typed example imports as
`blueprints.typed_orders.nodes`: pytest puts the repository root on sys.path)."""

from __future__ import annotations

from redis_fixtures import redis_fixtures

redis_url, prefix, client = redis_fixtures("tests/typed", "ty")
