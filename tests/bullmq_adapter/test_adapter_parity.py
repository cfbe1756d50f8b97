"""Every parity case of the in-memory protocol, run through BullMQAdapter on a real Redis and
BullMQ with one in-process worker, gives FlowRuntime's status, errors and context (SPEC 9.1)."""

from __future__ import annotations

import pytest
from adapter_support import APPROVAL, adapter
from distributed.test_memory_parity import CASES, comparable, make_registry

from flowcraft_core import FlowRuntime


@pytest.mark.parametrize("name", sorted(CASES))
async def test_same_result_as_in_process(name: str, redis_url: str, prefix: str) -> None:
    blueprint, context = CASES[name]
    registry = make_registry()
    local = await FlowRuntime(registry=registry, blueprints=[blueprint]).run(
        blueprint["id"], context, run_id="run1"
    )
    async with adapter(redis_url, prefix, registry=registry, blueprints=[blueprint]) as a:
        run_id = await a.start_run(blueprint["id"], context, run_id="run1")
        result = await a.wait_for_result(run_id, timeout_s=20)
    assert comparable(result) == comparable(local)


async def test_wait_resumed_with_an_action_routes_the_same(redis_url: str, prefix: str) -> None:
    registry = make_registry()
    runtime = FlowRuntime(registry=registry, blueprints=[APPROVAL])
    paused = await runtime.run("approval", run_id="r-wait")
    async with (
        adapter(redis_url, prefix, registry=registry, blueprints=[APPROVAL]) as worker,
        # A client-only process (no node code) resumes: routing needs no implementations.
        adapter(redis_url, prefix, blueprints=[APPROVAL], consume=False) as client,
    ):
        run_id = await client.start_run("approval", run_id="r-wait")
        waiting = await client.wait_for_result(run_id, timeout_s=20)
        assert waiting.status == paused.status == "awaiting"
        assert await client.get_status(run_id) == "awaiting"
        assert comparable(waiting) == comparable(paused)
        assert waiting.context["_awaitingNodeIds"] == ["ask"]

        with pytest.raises(ValueError, match="only wait, webhook and subflow"):
            await client.resume_with_action(run_id, "reject", 5, node_id="yes")
        assert await client.resume_with_action(run_id, "reject", 5, node_id="ask") == "resumed"
        done = await worker.wait_for_result(run_id, timeout_s=20)

    done_local = await runtime.resume(
        "approval", paused.serialized_context, output=5, action="reject"
    )
    assert done.status == "completed"
    assert comparable(done) == comparable(done_local)
    assert "_outputs.yes" not in done.context
    assert done.context["_outputs.no"] == 6
