"""Run control on Redis (BullMQAdapter, one worker in this process): pause and resume, cancel
reaching an in-flight node, restart, and retry from the failed nodes; the same through the CLI.
Node calls are counted per activation id (`control_nodes.calls`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import control_nodes as nodes
import pytest
from bullmq_processes import adapter
from control_nodes import BLUEPRINTS, DIAMOND, registry
from redis.asyncio import Redis

from flowcraft_bullmq import BullMQAdapter, create_reconciler
from flowcraft_core import FlowRuntime
from flowcraft_core.cli import main
from flowcraft_core.distributed import Job

DIAMOND_GATED = {
    **DIAMOND,
    "id": "diamond-gated",
    "nodes": [dict(n, uses="gate") if n["id"] == "c" else n for n in DIAMOND["nodes"]],
}
#: a subflow running the diamond
PARENT = {
    "id": "parent",
    "nodes": [{"id": "sub", "uses": "subflow", "params": {"blueprintId": "diamond"}}],
    "edges": [],
}
ALL = [*BLUEPRINTS, DIAMOND_GATED, PARENT]


@pytest.fixture
async def worker(redis_url: str, prefix: str) -> AsyncIterator[BullMQAdapter]:
    nodes.reset()
    async with adapter(
        redis_url, prefix, blueprints=ALL, registry=registry, lock_duration_s=1
    ) as instance:
        yield instance
    nodes.reset()


def comparable(result: Any) -> tuple[Any, ...]:
    context = {k: v for k, v in result.context.items() if k != "_executionId"}
    return result.status, [(e.node_id, e.type, e.message) for e in result.errors], context


async def in_process(bp_id: str, context: dict[str, Any] | None = None) -> tuple[Any, ...]:
    return comparable(await FlowRuntime(registry=registry, blueprints=ALL).run(bp_id, context))


def ran(run_id: str) -> dict[str, int]:
    """Calls per node of one run."""
    prefix = run_id + "-"
    return {
        a[len(prefix) :].split("-")[0]: c for a, c in nodes.calls.items() if a.startswith(prefix)
    }


async def job_state(a: BullMQAdapter, job: Job) -> str:
    return str(await a._job_queue_or_fail().queue.getJobState(job.job_id))


async def until(check: Any, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


# --------------------------------------------------------------------------- pause, resume


async def test_a_paused_run_finishes_in_flight_nodes_and_starts_nothing_until_resumed(
    worker: BullMQAdapter, client: Redis, prefix: str
) -> None:
    run_id = await worker.start_run("gated", {"k": 1})
    await nodes.started.setdefault("g", asyncio.Event()).wait()
    assert await worker.pause_run(run_id) is True
    assert await worker.get_status(run_id) == "paused"
    nodes.gates.setdefault("g", asyncio.Event()).set()  # the in-flight node finishes
    c_job = Job(run_id, "c", ())

    async def c_acknowledged() -> bool:
        return await job_state(worker, c_job) == "completed"

    await until(c_acknowledged)  # taken while paused: acknowledged without running
    assert ran(run_id) == {"a": 1, "g": 1}
    assert await client.hexists(f"{prefix}:{{{run_id}}}:acts", "g@")  # g's completion applied
    assert await worker.get_status(run_id) == "paused"
    assert await worker.get_result(run_id) is None
    with pytest.raises(TimeoutError):
        await worker.wait_for_result(run_id, timeout_s=0.3)
    await client.hset(f"{prefix}:{{{run_id}}}:meta", "progressAt", time.time() - 600)
    stats = await create_reconciler(adapter=worker, redis=client, stalled_threshold_s=0).run()
    assert (stats.stalled_runs, stats.reconciled_runs) == (0, 0)  # a paused run is left alone

    assert await worker.resume_run(run_id) is True
    result = await worker.wait_for_result(run_id, timeout_s=20)
    assert comparable(result) == await in_process("gated", {"k": 1})
    assert ran(run_id) == {"a": 1, "g": 1, "c": 1, "d": 1}
    assert await worker.pause_run(run_id) is False  # finished
    assert await worker.resume_run(run_id) is False  # not paused


async def test_an_awaiting_run_paused_takes_its_resume_only_once_unpaused(
    worker: BullMQAdapter,
) -> None:
    run_id = await worker.start_run("waiting")
    assert (await worker.wait_for_result(run_id, timeout_s=20)).status == "awaiting"
    assert await worker.pause_run(run_id) is True
    assert await worker.resume_with_action(run_id, output="ok") == "resumed"
    assert await worker.get_status(run_id) == "paused"  # still paused
    await asyncio.sleep(0.5)  # the resume job was taken and acknowledged without running
    assert "b" not in ran(run_id)
    assert await worker.resume_run(run_id) is True
    result = await worker.wait_for_result(run_id, timeout_s=20)
    assert result.status == "completed" and result.context["_outputs.b"] == "b:ok"


async def test_cancel_reaches_an_in_flight_node(worker: BullMQAdapter) -> None:
    run_id = await worker.start_run("long")
    await nodes.started.setdefault("x", asyncio.Event()).wait()
    cancelled_at = time.monotonic()
    assert await worker.cancel_run(run_id) is True

    async def seen() -> bool:
        return f"{run_id}-x-0" in nodes.cancelled

    await until(seen, within=10)  # the worker checks every lock_duration / 2 (0.5 s here)
    assert time.monotonic() - cancelled_at < 5  # not the node's 30 s
    assert (await worker.wait_for_result(run_id, timeout_s=5)).status == "cancelled"


# --------------------------------------------------------------------------- restart, retry


async def test_restart_starts_a_linked_run_from_the_initial_context(
    worker: BullMQAdapter, client: Redis, prefix: str
) -> None:
    nodes.failing["c"] = 1
    old = await worker.start_run("diamond", {"k": [1, 2]}, priority=7)
    assert (await worker.wait_for_result(old, timeout_s=20)).status == "failed"
    new = await worker.restart_run(old)
    assert new != old
    result = await worker.wait_for_result(new, timeout_s=20)
    assert comparable(result) == await in_process("diamond", {"k": [1, 2]})
    assert await client.hget(f"{prefix}:{{{new}}}:meta", "restartedFrom") == old
    assert await client.hget(f"{prefix}:{{{new}}}:meta", "priority") == "7"  # scheduled alike
    assert ran(new) == {"a": 1, "b": 1, "c": 1, "d": 1, "z": 1}  # everything ran again


async def test_retry_runs_only_the_failed_node_and_what_follows(worker: BullMQAdapter) -> None:
    nodes.failing["c"] = 1  # fails on the first run, succeeds on the retry
    run_id = await worker.start_run("diamond", {"k": 1})
    failed = await worker.wait_for_result(run_id, timeout_s=20)
    assert [e.node_id for e in failed.errors] == ["c"]
    assert ran(run_id) == {"a": 1, "b": 1, "c": 1}
    assert await worker.retry_run(run_id) == run_id
    result = await worker.wait_for_result(run_id, timeout_s=20)
    assert comparable(result) == await in_process("diamond", {"k": 1})
    # the succeeded predecessors did NOT run again
    assert ran(run_id) == {"a": 1, "b": 1, "c": 2, "d": 1, "z": 1}
    with pytest.raises(ValueError, match="only a failed run"):
        await worker.retry_run(run_id)


async def test_retry_keeps_a_resolution_that_arrived_after_the_join_was_blocked(
    worker: BullMQAdapter,
) -> None:
    nodes.failing["b"] = 1
    run_id = await worker.start_run("diamond-gated")
    await nodes.started.setdefault("c", asyncio.Event()).wait()

    async def blocked() -> bool:  # b failed and blocked d while c was still running
        return "b" in ran(run_id) and await worker.get_status(run_id) == "running"

    await until(blocked)
    await asyncio.sleep(0.2)
    nodes.gates.setdefault("c", asyncio.Event()).set()  # c resolves d after it was blocked
    assert (await worker.wait_for_result(run_id, timeout_s=20)).status == "failed"
    await worker.retry_run(run_id)
    result = await worker.wait_for_result(run_id, timeout_s=20)
    assert result.status == "completed"
    assert result.context["_outputs.z"] == "z:d:{'b': 'b:a:None', 'c': 'c:a:None'}"
    assert ran(run_id) == {"a": 1, "b": 2, "c": 1, "d": 1, "z": 1}


# --------------------------------------------------------------------------- CLI


async def test_the_cli_commands(
    worker: BullMQAdapter, redis_url: str, prefix: str, tmp_path: Any
) -> None:
    import json

    bp_dir = tmp_path / "bps"
    bp_dir.mkdir()
    for doc in ALL:
        (bp_dir / f"{doc['id']}.json").write_text(json.dumps(doc), encoding="utf-8")

    async def cli(*argv: str) -> int:
        args = [*argv, "--redis", redis_url, "--prefix", prefix, "--blueprints", str(bp_dir)]
        return int(await asyncio.to_thread(main, args))

    run_id = await worker.start_run("gated")
    await nodes.started.setdefault("g", asyncio.Event()).wait()
    assert await cli("pause", run_id) == 0
    assert await worker.get_status(run_id) == "paused"
    assert await cli("pause", run_id) == 1  # already paused
    nodes.gates.setdefault("g", asyncio.Event()).set()
    assert await cli("unpause", run_id) == 0
    assert (await worker.wait_for_result(run_id, timeout_s=20)).status == "completed"
    assert await cli("unpause", run_id) == 1
    assert await cli("retry", run_id) == 2  # completed: nothing to retry

    nodes.failing["c"] = 1
    failed = await worker.start_run("diamond")
    assert (await worker.wait_for_result(failed, timeout_s=20)).status == "failed"
    assert await cli("retry", failed) == 0
    assert (await worker.wait_for_result(failed, timeout_s=20)).status == "completed"
    assert await cli("restart", failed) == 0
    assert await cli("restart", "no-such-run") == 2


async def test_a_sleep_that_ends_while_paused_wakes_after_the_resume(
    worker: BullMQAdapter, client: Redis, prefix: str
) -> None:
    run_id = await worker.start_run("napping")

    async def asleep() -> bool:
        return bool(await client.hexists(f"{prefix}:{{{run_id}}}:acts", "s@~wake"))

    await until(asleep)
    assert await worker.pause_run(run_id) is True
    wake = Job(run_id, "s", (), kind="wake")

    async def woken() -> bool:  # its wake job came and was acknowledged without running
        return await job_state(worker, wake) == "completed"

    await until(woken)
    assert "b" not in ran(run_id)
    assert await worker.resume_run(run_id) is True
    result = await worker.wait_for_result(run_id, timeout_s=20)
    assert result.status == "completed" and ran(run_id) == {"a": 1, "b": 1}


async def test_a_failed_subflow_node_is_not_retried(worker: BullMQAdapter) -> None:
    nodes.failing["c"] = 1
    run_id = await worker.start_run("parent")
    assert (await worker.wait_for_result(run_id, timeout_s=20)).status == "failed"
    with pytest.raises(ValueError, match="is a subflow"):
        await worker.retry_run(run_id)
    assert await worker.get_status(run_id) == "failed"  # untouched
