"""`flowcraft worker --metrics-port`: a real worker process's Prometheus endpoint, scraped after
runs, counts node executions by outcome, retries, node durations, runs started and finished by
status, the queue's waiting jobs, reconcile passes and the runs they resumed."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

from bullmq_processes import adapter
from bullmq_reconcile.reconcile_support import age
from obs_nodes import BLUEPRINTS
from obs_support import ObsWorker, aget, ports, read_spans, until
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from flowcraft_bullmq import create_reconciler
from flowcraft_core.distributed import Job

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_a_workers_metrics_count_its_runs_nodes_queue_and_reconciles(
    redis_url: str,
    prefix: str,
    client: Redis,
    spawn: Callable[..., ObsWorker],
    tmp_path: Path,
) -> None:
    (port,) = ports(1)
    url = f"http://127.0.0.1:{port}/metrics"
    spans = tmp_path / "spans.jsonl"
    async with adapter(redis_url, prefix, blueprints=BLUEPRINTS, consume=False) as a:
        # A run whose entry job was lost before any worker took it: a reconcile tick heals it.
        await a.start_run("fan", run_id="orphan")
        assert await a._job_queue_or_fail().queue.remove(Job("orphan", "a", ()).job_id) == 1
        await age(client, prefix, "orphan")
        reconciler = create_reconciler(adapter=a, redis=client, stalled_threshold_s=60)
        await reconciler.schedule(cron="*/1 * * * * *")
        worker = spawn(
            redis_url,
            prefix,
            "--metrics-port", str(port),
            "--http-host", "127.0.0.1",
            "--concurrency", "1",
            "--traces", f"jsonl:{spans}",  # both on: one event bus feeds both
        )  # fmt: skip
        await worker.ready()
        assert (await a.wait_for_result("orphan", timeout_s=30)).status == "completed"
        await reconciler.unschedule()

        # One slow node holds the only slot: the next runs' entry jobs wait in the queue.
        slow = await a.start_run("slow")
        await until(lambda: _active(a), what="the slow node to start")
        fans = [await a.start_run("fan") for _ in range(3)]
        waiting = parse((await aget(url))[1])
        assert value(waiting, "flowcraft_queue_jobs", queue="flowcraft", state="waiting") >= 3
        assert value(waiting, "flowcraft_queue_jobs", queue="flowcraft", state="active") == 1

        flaky = await a.start_run("flaky")
        boom = await a.start_run("boom")
        for run_id in [slow, *fans, flaky, boom]:
            await a.wait_for_result(run_id, timeout_s=30)
    status, text = await aget(url)
    assert status == 200
    samples = parse(text)

    def count(name: str, **labels: str) -> float:
        return value(samples, name, **labels)

    for blueprint, runs in (("fan", 4), ("slow", 1), ("flaky", 1), ("boom", 1)):
        assert count("flowcraft_runs_started_total", blueprint=blueprint) == runs, blueprint
    assert count("flowcraft_runs_finished_total", blueprint="fan", status="completed") == 4
    assert count("flowcraft_runs_finished_total", blueprint="boom", status="failed") == 1
    assert count("flowcraft_runs_finished_total", blueprint="flaky", status="completed") == 1
    execs = "flowcraft_node_executions_total"
    assert count(execs, blueprint="fan", node="b3", outcome="succeeded") == 4
    assert count(execs, blueprint="boom", node="x", outcome="failed") == 1
    assert count(execs, blueprint="flaky", node="f", outcome="succeeded") == 1
    assert count("flowcraft_node_retries_total", blueprint="flaky", node="f") == 1
    duration = "flowcraft_node_duration_seconds"
    assert count(f"{duration}_count", blueprint="slow", node="s") == 1
    assert 2.9 <= count(f"{duration}_sum", blueprint="slow", node="s") < 10
    assert count(f"{duration}_count", blueprint="fan", node="b1") == 4
    assert count(f"{duration}_bucket", blueprint="fan", node="b1", le="0.1") == 0  # 0.15 s
    assert count("flowcraft_reconciler_passes_total", queue="flowcraft") >= 1
    assert count("flowcraft_reconciler_runs_resumed_total", queue="flowcraft") == 1
    assert count("flowcraft_queue_jobs", queue="flowcraft", state="waiting") == 0
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, worker.stderr
    traced = {s["attributes"]["flowcraft.run_id"] for s in read_spans(spans)}
    assert {slow, *fans, flaky, boom} <= traced


async def _active(a: object) -> bool:
    queue = a._job_queue_or_fail().queue  # type: ignore[attr-defined]
    counts = await queue.getJobCounts("active")
    await asyncio.sleep(0.3)  # let the node itself start after its job is taken
    return bool(counts.get("active"))
