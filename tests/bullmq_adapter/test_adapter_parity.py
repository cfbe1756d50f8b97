"""Every parity case of the in-memory protocol, run through BullMQAdapter on a real Redis and
BullMQ with one in-process worker, gives FlowRuntime's status, errors and context (SPEC 9.1)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from adapter_support import APPROVAL, adapter
from bullmq_processes import WorkerProcess
from distributed.subflow_cases import SCENARIOS, blueprints, in_process, registry_of, same
from distributed.test_memory_parity import CASES, comparable, make_registry

from flowcraft_core import FlowRuntime, RunNotAwaitingError
from flowcraft_core.cli import main


@pytest.mark.parametrize("name", sorted(CASES))
async def test_same_result_as_in_process(name: str, redis_url: str, prefix: str) -> None:
    blueprint, context = CASES[name]
    registry = make_registry()
    local = await FlowRuntime(registry=registry, blueprints=[blueprint]).run(
        blueprint["id"], context, run_id="run1"
    )
    async with adapter(redis_url, prefix, registry=registry, blueprints=[blueprint]) as a:
        run_id = await a.start_run(blueprint["id"], context, run_id="run1")
        result = await a.wait_for_result(run_id, timeout_s=20)
    assert comparable(result) == comparable(local)


async def test_wait_resumed_with_an_action_routes_the_same(redis_url: str, prefix: str) -> None:
    registry = make_registry()
    runtime = FlowRuntime(registry=registry, blueprints=[APPROVAL])
    paused = await runtime.run("approval", run_id="r-wait")
    async with (
        adapter(redis_url, prefix, registry=registry, blueprints=[APPROVAL]) as worker,
        # A client-only process (no node code) resumes: routing needs no implementations.
        adapter(redis_url, prefix, blueprints=[APPROVAL], consume=False) as client,
    ):
        run_id = await client.start_run("approval", run_id="r-wait")
        waiting = await client.wait_for_result(run_id, timeout_s=20)
        assert waiting.status == paused.status == "awaiting"
        assert await client.get_status(run_id) == "awaiting"
        assert comparable(waiting) == comparable(paused)
        assert waiting.context["_awaitingNodeIds"] == ["ask"]

        with pytest.raises(ValueError, match="only wait, webhook and subflow"):
            await client.resume_with_action(run_id, "reject", 5, node_id="yes")
        assert await client.resume_with_action(run_id, "reject", 5, node_id="ask") == "resumed"
        done = await worker.wait_for_result(run_id, timeout_s=20)

    done_local = await runtime.resume(
        "approval", paused.serialized_context, output=5, action="reject"
    )
    assert done.status == "completed"
    assert comparable(done) == comparable(done_local)
    assert "_outputs.yes" not in done.context
    assert done.context["_outputs.no"] == 6


# --------------------------------------------------------------------------- subflows


@pytest.fixture(scope="module")
def subflow_workers(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, list[Any], Path]]:
    """Two `flowcraft worker` processes knowing every subflow scenario's blueprints; their
    key prefix, the blueprints (for client adapters) and their directory (for the CLI)."""
    directory = tmp_path_factory.mktemp("subflow-blueprints")
    known: dict[str, Any] = {}
    for scenario in SCENARIOS.values():
        for bp in blueprints(scenario):
            known[bp["id"] if isinstance(bp, dict) else bp.id] = bp
    for bp_id, bp in known.items():
        text = json.dumps(bp if isinstance(bp, dict) else bp.to_dict())
        (directory / f"{bp_id}.json").write_text(text, encoding="utf-8")
    prefix = f"sub{os.getpid()}"
    args = [
        "--redis", redis_url,
        "--prefix", prefix,
        "--registry", "worker_nodes:registry",
        "--registry", "blueprints.subflow.nodes:registry",
        "--blueprints", str(directory),
        "--concurrency", "4",
    ]  # fmt: skip
    trace = tmp_path_factory.mktemp("subflow-trace") / "pids.txt"
    started: list[WorkerProcess] = []
    try:
        for _ in range(2):
            started.append(WorkerProcess(args, trace, Path(__file__).parent))
        for worker in started:
            worker.wait_ready()
        yield prefix, list(known.values()), directory
    finally:
        for worker in started:
            worker.kill()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_subflows_on_worker_processes_match_in_process(
    name: str, redis_url: str, subflow_workers: tuple[str, list[Any], Path]
) -> None:
    """SPEC 5.6, 9.7 end to end: real BullMQ jobs on two worker processes; a client without
    node code starts the run and resumes through the parent."""
    prefix, known, _ = subflow_workers
    scenario = SCENARIOS[name]
    run_id = f"run-{name}"
    runtime = FlowRuntime(registry=registry_of(scenario), blueprints=blueprints(scenario))
    local = await in_process(runtime, scenario, run_id)
    async with adapter(redis_url, prefix, blueprints=known, consume=False) as client:
        await client.start_run(scenario.root, scenario.context, run_id=run_id)
        results = [await client.wait_for_result(run_id, timeout_s=30)]
        for node_id, output, action in scenario.resumes:
            assert await client.resume_with_action(run_id, action, output, node_id=node_id) == (
                "resumed"
            )
            results.append(await client.wait_for_result(run_id, timeout_s=30))
    same(results, local)


async def test_cancelling_a_parent_on_workers_cancels_its_children(
    redis_url: str, subflow_workers: tuple[str, list[Any], Path]
) -> None:
    prefix, known, _ = subflow_workers
    async with adapter(redis_url, prefix, blueprints=known, consume=False) as client:
        await client.start_run("top", run_id="cancel-top")
        assert (await client.wait_for_result("cancel-top", timeout_s=30)).status == "awaiting"
        assert await client.cancel_run("cancel-top") is True
        for run_id in ("cancel-top", "cancel-top-s1-0", "cancel-top-s1-0-s2-0"):
            assert await client.get_status(run_id) == "cancelled", run_id
        with pytest.raises(RunNotAwaitingError):
            await client.resume_with_action("cancel-top", "go", 1, node_id="s1")


def test_the_cli_resumes_through_a_subflow_path(
    redis_url: str, subflow_workers: tuple[str, list[Any], Path], capsys: Any
) -> None:
    """`flowcraft resume --node sub --node w2` resumes the child's w2 (a path, SPEC 3.11)."""
    prefix, known, directory = subflow_workers
    options = ["--redis", redis_url, "--prefix", prefix, "--blueprints", str(directory)]

    def cli(*argv: str) -> tuple[int, Any]:
        code = main([*argv, *options])
        out, err = capsys.readouterr()
        assert code in (0, 3), err
        return code, json.loads(out) if out.startswith("{") else out.strip()

    assert cli("start", "p-two", "--run-id", "cli-two", "--wait", "--json")[0] == 3  # awaiting
    code, out = cli("resume", "cli-two", "--output", "20", "--node", "sub", "--node", "w2")
    assert (code, out) == (0, "resumed")

    async def result() -> Any:
        async with adapter(redis_url, prefix, blueprints=known, consume=False) as client:
            return await client.wait_for_result("cli-two", timeout_s=30)

    waiting = asyncio.run(result())
    assert waiting.context["_awaitingDetails"]["sub"]["awaiting"] == ["w1"]
    assert waiting.context["_outputs.a"] == 1


async def test_compensation_gives_the_in_process_result(redis_url: str, prefix: str) -> None:
    """A failed saga: the same compensations, in the same order, with the same context."""
    from compensation.saga_nodes import registry as saga_registry
    from compensation.saga_nodes import saga

    doc = saga(compensations={"reserve": "saga.undo", "charge": "saga.undo_broken"})
    local = await FlowRuntime(registry=saga_registry, blueprints=[doc]).run(
        "saga", {"failAt": "ship"}, run_id="r-saga"
    )
    async with adapter(redis_url, prefix, registry=saga_registry, blueprints=[doc]) as a:
        await a.start_run("saga", {"failAt": "ship"}, run_id="r-saga")
        result = await a.wait_for_result("r-saga", timeout_s=20)
    assert comparable(result) == comparable(local)
    assert result.compensated == local.compensated == ["reserve"]
    assert [e.to_json() | {"timestamp": 0} for e in result.compensation_failed] == [
        e.to_json() | {"timestamp": 0} for e in local.compensation_failed
    ]


@pytest.mark.parametrize("name", ["diamond", "chain"])
async def test_paused_and_resumed_gives_the_in_process_result(
    name: str, redis_url: str, prefix: str
) -> None:
    """Paused right after the start (its entry jobs are acknowledged without running), then
    resumed: the run ends as if it had never been paused."""
    blueprint, context = CASES[name]
    registry = make_registry()
    local = await FlowRuntime(registry=registry, blueprints=[blueprint]).run(
        blueprint["id"], context, run_id="r-pause"
    )
    async with adapter(redis_url, prefix, registry=registry, blueprints=[blueprint]) as a:
        run_id = await a.start_run(blueprint["id"], context, run_id="r-pause")
        paused = await a.pause_run(run_id)
        await asyncio.sleep(0.3)
        assert await a.get_status(run_id) == ("paused" if paused else "completed")
        if paused:
            assert await a.resume_run(run_id)
        result = await a.wait_for_result(run_id, timeout_s=20)
    assert comparable(result) == comparable(local)
