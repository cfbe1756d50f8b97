"""A node whose output or context write is not JSON data (a set; lists nested 100,000 levels,
which crashed the encoder with RecursionError) fails with a SerializationError naming the node
and the key, exactly as in-process; nothing of it reaches Redis, and other runs on the same
workers are unaffected."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as redis
from bullmq_processes import adapter
from failure_nodes import registry

from flowcraft_core import FlowRuntime

BP = {
    "id": "opaque",
    "nodes": [
        {"id": "a", "uses": "step", "params": {"seconds": 0}},
        {"id": "out", "uses": "opaque", "params": {"how": "output"}},
        {"id": "ctx", "uses": "opaque", "params": {"how": "context"}},
        {"id": "deep", "uses": "opaque", "params": {"how": "deep"}},
        {"id": "after", "uses": "step", "params": {"seconds": 0}},
    ],
    "edges": [
        {"source": "a", "target": "out"},
        {"source": "a", "target": "ctx"},
        {"source": "a", "target": "deep"},
        {"source": "out", "target": "after"},
    ],
}
HEALTHY = {
    "id": "healthy",
    "nodes": [{"id": f"n{i}", "uses": "step", "params": {"seconds": 0.05}} for i in range(4)],
    "edges": [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(3)],
}


def _summary(result: Any) -> tuple[Any, ...]:
    errors = sorted((e.node_id, e.type, e.message) for e in result.errors)
    context = {k: v for k, v in result.context.items() if k != "_executionId"}
    return str(result.status), errors, context


async def test_a_value_that_is_not_json_fails_its_node_and_nothing_else(
    redis_url: str, prefix: str
) -> None:
    expected = _summary(await FlowRuntime(registry=registry, blueprints=[BP]).run("opaque"))
    assert expected[1] == [
        ("ctx", "SerializationError", "node 'ctx', key 'bad': value of type set is not JSON data"),
        (
            "deep",
            "SerializationError",
            "node 'deep', key '_outputs.deep': nested more than 500 levels deep",
        ),
        (
            "out",
            "SerializationError",
            "node 'out', key '_outputs.out': value of type set is not JSON data",
        ),
    ]
    async with adapter(redis_url, prefix, registry=registry, blueprints=[BP, HEALTHY]) as a:
        healthy = [await a.start_run("healthy") for _ in range(3)]
        broken = await a.start_run("opaque")
        healthy += [await a.start_run("healthy") for _ in range(3)]
        results = await asyncio.gather(
            *(a.wait_for_result(run_id, timeout_s=30) for run_id in [broken, *healthy])
        )
        # The failed run's state is intact and readable (status, errors, context).
        assert _summary(await a.get_result(broken)) == expected
    assert _summary(results[0]) == expected
    assert [(r.status, r.context["_outputs.n3"]) for r in results[1:]] == [("completed", 4)] * 6
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        ctx = await client.hgetall(f"{prefix}:{{{broken}}}:ctx")
    finally:
        await client.aclose()
    assert not {"bad", "_outputs.out", "_outputs.deep", "_outputs.after"} & set(ctx)
