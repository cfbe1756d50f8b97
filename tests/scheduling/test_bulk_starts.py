"""`start_runs` (docs/scheduling.md): many runs in few round trips, each the same run
`start_run` would have started."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import redis.asyncio as redis
from bullmq_processes import adapter
from sched_nodes import chain, registry

from flowcraft_core import FlowRuntime
from flowcraft_core.cli import main
from flowcraft_core.errors import BlueprintError, SerializationError


async def _commands(url: str) -> dict[str, int]:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def test_start_runs_matches_start_run_and_pipelines_the_creates(
    redis_url: str, prefix: str
) -> None:
    blueprints = [chain("c3", 3), chain("c1", 1, queue="side")]
    starts = [
        ("c3" if i % 2 else "c1", {"_inputs.n0": i}, {"run_id": f"bulk{i}", "priority": i % 3})
        for i in range(60)
    ]
    starts.append(("c3", None, {"run_id": "late", "delay": 0.3}))

    async def scenario() -> None:
        async with adapter(redis_url, prefix, blueprints=blueprints, consume=False) as client:
            # Scripts loaded (each add script BullMQ picks: plain, prioritized, delayed) and
            # connections open, by a first batch of the same shape.
            await client.start_runs(
                [(b, c, {**o, "run_id": f"warm-{o['run_id']}"}) for b, c, o in starts]
            )
            before = await _commands(redis_url)
            ids = await client.start_runs(starts)
            after = await _commands(redis_url)
            assert ids == [options["run_id"] for _, _, options in starts]
            # One EVALSHA per run, in one pipeline; the entry jobs in one addBulk per queue
            # (BullMQ's own script per job), not one round trip per run.
            assert after.get("evalsha", 0) - before.get("evalsha", 0) <= 2 * len(starts) + 4
            assert await client._queue.getJobState("late-n0-0") == "delayed"
            assert await client.bullmq_queue("side").getJobState("bulk0-n0-0") == "waiting"
            async with adapter(
                redis_url,
                prefix,
                blueprints=blueprints,
                registry=registry,
                queues=["flowcraft", "side"],
            ):
                results = [await client.wait_for_result(i, timeout_s=30) for i in ids]
        runtime = FlowRuntime(registry=registry, blueprints=blueprints)
        for (bp_id, context, options), result in zip(starts, results, strict=True):
            local = await runtime.run(bp_id, context, run_id=options["run_id"])
            assert result.status == local.status == "completed"
            assert result.outputs == local.outputs

    asyncio.run(scenario())


def test_start_runs_validates_everything_first_and_reports_existing_ids(
    redis_url: str, prefix: str
) -> None:
    bp = chain("c1", 1)

    async def scenario() -> None:
        async with adapter(redis_url, prefix, blueprints=[bp], consume=False) as client:
            for bad in (
                [("c1", {}, None), ("nope", {}, None)],
                [("c1", {}, {"priority": -1})],
                [("c1", {}, {"colour": "red"})],
                [("c1", {}, {"run_id": "x"}), ("c1", {}, {"run_id": "x"})],
                [("c1", "[1]", None)],
            ):
                with pytest.raises((BlueprintError, SerializationError, ValueError)):
                    await client.start_runs(bad)
            assert await client.list_runs() == []
            await client.start_run("c1", {}, run_id="taken")
            with pytest.raises(ValueError, match="taken"):
                await client.start_runs([("c1", {}, {"run_id": "taken"}), ("c1", {}, None)])
            assert len(await client.list_runs()) == 2  # the other one started
            assert await client.start_runs([]) == []

    asyncio.run(scenario())


def test_start_and_worker_options(
    redis_url: str, prefix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "c1.json").write_text(json.dumps(chain("c1", 1)), encoding="utf-8")
    common = ["--redis", redis_url, "--prefix", prefix, "--blueprints", str(tmp_path)]
    assert main(["start", "c1", "--run-id", "p", "--priority", "4", "--delay", "60", *common]) == 0
    assert capsys.readouterr().out == "p\n"

    async def job_options() -> dict[str, object]:
        async with adapter(redis_url, prefix, blueprints=[chain("c1", 1)], consume=False) as a:
            assert await a._queue.getJobState("p-n0-0") == "delayed"
            job = await a._queue.getJob("p-n0-0")
            return dict(job.opts)

    opts = asyncio.run(job_options())
    assert opts["priority"] == 4 and int(str(opts["delay"])) >= 59_000
    assert main(["start", "c1", "--priority", "3000000", *common]) == 2
    assert "priority" in capsys.readouterr().err
    for bad in (["--rate-limit", "2"], ["--rate-limit", "0/100"], ["--queue", "a:b"]):
        assert main(["worker", *bad, *common]) == 2
        assert bad[1] in capsys.readouterr().err
