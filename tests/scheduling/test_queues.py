"""Per-node queues (docs/scheduling.md): a node with `config.queue` runs only on workers that
consume that queue, and the run still finishes as one run, with the in-process result."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from bullmq_processes import adapter, worker_processes
from sched_nodes import chain, registry

from blueprints.scheduling.nodes import registry as example_registry
from flowcraft_core import FlowRuntime, load_blueprint
from flowcraft_core.distributed import LocalCluster
from flowcraft_core.errors import BlueprintError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "blueprints" / "scheduling"


def _outputs_without_pids(context: dict[str, Any]) -> dict[str, Any]:
    return {
        key: {k: v for k, v in value.items() if k != "ranOn"}
        for key, value in context.items()
        if key.startswith("_outputs.")
    }


def test_gpu_node_runs_on_the_gpu_worker_and_the_run_finishes(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    """One worker process per queue: the pids in the outputs say who ran what."""
    common = [
        "--redis", redis_url,
        "--prefix", prefix,
        "--registry", "blueprints.scheduling.nodes:registry",
        "--blueprints", str(EXAMPLE),
        "--concurrency", "2",
    ]  # fmt: skip
    bp = load_blueprint(EXAMPLE / "thumbnail.yaml")
    with (
        worker_processes(1, [*common, "--queue", "flowcraft"], tmp_path / "a", REPO) as plain,
        worker_processes(1, [*common, "--queue", "gpu"], tmp_path / "b", REPO) as gpu,
    ):

        async def scenario() -> list[Any]:
            async with adapter(redis_url, prefix, blueprints=[bp], consume=False) as client:
                ids = [
                    await client.start_run("thumbnail", {"url": f"img{i}.png"}) for i in range(4)
                ]
                return [await client.wait_for_result(i, timeout_s=60) for i in ids]

        results = asyncio.run(scenario())
    plain_pid, gpu_pid = plain[0].proc.pid, gpu[0].proc.pid
    local = FlowRuntime(registry=example_registry, blueprints=[bp])
    for i, result in enumerate(results):
        assert result.status == "completed", result.errors
        outputs = result.context
        assert outputs["_outputs.fetch"]["ranOn"] == plain_pid
        assert outputs["_outputs.render"]["ranOn"] == gpu_pid
        assert outputs["_outputs.publish"]["ranOn"] == plain_pid
        same = asyncio.run(local.run("thumbnail", {"url": f"img{i}.png"}))
        assert _outputs_without_pids(outputs) == _outputs_without_pids(same.context)


def test_jobs_of_a_routed_node_wait_on_its_queue_until_a_worker_consumes_it(
    redis_url: str, prefix: str
) -> None:
    """Without a `gpu` consumer the run stops at the gpu node (its job waits on `gpu`); a
    worker of `gpu` alone then runs that node and puts the next one back on the default
    queue, whose worker finishes the run."""
    bp = chain("routed", 3, queue="gpu")

    async def scenario() -> None:
        async with adapter(redis_url, prefix, blueprints=[bp], registry=registry) as default:
            run_id = await default.start_run("routed", {}, priority=3)
            gpu_queue = default.bullmq_queue("gpu")
            for _ in range(200):
                if await gpu_queue.getJobState(f"{run_id}-n1-0") == "prioritized":
                    break
                await asyncio.sleep(0.02)
            assert await gpu_queue.getJobState(f"{run_id}-n1-0") == "prioritized"
            assert await default.get_status(run_id) == "running"
            async with adapter(
                redis_url, prefix, blueprints=[bp], registry=registry, queues=["gpu"]
            ) as gpu:
                assert gpu.queues == ("gpu",)
                result = await default.wait_for_result(run_id, timeout_s=30)
            assert result.status == "completed"
            assert result.context["_outputs.n2"] == 3
            assert await default._queue.getJobState(f"{run_id}-n2-0") == "completed"
            # The inspector finds each job on its queue: the gpu node's times too.
            inspection = await default.inspect_run(run_id)
            for activation in inspection.activations:
                assert activation.state == "done"
                assert activation.finished_at is not None, activation

    asyncio.run(scenario())


def test_sleep_wake_and_resume_jobs_go_to_the_nodes_queue(redis_url: str, prefix: str) -> None:
    bp = {
        "id": "parked",
        "nodes": [
            {"id": "z", "uses": "sleep", "params": {"duration": 300}, "config": {"queue": "slow"}},
            {"id": "w", "uses": "wait", "config": {"queue": "slow"}},
            {"id": "n", "uses": "step"},
        ],
        "edges": [{"source": "z", "target": "w"}, {"source": "w", "target": "n"}],
    }

    async def scenario() -> None:
        async with adapter(
            redis_url,
            prefix,
            blueprints=[bp],
            registry=registry,
            queues=["flowcraft", "slow"],
        ) as a:
            run_id = await a.start_run("parked", {})
            slow, default = a.bullmq_queue("slow"), a._queue
            for _ in range(200):
                if await a.get_status(run_id) == "awaiting":
                    break
                await asyncio.sleep(0.02)
            assert await a.get_status(run_id) == "awaiting"
            assert await slow.getJobState(f"{run_id}-z-0-~wake") == "completed"
            assert await default.getJobState(f"{run_id}-z-0-~wake") == "unknown"
            assert await a.resume_with_action(run_id, output=41) == "resumed"
            result = await a.wait_for_result(run_id, timeout_s=30)
            assert result.status == "completed"
            assert result.context["_outputs.n"] == 42
            assert await slow.getJobState(f"{run_id}-w-0-~resume0") == "completed"
            assert await default.getJobState(f"{run_id}-w-0-~resume0") == "unknown"

    asyncio.run(scenario())


def test_the_reconciler_re_enqueues_onto_the_nodes_queue(redis_url: str, prefix: str) -> None:
    bp = chain("entry-gpu", 1, queue="gpu")  # its only node is on gpu

    async def scenario() -> None:
        async with adapter(redis_url, prefix, blueprints=[bp], consume=False) as a:
            run_id = await a.start_run("entry-gpu", {}, priority=7)
            gpu = a.bullmq_queue("gpu")
            job_id = f"{run_id}-n0-0"
            assert await gpu.getJobState(job_id) == "prioritized"
            assert int(await gpu.remove(job_id)) == 1  # the job is lost
            assert await a.reconcile(run_id) == [job_id]
            assert await gpu.getJobState(job_id) == "prioritized"
            assert (await gpu.getJob(job_id)).opts["priority"] == 7
            assert await a._queue.getJobState(job_id) == "unknown"
        # A process without the blueprint cannot tell the node's queue: it refuses.
        async with adapter(redis_url, prefix, blueprints=[], consume=False) as blind:
            with pytest.raises(BlueprintError):
                await blind.reconcile(run_id)

    asyncio.run(scenario())


def test_in_process_and_local_cluster_ignore_queues_and_priorities() -> None:
    bp = chain("routed", 5, queue="gpu")

    async def scenario() -> None:
        local = await FlowRuntime(registry=registry, blueprints=[bp]).run("routed", {})
        cluster = LocalCluster(registry=registry, blueprints=[bp])
        run_id = await cluster.start_run("routed", {}, priority=9, delay=0.05)
        await cluster.drain()
        distributed = await cluster.result(run_id)
        assert local.status == distributed.status == "completed"
        assert local.outputs == distributed.outputs
        assert distributed.context["_outputs.n4"] == 5

    asyncio.run(scenario())


def test_a_subflow_child_inherits_its_parents_queue_and_priority(
    redis_url: str, prefix: str
) -> None:
    """The child run's jobs carry the parent's priority; its routed node goes to its queue,
    the others to the parent run's queue."""
    child = chain("csub", 2, queue="side")  # n1 on "side"
    parent = {
        "id": "psub",
        "nodes": [
            {"id": "a", "uses": "step"},
            {"id": "s", "uses": "subflow", "params": {"blueprintId": "csub"}},
            {"id": "b", "uses": "step"},
        ],
        "edges": [{"source": "a", "target": "s"}, {"source": "s", "target": "b"}],
    }

    async def scenario() -> None:
        async with adapter(
            redis_url,
            prefix,
            blueprints=[parent, child],
            registry=registry,
            queues=["flowcraft", "side"],
        ) as a:
            await a.start_run("psub", {}, run_id="r1", priority=5)
            result = await a.wait_for_result("r1", timeout_s=30)
            assert result.status == "completed", result.errors
            side, default = a.bullmq_queue("side"), a._queue
            routed = await side.getJob("r1-s-0-n1-0")
            assert routed is not None and routed.opts["priority"] == 5
            for job_id in ("r1-s-0-n0-0", "r1-b-0"):
                job = await default.getJob(job_id)
                assert job is not None and job.opts["priority"] == 5, job_id
            assert await default.getJobState("r1-s-0-n1-0") == "unknown"

    asyncio.run(scenario())


def test_worker_metrics_count_the_jobs_of_every_consumed_queue(redis_url: str, prefix: str) -> None:
    from prometheus_client import CollectorRegistry

    from flowcraft_bullmq import MeteredAdapter, WorkerMetrics

    bp = chain("entry-gpu", 1, queue="gpu")

    async def scenario() -> None:
        metrics = WorkerMetrics(queue_name="flowcraft", registry=CollectorRegistry())
        metered = MeteredAdapter(
            metrics=metrics,
            connection=redis_url,
            prefix=prefix,
            blueprints=[bp],
            queues=["flowcraft", "gpu"],
        )
        async with metered:
            await metered.start_run("entry-gpu", {})
            await metered.start_run("entry-gpu", {}, priority=2)
            await metered.refresh_metrics()
        read = metrics.registry.get_sample_value
        labels = {"queue": "gpu", "state": "waiting"}
        assert read("flowcraft_queue_jobs", labels) == 1
        assert read("flowcraft_queue_jobs", {**labels, "state": "prioritized"}) == 1
        assert read("flowcraft_queue_jobs", {**labels, "queue": "flowcraft"}) == 0

    asyncio.run(scenario())


def test_batch_item_jobs_go_to_the_scatter_nodes_queue(redis_url: str, prefix: str) -> None:
    bp = {
        "id": "fan",
        "nodes": [
            {
                "id": "sc",
                "uses": "batch-scatter",
                "inputs": "items",
                "params": {"workerUsesKey": "step", "gatherNodeId": "ga", "chunkSize": 2},
                "config": {"queue": "side"},
            },
            {"id": "ga", "uses": "batch-gather"},
        ],
        "edges": [{"source": "sc", "target": "ga"}],
    }

    async def scenario() -> None:
        async with adapter(
            redis_url, prefix, blueprints=[bp], registry=registry, queues=["flowcraft", "side"]
        ) as a:
            await a.start_run("fan", {"items": [1, 2, 3]}, run_id="r1", priority=4)
            result = await a.wait_for_result("r1", timeout_s=30)
            assert result.status == "completed", result.errors
            assert result.context["_outputs.ga"] == [2, 3, 4]
            side, default = a.bullmq_queue("side"), a._queue
            items = [await side.getJob(f"r1-sc~5b{i}~5d-0") for i in range(3)]
            assert all(job is not None and job.opts["priority"] == 4 for job in items), items
            assert await default.getJobState("r1-sc~5b0~5d-0") == "unknown"

    asyncio.run(scenario())
