"""Typed nodes on the BullMQ adapter: a real redis-server, the same results as in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from bullmq_processes import adapter

from blueprints.typed_orders.nodes import registry
from flowcraft_core import FlowRuntime, load_blueprint

EXAMPLE = Path(__file__).resolve().parents[2] / "blueprints" / "typed_orders" / "typed-orders.yaml"
GOOD = {"id": "B-7", "customer": "bo", "lines": [{"sku": "ink", "quantity": 40, "unit_price": 30}]}
BAD = {"id": "B-8", "customer": "bo", "lines": []}


def comparable(result: Any) -> tuple[Any, ...]:
    context = {k: v for k, v in result.context.items() if k not in ("_runState", "_executionId")}
    errors = [(e.node_id, e.type, e.message) for e in result.errors]
    return result.status, context, errors


@pytest.mark.parametrize("order", [GOOD, BAD], ids=["review-route", "empty-lines"])
async def test_typed_blueprint_gives_the_same_result_on_redis(
    redis_url: str, prefix: str, order: Any
) -> None:
    bp = load_blueprint(EXAMPLE, registry=registry)
    expected = await FlowRuntime(registry=registry).run(bp, {"order": order})
    async with adapter(redis_url, prefix, blueprints=[bp], registry=registry) as distributed:
        run_id = await distributed.start_run(bp.id, {"order": order})
        result = await distributed.wait_for_result(run_id, timeout_s=30)
    assert comparable(result) == comparable(expected)
    if order is BAD:
        assert "input.lines: List should have at least 1 item" in result.errors[0].message
    else:
        assert result.context["_outputs.review"]["status"] == "needs-review"
