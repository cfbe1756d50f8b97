"""The reconciler heals a subflow whose `-~child` notification was lost (SPEC 9.10): the worker
that applied the child's final transition died before adding the parent's job, so the parent
activation stays parked on a child that has finished. The parent is stalled; reconciling it
re-runs its owed activation, which syncs with the child and completes as in-process."""

from __future__ import annotations

import asyncio

from distributed.subflow_cases import SCENARIOS, blueprints, e, in_process, n, registry_of, same
from distributed.test_memory_parity import make_registry
from reconcile_support import adapter, age, lose_follow_ups_once
from redis.asyncio import Redis

from flowcraft_bullmq import ReconcileStats, create_reconciler
from flowcraft_core import FlowRuntime
from flowcraft_core.distributed import Job
from flowcraft_core.distributed.protocol import CHILD, WAKE


async def test_a_lost_child_notification_is_healed_by_the_reconciler(
    redis_url: str, prefix: str, client: Redis
) -> None:
    scenario = SCENARIOS["inputs_and_outputs"]
    registry, bps = registry_of(scenario), blueprints(scenario)
    local = await in_process(FlowRuntime(registry=registry, blueprints=bps), scenario, "r-lost")
    async with adapter(redis_url, prefix, blueprints=bps, registry=registry) as a:
        # The child's last node completes the child, then its worker dies: no notification.
        dying = lose_follow_ups_once(a, lambda applied: applied.finished == "completed")
        await a.start_run(scenario.root, scenario.context, run_id="r-lost")
        await asyncio.wait_for(dying.crashed.wait(), 10)
        await asyncio.sleep(0.3)  # nothing else is in flight: the parent stays parked
        assert await a.get_status("r-lost-sub-0") == "completed"
        assert await a.get_status("r-lost") == "running"
        queue = a._job_queue_or_fail().queue
        notice = Job("r-lost", "sub", (), kind=CHILD, seq=1).job_id
        assert await queue.getJobState(notice) == "unknown"

        reconciler = create_reconciler(adapter=a, redis=client, stalled_threshold_s=60)
        assert await reconciler.run() == ReconcileStats(2, 0, 0, 0)  # not idle long enough
        await age(client, prefix, "r-lost")
        # Only the parent is stalled (the child has finished): it is owed the notification.
        assert await a.reconcile("r-lost") == [notice]
        result = await a.wait_for_result("r-lost", timeout_s=10)
        assert await reconciler.run() == ReconcileStats(2, 0, 0, 0)
    same([result], local[:1])


SLOW_CHILD = {
    "id": "slow-child",
    "nodes": [n("c1", "inc"), n("nap", "sleep", params={"duration": "5s"}), n("c2", "inc")],
    "edges": [e("c1", "nap"), e("nap", "c2")],
}
SLOW_PARENT = {
    "id": "slow-parent",
    "nodes": [n("a", "inc"), n("sub", "subflow", params={"blueprintId": "slow-child"})],
    "edges": [e("a", "sub")],
}


async def test_a_parent_waiting_on_a_running_child_is_owed_nothing(
    redis_url: str, prefix: str, client: Redis
) -> None:
    """The parked parent of a long child looks stalled, but reconciling it enqueues nothing
    while the child runs (no job, no `reconciled_runs`); the run then ends as in-process."""
    blueprints_ = [SLOW_CHILD, SLOW_PARENT]
    registry = make_registry()
    async with adapter(redis_url, prefix, blueprints=blueprints_, registry=registry) as a:
        await a.start_run("slow-parent", run_id="r-slow")
        queue = a._job_queue_or_fail().queue
        wake = Job("r-slow-sub-0", "nap", (), kind=WAKE).job_id
        for _ in range(500):
            if await queue.getJobState(wake) == "delayed":
                break
            await asyncio.sleep(0.02)
        await age(client, prefix, "r-slow")
        reconciler = create_reconciler(adapter=a, redis=client, stalled_threshold_s=60)
        assert await reconciler.run() == ReconcileStats(2, 1, 0, 0)
        assert await a.reconcile("r-slow") == []
        result = await a.wait_for_result("r-slow", timeout_s=20)
    local = await FlowRuntime(registry=registry, blueprints=blueprints_).run(
        "slow-parent", run_id="r-slow"
    )
    same([result], [local])
