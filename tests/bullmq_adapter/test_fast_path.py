"""The worker's hot path: our scripts and BullMQ's per-job ones on the multiplexed connection,
the same results without it, one add per job without SCRIPT EXISTS, and the uvloop switch."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import pytest
import redis.asyncio as redis
from adapter_support import adapter, chain, e, n
from distributed.test_memory_parity import make_registry

from flowcraft_bullmq.cli import _loop_factory
from flowcraft_bullmq.multiplex import Multiplexer
from flowcraft_core.distributed import Job

FAN: dict[str, Any] = {
    "id": "fan",
    "nodes": [n("a", "inc"), *(n(f"p{i}", "inc") for i in range(6)), n("z", "sum")],
    "edges": [*(e("a", f"p{i}") for i in range(6)), *(e(f"p{i}", "z") for i in range(6))],
}


async def _results(redis_url: str, prefix: str, *, multiplex: bool) -> list[Any]:
    async with adapter(
        redis_url,
        prefix,
        registry=make_registry(),
        blueprints=[chain(4), FAN],
        multiplex=multiplex,
    ) as a:
        assert (a._multiplexer is not None) == multiplex
        runs = [await a.start_run(bp, {"_inputs.a": 1}) for bp in ("chain", "fan", "chain")]
        results = [await a.wait_for_result(r, timeout_s=30) for r in runs]
    return [(r.status, r.context.get("_outputs.n3"), r.context.get("_outputs.z")) for r in results]


@pytest.mark.parametrize("multiplex", [True, False])
async def test_chains_and_fan_outs_complete_with_and_without_the_multiplexer(
    redis_url: str, prefix: str, multiplex: bool
) -> None:
    assert await _results(redis_url, prefix, multiplex=multiplex) == [
        ("completed", 4, None),
        ("completed", None, 6 * 3),
        ("completed", 4, None),
    ]


async def test_bullmq_per_job_scripts_run_on_the_multiplexed_connection(
    redis_url: str, prefix: str
) -> None:
    async with adapter(redis_url, prefix, registry=make_registry(), blueprints=[chain(3)]) as a:
        via = a._multiplexer
        assert isinstance(via, Multiplexer)
        commands = a._bull_worker.scripts.commands
        # moveToActive+load and moveToFinished (composed.py) over the routed script.
        assert {commands["moveToActive"].via, commands["moveToFinished"].command.via} == {via}
        adds = a._queue.scripts.commands
        assert {adds[name].via for name in ("addStandardJob", "addDelayedJob")} == {via}
        sent: list[bytes] = []
        enqueue = via._enqueue

        def recording(command: bytes) -> asyncio.Future[Any]:
            sent.append(command)  # every command leaves through here, packed
            return enqueue(command)

        via._enqueue = recording  # type: ignore[method-assign]
        run_id = await a.start_run("chain")
        assert (await a.wait_for_result(run_id, timeout_s=30)).status == "completed"
    store = a._store.store  # type: ignore[union-attr]
    shas = {commands["moveToActive"].script.sha, commands["moveToFinished"].command.script.sha}
    # The entry job is added by BullMQ's add script; its successors by complete+add; every
    # job's load comes with its fetch (moveToActive+load).
    shas |= {store.adds.script.sha, adds["addStandardJob"].script.sha}
    evalshas = {c.split(b"\r\n")[4].decode() for c in sent if b"\r\nEVALSHA\r\n" in c}
    assert shas <= evalshas
    assert store._scripts.load.sha not in evalshas


async def test_one_job_is_added_without_script_exists(redis_url: str, prefix: str) -> None:
    async with adapter(
        redis_url, prefix, blueprints=[chain(2)], consume=False, multiplex=False
    ) as a:
        queue = a._job_queue_or_fail()
        await queue.add_bulk([Job("r1", "n0", ())])  # loads the add script once
        client = redis.from_url(redis_url, decode_responses=True)
        try:
            before = await client.info("commandstats")
            await queue.add_bulk([Job("r2", "n0", ())])
            await queue.add_bulk([Job("r2", "n0", ())])  # an existing id: ignored
            after = await client.info("commandstats")
            counts = await a._queue.getJobCounts("wait")
        finally:
            await client.aclose()

    def calls(stats: dict[str, Any], name: str) -> int:
        return int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))

    assert calls(after, "script|exists") == calls(before, "script|exists")
    assert calls(after, "evalsha") - calls(before, "evalsha") >= 2
    assert counts["wait"] == 2


async def test_many_jobs_through_the_multiplexer_are_each_added_once(
    redis_url: str, prefix: str
) -> None:
    async with adapter(redis_url, prefix, blueprints=[chain(2)], consume=False) as a:
        assert a._multiplexer is not None
        queue = a._job_queue_or_fail()
        jobs = [Job("r1", f"n{i}", ()) for i in range(50)]
        await queue.add_bulk(jobs)
        await queue.add_bulk(jobs[:10])  # replayed follow-ups: ignored by id
        delayed = Job("r1", "late", (), delay_ms=60_000)
        await queue.add_bulk([delayed, jobs[0]])
        counts = await a._queue.getJobCounts("wait", "delayed")
        stored = await a._queue.getJob(jobs[7].job_id)
    assert counts == {"wait": 50, "delayed": 1}
    assert stored.data == jobs[7].to_data()


def test_the_worker_loop_is_uvloop_unless_refused() -> None:
    import uvloop

    assert _loop_factory(argparse.Namespace(uvloop=True)) is uvloop.new_event_loop
    assert _loop_factory(argparse.Namespace(uvloop=False)) is None
    with asyncio.Runner(loop_factory=_loop_factory(argparse.Namespace(uvloop=True))) as runner:
        assert isinstance(runner.get_loop(), uvloop.Loop)
