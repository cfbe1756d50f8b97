"""An idempotent start that raised after creating its run (its entry jobs never reached the
queue) is finished by the client's retry with the same key, not left idle until the reconciler.

The failure is real: a Redis ACL user that may write run state but not BullMQ's queue keys.
"""

from __future__ import annotations

import redis.asyncio as redis
from bullmq_processes import adapter

from flowcraft_core import NodeRegistry, RunStatus

BP = {
    "id": "one",
    "nodes": [{"id": "a", "uses": "ok"}, {"id": "b", "uses": "ok"}],
    "edges": [{"source": "a", "target": "b"}],
}
registry = NodeRegistry()
runs: list[str] = []


@registry.node("ok")
async def ok(ctx: object) -> dict[str, int]:
    runs.append(getattr(ctx, "activation_id", ""))
    return {"output": 1}


async def test_a_retried_idempotent_start_enqueues_what_the_first_one_could_not(
    redis_url: str, prefix: str
) -> None:
    admin = redis.Redis.from_url(redis_url)
    user = f"partial{prefix}"
    await admin.execute_command(
        "ACL", "SETUSER", user, "on", ">pw", f"~{prefix}:{{*", f"~{prefix}:idem:*", "+@all"
    )
    limited = redis_url.replace("redis://", f"redis://{user}:pw@")
    try:
        async with adapter(limited, prefix, blueprints=[BP], consume=False) as partial:
            try:
                await partial.start_run("one", run_id="r1", idempotency_key="k1")
            except Exception as exc:  # NOPERM on the queue keys, after the run was created
                assert "NOPERM" in str(exc) or "permission" in str(exc).lower(), exc
            else:
                raise AssertionError("the limited user could enqueue: the test proves nothing")
        async with adapter(redis_url, prefix, blueprints=[BP], registry=registry) as worker:
            assert await worker.get_status("r1") == RunStatus.RUNNING
            assert await worker.start_run("one", run_id="r2", idempotency_key="k1") == "r1"
            result = await worker.wait_for_result("r1", timeout_s=15)
            assert result.status == RunStatus.COMPLETED
            assert sorted(runs) == ["r1-a-0", "r1-b-0"]  # each node once
            # a second retry of the finished run starts and enqueues nothing
            assert await worker.start_run("one", idempotency_key="k1") == "r1"
    finally:
        await admin.execute_command("ACL", "DELUSER", user)
        await admin.aclose()
