"""An auxiliary job (`-~wake`, `-~resume<n>`, `-~child<n>`) that stalls more than
`max_stalled_count` times fails its activation with WorkerLostError, as a node job does
(SPEC 9.4, docs/semantics.md): routing goes on and blocks the successor; the run is not failed
at run level."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from adapter_support import adapter, e, n
from distributed.test_memory_parity import make_registry

from flowcraft_bullmq import BullMQAdapter
from flowcraft_core import InMemoryEventBus
from flowcraft_core.distributed import Job
from flowcraft_core.distributed.protocol import CHILD, RESUME, WAKE

OPTIONS: dict[str, Any] = {"lock_duration_s": 1, "stalled_interval_s": 0.5, "max_stalled_count": 0}
CHILD_BP: dict[str, Any] = {"id": "child", "nodes": [n("c1", "inc")], "edges": []}
WAITING_CHILD: dict[str, Any] = {"id": "waiting-child", "nodes": [n("w", "wait")], "edges": []}
X_NODE: dict[str, dict[str, Any]] = {
    WAKE: n("x", "sleep", params={"duration": "100ms"}),
    RESUME: n("x", "wait"),
    CHILD: n("x", "subflow", params={"blueprintId": "child"}),
    "awaiting child": n("x", "subflow", params={"blueprintId": "waiting-child"}),
}
CASES = [(WAKE, WAKE), (RESUME, RESUME), (CHILD, CHILD), ("awaiting child", CHILD)]
BLUEPRINTS = [CHILD_BP, WAITING_CHILD]


def _blueprint(case: str) -> dict[str, Any]:
    return {
        "id": "aux",
        "nodes": [n("a", "inc"), X_NODE[case], n("b", "inc"), n("side", "inc")],
        "edges": [e("a", "x"), e("x", "b"), e("a", "side")],
    }


async def _kill_during(redis_url: str, prefix: str, case: str, kind: str) -> str:
    """Run until a job of `kind` of node x is being handled, then die like a SIGKILL."""
    doomed = BullMQAdapter(
        connection=redis_url,
        registry=make_registry(),
        blueprints=[_blueprint(case), *BLUEPRINTS],
        prefix=prefix,
        **OPTIONS,
    )
    blocked = asyncio.Event()
    try:
        await doomed.start()
        assert doomed._worker is not None
        handle = doomed._worker.handle

        x_job: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def hanging(job: Job, **kw: Any) -> None:
            if job.kind == kind and job.node_id == "x":
                blocked.set()
                await asyncio.Event().wait()
            if job.node_id in ("c1", "w"):
                # The child's node runs once x's own node job has finished (x parked), so
                # only the lost notification can tell x how its child ended. Otherwise a
                # child that ends first is seen by x's node job, which completes x itself.
                queue = doomed.bullmq_queue("flowcraft")
                for _ in range(1000):  # 10 s at most
                    if await queue.getJobState(await x_job) == "completed":
                        break
                    await asyncio.sleep(0.01)
            await handle(job, **kw)

        doomed._worker.handle = hanging  # type: ignore[method-assign]
        run_id = await doomed.start_run("aux")
        x_job.set_result(Job(run_id=run_id, node_id="x", iteration=()).job_id)
        if kind == RESUME:
            assert (await doomed.wait_for_result(run_id, timeout_s=10)).status == "awaiting"
            assert await doomed.resume_with_action(run_id, output="ok") == "resumed"
        await asyncio.wait_for(blocked.wait(), 10)
    finally:
        closing = asyncio.ensure_future(doomed.close())
        doomed.abort_close()  # in-flight jobs are cancelled, not acknowledged
        await closing
    return run_id


@pytest.mark.parametrize(("case", "kind"), CASES)
async def test_aux_job_that_stalls_too_often_fails_its_activation(
    redis_url: str, prefix: str, case: str, kind: str
) -> None:
    run_id = await _kill_during(redis_url, prefix, case, kind)
    bus = InMemoryEventBus()
    async with adapter(
        redis_url,
        prefix,
        registry=make_registry(),
        blueprints=[_blueprint(case), *BLUEPRINTS],
        event_bus=bus,
        **OPTIONS,
    ) as survivor:
        result = await survivor.wait_for_result(run_id, timeout_s=20)
        child = await survivor.get_status(f"{run_id}-x-0") if kind == CHILD else None
    assert result.status == "failed"
    assert [(err.node_id, err.type) for err in result.errors] == [("x", "WorkerLostError")]
    # The activation failed, not the run: its successor is blocked, as in-process.
    skipped = [(ev.node_id, ev.reason) for ev in bus.of_type("node:skipped")]
    assert skipped == [("b", "upstream_failed")]
    assert [ev.node_id for ev in bus.of_type("node:error")] == ["x"]
    assert "_outputs.side" in result.context  # the other branch ran
    if case == "awaiting child":  # nothing would ever resume or read it
        assert child == "cancelled"
