"""Pause, resume and retry through the protocol on the in-memory store (LocalCluster): the
reference semantics the Redis scripts follow."""

from __future__ import annotations

from typing import Any

import control_nodes as nodes
import pytest
from control_nodes import BLUEPRINTS, registry
from test_run_control import comparable, in_process, ran

from flowcraft_core import FlowRuntime
from flowcraft_core.distributed import LocalCluster


@pytest.fixture
def cluster() -> Any:
    nodes.reset()
    yield LocalCluster(registry=registry, blueprints=BLUEPRINTS, workers=2)
    nodes.reset()


async def test_pause_acknowledges_jobs_and_resume_enqueues_them_again(cluster: Any) -> None:
    run_id = await cluster.start_run("diamond", {"k": 2})
    queue = cluster.queue.queue
    await cluster.worker.handle(queue.get_nowait())  # a; b and c are queued
    assert await cluster.pause_run(run_id) is True
    while not queue.empty():  # taken while paused: acknowledged without running
        await cluster.worker.handle(queue.get_nowait())
    assert ran(run_id) == {"a": 1}
    assert await cluster.store.status(run_id) == "paused"
    assert (await cluster.result(run_id)).status == "running"  # not a final result
    assert await cluster.pause_run(run_id) is False
    assert await cluster.resume_run(run_id) is True
    await cluster.drain()
    assert comparable(await cluster.result(run_id)) == await in_process("diamond", {"k": 2})
    assert ran(run_id) == {"a": 1, "b": 1, "c": 1, "d": 1, "z": 1}


async def test_retry_in_memory(cluster: Any) -> None:
    nodes.failing["b"] = 1
    failed = await cluster.run("diamond", {"k": 3})
    assert failed.status == "failed"
    with pytest.raises(ValueError, match="only a failed run"):
        await cluster.retry_run(await _completed(cluster))
    await cluster.retry_run(failed.run_id)
    await cluster.drain()
    result = await cluster.result(failed.run_id)
    assert comparable(result) == await in_process("diamond", {"k": 3})
    assert ran(failed.run_id) == {"a": 1, "b": 2, "c": 1, "d": 1, "z": 1}


async def _completed(cluster: Any) -> str:
    done = await cluster.run("diamond", {})
    assert done.status == "completed"
    return str(done.run_id)


async def test_a_child_that_ends_while_its_parent_is_paused_is_heard_after_the_resume(
    cluster: Any,
) -> None:
    parent = {
        "id": "parent",
        "nodes": [
            {"id": "a", "uses": "step"},
            {"id": "sub", "uses": "subflow", "params": {"blueprintId": "diamond"}},
            {"id": "z", "uses": "step"},
        ],
        "edges": [{"source": "a", "target": "sub"}, {"source": "sub", "target": "z"}],
    }
    cluster = LocalCluster(registry=registry, blueprints=[*BLUEPRINTS, parent], workers=2)
    run_id = await cluster.start_run("parent")
    queue = cluster.queue.queue
    await cluster.worker.handle(queue.get_nowait())  # a
    await cluster.worker.handle(queue.get_nowait())  # sub: starts its child
    assert await cluster.pause_run(run_id) is True
    await cluster.drain()  # the child runs to its end; the parent's notification is held
    assert await cluster.store.status(run_id) == "paused"
    assert "z" not in ran(run_id)
    assert await cluster.resume_run(run_id) is True
    await cluster.drain()
    expected = await FlowRuntime(registry=registry, blueprints=[*BLUEPRINTS, parent]).run(
        "parent", run_id=run_id
    )
    assert comparable(await cluster.result(run_id)) == comparable(expected)


async def test_a_failed_subflow_node_is_not_retried(cluster: Any) -> None:
    parent = {
        "id": "parent",
        "nodes": [{"id": "sub", "uses": "subflow", "params": {"blueprintId": "diamond"}}],
        "edges": [],
    }
    nodes.failing["c"] = 1
    cluster = LocalCluster(registry=registry, blueprints=[*BLUEPRINTS, parent])
    failed = await cluster.run("parent")
    assert failed.status == "failed"
    with pytest.raises(ValueError, match="is a subflow"):
        await cluster.retry_run(failed.run_id)


async def test_a_paused_run_can_be_cancelled(cluster: Any) -> None:
    run_id = await cluster.start_run("diamond")
    assert await cluster.pause_run(run_id) is True
    assert await cluster.cancel_run(run_id) is True
    await cluster.drain()
    assert (await cluster.result(run_id)).status == "cancelled"
    assert ran(run_id) == {}
    assert await cluster.resume_run(run_id) is False
