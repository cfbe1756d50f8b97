"""Compensation on Redis (BullMQAdapter): the same results as in-process, through a worker in
this process and through real `flowcraft worker` processes, one of them SIGKILLed in the
middle of a compensation; the reconciler re-enqueues a lost compensation job."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bullmq_processes import WorkerProcess, adapter
from redis.asyncio import Redis
from saga_nodes import chain, looping_saga, registry, saga
from test_compensation_local import SCENARIOS, comparable, trip

from flowcraft_bullmq import create_reconciler
from flowcraft_core import FlowRuntime, load_blueprint
from flowcraft_core.distributed import Job

HERE = Path(__file__).parent
#: Fast recovery of a dead worker's job: back within ~lock + 2 x stalled interval.
FAST = ["--lock-duration", "2", "--stalled-interval", "1"]
#: reserve -> charge -> ship -> notify; charge's undo is slow, notify fails.
SLOW_UNDO = chain(
    ["reserve", "charge", "ship", "notify"],
    {"reserve": "saga.undo_traced", "charge": "saga.undo_slow", "ship": "saga.undo_traced"},
    bp_id="saga-slow",
)


@pytest.mark.parametrize(
    ("doc", "context"), [s[1:] for s in SCENARIOS], ids=[s[0] for s in SCENARIOS]
)
async def test_redis_compensates_like_in_process(
    redis_url: str, prefix: str, doc: dict[str, Any], context: dict[str, Any]
) -> None:
    bp = load_blueprint(doc)
    expected = await FlowRuntime(registry=registry).run(bp, context, run_id="r1")
    async with adapter(redis_url, prefix, blueprints=[bp], registry=registry) as a:
        await a.start_run(bp.id, context, run_id="r1")
        got = await a.wait_for_result("r1", timeout_s=30)
    assert comparable(got) == comparable(expected)


async def test_queue_retries_compensate_the_same(redis_url: str, prefix: str) -> None:
    """retry_mode="queue": node retries are BullMQ attempts; a compensation still retries
    inside its one job, with the node's settings."""
    doc = saga(compensations={"reserve": "saga.undo_flaky", "charge": "saga.undo"}, retries=2)
    bp = load_blueprint(doc)
    context = {"failAt": "ship"}
    expected = await FlowRuntime(registry=registry).run(bp, context, run_id="q1")
    async with adapter(
        redis_url, prefix, blueprints=[bp], registry=registry, retry_mode="queue"
    ) as a:
        await a.start_run(bp.id, context, run_id="q1")
        got = await a.wait_for_result("q1", timeout_s=30)
    assert comparable(got) == comparable(expected)
    assert got.compensated == ["charge", "reserve"]


async def test_opt_out_per_run(redis_url: str, prefix: str) -> None:
    bp = load_blueprint(saga())
    async with adapter(redis_url, prefix, blueprints=[bp], registry=registry) as a:
        run_id = await a.start_run(bp.id, {"failAt": "ship"}, compensate=False)
        result = await a.wait_for_result(run_id, timeout_s=30)
    assert result.status == "failed" and result.compensated == []
    assert "undoLog" not in result.context


async def test_the_reconciler_re_enqueues_a_lost_compensation_job(
    redis_url: str, prefix: str, client: Redis
) -> None:
    bp = load_blueprint(saga())
    async with adapter(redis_url, prefix, blueprints=[bp], registry=registry, consume=False) as a:
        run_id = await a.start_run(bp.id, {"failAt": "ship"})
        assert a._worker is not None
        for node in ("reserve", "charge", "ship"):  # this process runs the node jobs by hand
            await a._worker.handle(Job(run_id, node, ()))
        assert await a.get_status(run_id) == "compensating"
        assert await a.get_result(run_id) is None
        assert await a.cancel_run(run_id) is False  # it failed already
        assert await a.pause_run(run_id) is False
        with pytest.raises(TimeoutError):
            await a.wait_for_result(run_id, timeout_s=0.3)  # not final while compensating
        queue = a._job_queue_or_fail().queue
        compensate = f"{run_id}-~compensate"
        assert await queue.remove(compensate) == 1  # lost
        await client.hset(f"{prefix}:{{{run_id}}}:meta", "progressAt", time.time() - 600)
        stats = await create_reconciler(adapter=a, redis=client, stalled_threshold_s=60).run()
        assert (stats.stalled_runs, stats.reconciled_runs) == (1, 1)
        assert await queue.getJobState(compensate) == "waiting"
        await a.start()
        result = await a.wait_for_result(run_id, timeout_s=30)
    assert result.compensated == ["charge", "reserve"]


async def test_a_loop_on_redis(redis_url: str, prefix: str) -> None:
    bp = load_blueprint(looping_saga())
    expected = await FlowRuntime(registry=registry).run(bp, {"failAt": "loop-2"}, run_id="lp")
    async with adapter(redis_url, prefix, blueprints=[bp], registry=registry) as a:
        await a.start_run(bp.id, {"failAt": "loop-2"}, run_id="lp")
        got = await a.wait_for_result("lp", timeout_s=30)
    assert comparable(got) == comparable(expected)
    assert got.compensated == ["book", "book", "start"]


async def test_a_subflow_child_compensates_then_its_parent(redis_url: str, prefix: str) -> None:
    bps = [load_blueprint(trip()), load_blueprint(saga())]
    expected = await FlowRuntime(registry=registry, blueprints=bps).run(
        "trip", {"failAt": "ship"}, run_id="t1"
    )
    async with adapter(redis_url, prefix, blueprints=bps, registry=registry) as a:
        await a.start_run("trip", {"failAt": "ship"}, run_id="t1")
        got = await a.wait_for_result("t1", timeout_s=30)
        kid = await a.get_result("t1-sub-0")
    assert comparable(got) == comparable(expected)
    assert got.compensated == ["hold"]
    assert kid is not None and kid.compensated == ["charge", "reserve"]


# --------------------------------------------------------------------------- processes


@pytest.fixture
def spawn(redis_url: str, prefix: str, tmp_path: Path) -> Iterator[Any]:
    directory = tmp_path / "blueprints"
    directory.mkdir()
    for doc in (SLOW_UNDO, saga()):
        (directory / f"{doc['id']}.json").write_text(json.dumps(doc), encoding="utf-8")
    started: list[WorkerProcess] = []

    def start(*extra: str) -> WorkerProcess:
        args = [
            "--redis", redis_url,
            "--prefix", prefix,
            "--registry", "saga_nodes:registry",
            "--blueprints", str(directory),
            "--concurrency", "2",
            *extra,
        ]  # fmt: skip
        worker = WorkerProcess(args, tmp_path / "trace.txt", HERE)
        started.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.kill()


def _trace(tmp_path: Path) -> list[tuple[int, str, str]]:
    path = tmp_path / "trace.txt"
    if not path.exists():
        return []
    lines = (line.split() for line in path.read_text().splitlines())
    return [(int(pid), what, act) for pid, what, act in lines]


async def test_worker_processes_compensate_like_in_process(
    redis_url: str, prefix: str, spawn: Any
) -> None:
    workers = [spawn(), spawn()]
    await asyncio.gather(*(w.ready() for w in workers))
    bp = load_blueprint(saga())
    runtime = FlowRuntime(registry=registry)
    async with adapter(redis_url, prefix, blueprints=[bp], consume=False) as a:
        for fail_at in ("reserve", "charge", "ship", "notify", None):
            context = {"failAt": fail_at} if fail_at else {}
            run_id = f"p-{fail_at}"
            await a.start_run(bp.id, context, run_id=run_id)
            got = await a.wait_for_result(run_id, timeout_s=30)
            expected = await runtime.run(bp, context, run_id=run_id)
            assert comparable(got) == comparable(expected), fail_at


async def test_a_worker_killed_during_a_compensation_neither_skips_nor_repeats_one(
    redis_url: str, prefix: str, spawn: Any, tmp_path: Path
) -> None:
    doomed = spawn(*FAST)
    await doomed.ready()
    bp = load_blueprint(SLOW_UNDO)
    async with adapter(redis_url, prefix, blueprints=[bp], consume=False) as a:
        run_id = await a.start_run(bp.id, {"failAt": "notify"}, run_id="kill")
        slow = f"{run_id}-charge-0-~compensate"
        deadline = time.monotonic() + 30
        while (doomed.proc.pid, "start", slow) not in _trace(tmp_path):
            assert time.monotonic() < deadline, doomed.stderr
            await asyncio.sleep(0.02)
        doomed.kill()  # SIGKILL in the middle of charge's 1.5 s undo
        assert await a.get_status(run_id) == "compensating"
        assert await a.get_result(run_id) is None
        survivor = spawn(*FAST)
        await survivor.ready()
        result = await a.wait_for_result(run_id, timeout_s=40)
    expected = await FlowRuntime(registry=registry).run(bp, {"failAt": "notify"}, run_id="kill")
    assert comparable(result) == comparable(expected)
    assert result.compensated == ["ship", "charge", "reserve"]
    trace = _trace(tmp_path)
    starts = Counter(act for _, what, act in trace if what == "start")
    # ship's undo was recorded done (with its writes) before the kill: not run again;
    # charge's was in flight: run again (at least once); reserve's ran once, by the survivor.
    assert starts == Counter(
        {f"{run_id}-ship-0-~compensate": 1, slow: 2, f"{run_id}-reserve-0-~compensate": 1}
    )
    assert {p for p, what, act in trace if act == slow} == {doomed.proc.pid, survivor.proc.pid}
    assert [entry[0] for entry in result.context["undoLog"]] == ["ship", "charge", "reserve"]


async def test_metrics_count_a_compensated_run_once_as_failed(redis_url: str, prefix: str) -> None:
    """`compensating` is not an end: the worker's metrics count the run when it is failed."""
    from flowcraft_bullmq.metrics import MeteredAdapter, WorkerMetrics

    metrics = WorkerMetrics(queue_name="flowcraft")
    bp = load_blueprint(saga())
    a = MeteredAdapter(
        metrics=metrics, connection=redis_url, registry=registry, blueprints=[bp], prefix=prefix
    )
    await a.start()
    try:
        run_id = await a.start_run(bp.id, {"failAt": "ship"})
        assert (await a.wait_for_result(run_id, timeout_s=30)).compensated == ["charge", "reserve"]
    finally:
        await a.close(timeout_s=10)
    finished = {
        sample.labels["status"]: sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "flowcraft_runs_finished_total"
    }
    assert finished == {"failed": 1.0}


async def test_the_cli_starts_a_saga_with_and_without_compensation(
    redis_url: str, prefix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flowcraft_core.cli import main

    directory = tmp_path / "bps"
    directory.mkdir()
    (directory / "saga.json").write_text(json.dumps(saga()), encoding="utf-8")
    bp = load_blueprint(saga())
    options = ["--redis", redis_url, "--prefix", prefix, "--blueprints", str(directory)]
    async with adapter(redis_url, prefix, blueprints=[bp], registry=registry):
        outputs = []
        for extra in ([], ["--no-compensate"]):
            argv = ["start", "saga", "--context", '{"failAt": "ship"}', "--wait", "--json"]
            code = await asyncio.to_thread(main, [*argv, *extra, *options])
            assert code == 1  # failed
            outputs.append(json.loads(capsys.readouterr().out))
    assert outputs[0]["compensated"] == ["charge", "reserve"]
    assert outputs[1]["compensated"] == [] and "undoLog" not in outputs[1]["context"]
