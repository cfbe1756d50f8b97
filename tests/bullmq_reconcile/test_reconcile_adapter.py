"""The reconciler on a real Redis and real BullMQ, with in-process adapters: a lost job is found
by `run()` and its run completes; finished job records are replaced; follow-ups lost by a worker
that died right after `complete` are healed by BullMQ redelivery or by `reconcile`; a run whose
reconcile fails is counted and the scan goes on; the `reconcile --once` command prints the stats.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from typing import Any

import pytest
from distributed.test_memory_parity import CASES, comparable, make_registry, n
from reconcile_support import (
    adapter,
    age,
    counted_registry,
    lose_follow_ups_once,
    without_composed_adds,
)
from redis.asyncio import Redis

from flowcraft_bullmq import (
    BullMQAdapter,
    ReconcileStats,
    RedisCoordinationStore,
    create_reconciler,
)
from flowcraft_core import FlowRuntime
from flowcraft_core.cli import main
from flowcraft_core.distributed import Job
from flowcraft_core.distributed.protocol import RESUME, WAKE

CHAIN, _ = CASES["chain"]
IF_ELSE, IF_ELSE_CONTEXT = CASES["if_else_join"]
LOOP, _ = CASES["loop"]
APPROVAL: dict[str, Any] = {
    "id": "approval",
    "nodes": [n("a", "inc"), n("ask", "wait"), n("yes", "inc")],
    "edges": [
        {"source": "a", "target": "ask"},
        {"source": "ask", "target": "yes", "action": "approve"},
    ],
}
SLEEPY: dict[str, Any] = {
    "id": "sleepy",
    "nodes": [n("a", "inc"), n("z", "sleep", params={"duration": "400ms"}), n("b", "inc")],
    "edges": [{"source": "a", "target": "z"}, {"source": "z", "target": "b"}],
}
BLUEPRINTS = [CHAIN, IF_ELSE, LOOP, APPROVAL]
IGNORED = frozenset({"_executionId"})


async def _in_process(blueprint: dict[str, Any], context: dict[str, Any] | None) -> Any:
    runtime = FlowRuntime(registry=make_registry(), blueprints=[blueprint])
    return comparable(await runtime.run(blueprint["id"], context), IGNORED)


def _bull(a: BullMQAdapter) -> Any:
    """The adapter's bullmq.Queue."""
    return a._job_queue_or_fail().queue


async def _state(a: BullMQAdapter, run_id: str, node_id: str) -> str:
    return str(await _bull(a).getJobState(Job(run_id, node_id, ()).job_id))


async def _until(predicate: Any, within: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_run_whose_job_was_deleted_is_found_and_completes(
    redis_url: str, prefix: str, client: Redis
) -> None:
    registry = make_registry()
    # A completed and an awaiting run: never stalled, however old.
    async with adapter(redis_url, prefix, blueprints=BLUEPRINTS, registry=registry) as worker:
        await worker.start_run("chain", run_id="done")
        await worker.start_run("approval", run_id="waits")
        assert (await worker.wait_for_result("done", timeout_s=10)).status == "completed"
        assert (await worker.wait_for_result("waits", timeout_s=10)).status == "awaiting"
    async with adapter(redis_url, prefix, blueprints=BLUEPRINTS, consume=False) as a:
        # No worker consumes: the entry job of "lost" is deleted from the queue; "fresh" is
        # just as stuck but has not been idle long enough.
        await a.start_run("chain", run_id="lost")
        await a.start_run("chain", run_id="fresh")
        assert await _bull(a).remove(Job("lost", "a", ()).job_id) == 1
        for run_id in ("lost", "done", "waits"):
            await age(client, prefix, run_id)
        raw = Redis.from_url(redis_url, decode_responses=False, socket_timeout=None)
        try:  # a client of either decode_responses setting; several SCAN pages
            reconciler = create_reconciler(
                adapter=a, redis=raw, stalled_threshold_s=60, scan_count=1
            )
            assert await reconciler.run() == ReconcileStats(4, 1, 1, 0)
        finally:
            await raw.aclose()
        assert await _state(a, "lost", "a") == "waiting"
        reconciler = create_reconciler(adapter=a, redis=client, stalled_threshold_s=60)
        # Its job is back and waiting: nothing to do, whatever the lease.
        assert await reconciler.run() == ReconcileStats(4, 1, 0, 0)
        assert await a.reconcile("lost") == []
        # A lease held by another reconciler: skipped.
        assert await _bull(a).remove(Job("lost", "a", ()).job_id) == 1
        await client.set(f"{prefix}:{{lost}}:lock:reconcile", "someone", ex=60)
        assert await reconciler.run() == ReconcileStats(4, 1, 0, 0)
        await client.delete(f"{prefix}:{{lost}}:lock:reconcile")
        assert await a.reconcile("lost") == [Job("lost", "a", ()).job_id]
        assert await client.exists(f"{prefix}:{{lost}}:lock:reconcile") == 0
    async with adapter(redis_url, prefix, blueprints=BLUEPRINTS, registry=registry) as worker:
        for run_id in ("lost", "fresh"):
            result = await worker.wait_for_result(run_id, timeout_s=10)
            assert comparable(result, IGNORED) == await _in_process(CHAIN, None)
        assert await reconciler.run() == ReconcileStats(4, 0, 0, 0)
        assert await worker.reconcile("lost") == []  # a finished run is owed nothing


async def test_a_finished_job_record_is_removed_and_its_activation_enqueued_again(
    redis_url: str, prefix: str, client: Redis
) -> None:
    """A job that ended without completing its activation (e.g. acknowledged by a worker that
    lost it): its record is removed and the job added again under the same id."""
    registry, calls = counted_registry()
    async with adapter(redis_url, prefix, blueprints=[CHAIN], registry=registry) as a:
        assert a._worker is not None
        handle = a._worker.handle
        dropped: list[str] = []

        async def drop_b_once(job: Job, **options: Any) -> None:
            if job.node_id == "b" and not dropped:
                dropped.append(job.job_id)
                return
            await handle(job, **options)

        a._worker.handle = drop_b_once  # type: ignore[method-assign]
        run_id = await a.start_run("chain")
        await _until(lambda: _completed(a, run_id, "b"))
        assert await a.get_status(run_id) == "running"
        await age(client, prefix, run_id)
        reconciler = create_reconciler(adapter=a, redis=client, stalled_threshold_s=60)
        assert await reconciler.run() == ReconcileStats(1, 1, 1, 0)
        result = await a.wait_for_result(run_id, timeout_s=10)
    assert comparable(result, IGNORED) == await _in_process(CHAIN, None)
    assert sorted(calls.values()) == [1, 1, 1]  # b ran once: its first job never ran it


async def _completed(a: BullMQAdapter, run_id: str, node_id: str) -> bool:
    return await _state(a, run_id, node_id) == "completed"


async def _idle(a: BullMQAdapter) -> bool:
    """No job of the queue is waiting, delayed or running."""
    counts = await _bull(a).getJobCounts("active", "waiting", "delayed", "prioritized")
    return not any(counts.values())


async def test_a_crash_between_complete_and_enqueue_is_healed_by_redelivery(
    redis_url: str, prefix: str, client: Redis
) -> None:
    registry, calls = counted_registry()
    async with adapter(redis_url, prefix, blueprints=[CHAIN], registry=registry) as a:
        assert a._worker is not None
        queue = a._worker.queue
        failures: list[int] = []

        class FlakyQueue:
            async def add_bulk(self, jobs: Any) -> None:
                if not failures:
                    failures.append(len(jobs))
                    raise ConnectionError("the worker lost Redis right after complete")
                await queue.add_bulk(jobs)

        a._worker.queue = FlakyQueue()
        without_composed_adds(a)
        run_id = await a.start_run("chain")
        result = await a.wait_for_result(run_id, timeout_s=15)
    assert failures == [1]
    assert await RedisCoordinationStore(client, prefix=prefix).frontier(run_id) == []
    assert comparable(result, IGNORED) == await _in_process(CHAIN, None)
    # The retried job replayed the recorded successor; no node ran twice.
    assert sorted(calls.values()) == [1, 1, 1]


@pytest.mark.parametrize(
    ("blueprint", "context", "lost", "enqueues"),
    [
        (CHAIN, None, lambda a: bool(a.ready), True),
        (IF_ELSE, IF_ELSE_CONTEXT, lambda a: bool(a.skipped), True),
        (LOOP, None, lambda a: bool(a.loop_ends), False),
    ],
    ids=["ready", "skip", "loop-end"],
)
async def test_follow_ups_lost_after_complete_are_healed_by_reconcile(
    redis_url: str,
    prefix: str,
    client: Redis,
    blueprint: dict[str, Any],
    context: dict[str, Any] | None,
    lost: Any,
    enqueues: bool,
) -> None:
    registry, calls = counted_registry()
    async with adapter(redis_url, prefix, blueprints=[blueprint], registry=registry) as a:
        dying = lose_follow_ups_once(a, lost)
        run_id = await a.start_run(blueprint["id"], context)
        await asyncio.wait_for(dying.crashed.wait(), 10)
        await _until(lambda: _idle(a))  # whatever else was in flight settles
        assert await a.get_status(run_id) == "running"
        assert dying.lost is not None
        await age(client, prefix, run_id)
        reconciler = create_reconciler(adapter=a, redis=client, stalled_threshold_s=60)
        assert await reconciler.run() == ReconcileStats(1, 1, int(enqueues), 0)
        result = await a.wait_for_result(run_id, timeout_s=10)
    assert comparable(result, IGNORED) == await _in_process(blueprint, context)
    assert set(calls.values()) == {1}  # the crash came after complete: nothing ran twice


async def test_a_lost_wake_job_is_added_again_once_the_sleep_is_over(
    redis_url: str, prefix: str, client: Redis
) -> None:
    """A sleeping activation stays owed: its node job, run again, re-adds its wake job with
    the remaining delay. A run is not stalled before its wakeAt."""
    async with adapter(redis_url, prefix, blueprints=[SLEEPY], registry=make_registry()) as a:
        run_id = await a.start_run("sleepy")
        wake = Job(run_id, "z", (), kind=WAKE).job_id
        await _until(lambda: _has_state(a, wake, "delayed"))
        assert await _bull(a).remove(wake) == 1
        reconciler = create_reconciler(adapter=a, redis=client, stalled_threshold_s=0.3)
        assert await reconciler.run() == ReconcileStats(1, 0, 0, 0)  # asleep, not stalled
        await asyncio.sleep(0.8)  # past wakeAt + the threshold: nothing woke it
        assert await a.get_status(run_id) == "running"
        assert await reconciler.run() == ReconcileStats(1, 1, 1, 0)
        result = await a.wait_for_result(run_id, timeout_s=10)
    assert comparable(result, IGNORED) == await _in_process(SLEEPY, None)


async def test_a_resume_whose_job_was_lost_is_completed_by_reconcile(
    redis_url: str, prefix: str, client: Redis
) -> None:
    """The claim records the resume, so the claimed wait stays owed until it completes: a
    client that died between its claim and its `-~resume0` job loses nothing."""
    async with adapter(redis_url, prefix, blueprints=[APPROVAL], registry=make_registry()) as w:
        await w.start_run("approval", run_id="asked")
        assert (await w.wait_for_result("asked", timeout_s=10)).status == "awaiting"
    async with adapter(redis_url, prefix, blueprints=[APPROVAL], consume=False) as a:
        assert await a.resume_with_action("asked", "approve", 7) == "resumed"
        assert await _bull(a).remove(Job("asked", "ask", (), kind=RESUME).job_id) == 1
        await age(client, prefix, "asked")
        reconciler = create_reconciler(adapter=a, redis=client, stalled_threshold_s=60)
        assert await reconciler.run() == ReconcileStats(1, 1, 1, 0)
    async with adapter(redis_url, prefix, blueprints=[APPROVAL], registry=make_registry()) as w:
        result = await w.wait_for_result("asked", timeout_s=10)
    assert result.status == "completed"
    assert (result.context["_outputs.ask"], result.context["_outputs.yes"]) == (7, 8)


async def _has_state(a: BullMQAdapter, job_id: str, state: str) -> bool:
    return bool(await _bull(a).getJobState(job_id) == state)


async def test_a_failing_reconcile_is_counted_and_the_scan_goes_on(
    redis_url: str,
    prefix: str,
    client: Redis,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Any,
) -> None:
    registry, _ = counted_registry()
    async with adapter(redis_url, prefix, blueprints=BLUEPRINTS, registry=registry) as a:
        dying = lose_follow_ups_once(a, lambda applied: bool(applied.skipped))
        await a.start_run("ifelse", IF_ELSE_CONTEXT, run_id="skips")
        await asyncio.wait_for(dying.crashed.wait(), 10)
        await _until(lambda: _idle(a))
    async with adapter(redis_url, prefix, blueprints=BLUEPRINTS, consume=False) as a:
        await a.start_run("chain", run_id="lost")
        assert await _bull(a).remove(Job("lost", "a", ()).job_id) == 1
    for run_id in ("skips", "lost"):
        await age(client, prefix, run_id)
    # A process without the "ifelse" blueprint cannot propagate the pending skip.
    async with adapter(redis_url, prefix, blueprints=[CHAIN], consume=False) as partial:
        reconciler = create_reconciler(adapter=partial, redis=client, stalled_threshold_s=60)
        with caplog.at_level(logging.ERROR, logger="flowcraft_bullmq.reconciler"):
            assert await reconciler.run() == ReconcileStats(2, 2, 1, 1)
    assert any(
        "reconcile of run skips failed" in r.getMessage() and "ifelse" in r.exc_text
        for r in caplog.records
        if r.exc_text
    )
    # The command line, without the blueprints (the jobs are back already: x of "skips" was
    # re-enqueued before its propagation failed), then with them.
    argv = ["reconcile", "--redis", redis_url, "--prefix", prefix, "--threshold", "60"]
    assert await asyncio.to_thread(main, argv) == 1  # the command runs its own event loop
    out, _ = capsys.readouterr()
    assert out.splitlines() == [
        "scanned_keys: 2",
        "stalled_runs: 2",
        "reconciled_runs: 0",
        "failed_runs: 1",
    ]
    for blueprint in BLUEPRINTS:
        (tmp_path / f"{blueprint['id']}.json").write_text(json.dumps(blueprint))
    assert await asyncio.to_thread(main, [*argv, "--once", "--blueprints", str(tmp_path)]) == 0
    out, _ = capsys.readouterr()
    # y's skip is propagated (j now waits on x only); that enqueues nothing.
    assert out.splitlines() == [
        "scanned_keys: 2",
        "stalled_runs: 2",
        "reconciled_runs: 0",
        "failed_runs: 0",
    ]
    frontier = await RedisCoordinationStore(client, prefix=prefix).frontier("skips")
    assert [entry.akey for entry in frontier] == ["x@"]
    async with adapter(redis_url, prefix, blueprints=BLUEPRINTS, registry=registry) as a:
        for run_id, (blueprint, context) in {
            "skips": (IF_ELSE, IF_ELSE_CONTEXT),
            "lost": (CHAIN, None),
        }.items():
            result = await a.wait_for_result(run_id, timeout_s=10)
            assert comparable(result, IGNORED) == await _in_process(blueprint, context)


async def test_the_reconciler_validates_its_options(redis_url: str, client: Redis) -> None:
    a = BullMQAdapter(connection=redis_url, blueprints=[])
    for threshold in (-1, float("nan"), True):
        with pytest.raises(ValueError, match="stalled_threshold_s"):
            create_reconciler(adapter=a, redis=client, stalled_threshold_s=threshold)
    for count in (0, 1.5, True):
        with pytest.raises(ValueError, match="scan_count"):
            create_reconciler(
                adapter=a,
                redis=client,
                stalled_threshold_s=1,
                scan_count=count,  # type: ignore[arg-type]
            )
    async with a:
        reconciler = create_reconciler(adapter=a, redis=client, stalled_threshold_s=1)
        with pytest.raises(ValueError, match="invalid cron expression"):
            await reconciler.schedule(cron="every tuesday")
        assert not await reconciler.unschedule()
        await reconciler.schedule(cron="0 3 * * *")
        assert await reconciler.unschedule()


async def test_a_deleted_item_job_is_found_and_its_batch_finishes(
    redis_url: str, prefix: str, client: Redis
) -> None:
    """An item recorded started whose job is gone from the queue: the run stalls (the gather
    waits for every item) until the reconciler enqueues the item's job again."""
    blueprint, context = CASES["batch_chunked"]
    registry, calls = counted_registry()
    async with adapter(redis_url, prefix, blueprints=[blueprint], registry=registry) as a:
        assert a._worker is not None
        queue = a._worker.queue
        deleted: list[str] = []

        class DeletingQueue:
            async def add_bulk(self, jobs: Any) -> None:
                for job in jobs:
                    if job.node_id == "s[2]" and not deleted:
                        # Added (held back, so no worker takes it first), then deleted.
                        await queue.add_bulk([dataclasses.replace(job, delay_ms=600_000)])
                        assert await _bull(a).remove(job.job_id) == 1
                        deleted.append(job.job_id)
                await queue.add_bulk([job for job in jobs if job.job_id not in deleted])

        a._worker.queue = DeletingQueue()
        without_composed_adds(a)
        run_id = await a.start_run(blueprint["id"], context)
        await _until(lambda: _idle(a))
        assert deleted == [f"{run_id}-s~5b2~5d-0"]
        assert await a.get_status(run_id) == "running"
        frontier = await RedisCoordinationStore(client, prefix=prefix).frontier(run_id)
        assert [entry.akey for entry in frontier] == ["s[2]@"]
        await age(client, prefix, run_id)
        reconciler = create_reconciler(adapter=a, redis=client, stalled_threshold_s=60)
        assert await reconciler.run() == ReconcileStats(1, 1, 1, 0)
        result = await a.wait_for_result(run_id, timeout_s=10)
    assert comparable(result, IGNORED) == await _in_process(blueprint, context)
    assert set(calls.values()) == {1}  # every item ran once
