"""Compensation through the distributed protocol on the in-memory store (LocalCluster): the
same scenarios as in-process, the same result (status, errors, context, compensated)."""

from __future__ import annotations

from typing import Any

import pytest
from saga_nodes import looping_saga, registry, saga

from flowcraft_core import FlowRuntime, load_blueprint
from flowcraft_core.distributed import LocalCluster

SCENARIOS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("ship fails", saga(), {"failAt": "ship"}),
    ("first fails", saga(), {"failAt": "reserve"}),
    ("completed", saga(), {}),
    (
        "a broken undo",
        saga(compensations={"reserve": "saga.undo", "charge": "saga.undo_broken"}),
        {"failAt": "notify"},
    ),
    ("flaky undo retried", saga(compensations={"reserve": "saga.undo_flaky"}, retries=2),
     {"failAt": "charge"}),
    ("loop", looping_saga(), {"failAt": "loop-2"}),
]  # fmt: skip


def comparable(result: Any) -> tuple[Any, ...]:
    context = {k: v for k, v in result.context.items() if k not in ("_executionId", "_runState")}
    return (
        result.status,
        [(e.node_id, e.type, e.message, e.attempts) for e in result.errors],
        context,
        result.compensated,
        [(e.node_id, e.type, e.message, e.attempts) for e in result.compensation_failed],
    )


@pytest.mark.parametrize(
    ("doc", "context"), [s[1:] for s in SCENARIOS], ids=[s[0] for s in SCENARIOS]
)
async def test_local_cluster_compensates_like_in_process(
    doc: dict[str, Any], context: dict[str, Any]
) -> None:
    bp = load_blueprint(doc)
    expected = await FlowRuntime(registry=registry).run(bp, context, run_id="r1")
    cluster = LocalCluster(registry=registry, blueprints=[bp], workers=3)
    got = await cluster.run(bp.id, context, run_id="r1")
    assert comparable(got) == comparable(expected)


async def test_opting_out_in_the_cluster() -> None:
    bp = load_blueprint(saga())
    cluster = LocalCluster(registry=registry, blueprints=[bp])
    result = await cluster.run(bp.id, {"failAt": "ship"}, compensate=False)
    assert result.status == "failed" and result.compensated == []
    assert "undoLog" not in result.context


async def test_a_failed_run_is_compensating_until_its_compensation_job_ran() -> None:
    bp = load_blueprint(saga())
    cluster = LocalCluster(registry=registry, blueprints=[bp], workers=1)
    run_id = await cluster.start_run(bp.id, {"failAt": "ship"})
    queue = cluster.queue.queue
    while True:  # run node jobs one by one until the compensation job is queued
        job = queue.get_nowait()
        if job.kind == "compensate":
            break
        await cluster.worker.handle(job)
    assert await cluster.store.status(run_id) == "compensating"
    assert (await cluster.result(run_id)).status == "running"  # not final yet
    assert await cluster.cancel_run(run_id) is False  # it failed already
    assert await cluster.pause_run(run_id) is False
    await cluster.worker.handle(job)
    await cluster.worker.handle(job)  # a redelivery changes nothing
    result = await cluster.result(run_id)
    assert result.status == "failed" and result.compensated == ["charge", "reserve"]
    assert len(result.context["undoLog"]) == 2


def trip() -> dict[str, Any]:
    """hold (compensated by saga.undo) -> sub: a subflow running the saga with `failAt`."""
    return {
        "id": "trip",
        "nodes": [
            {"id": "hold", "uses": "saga.step", "config": {"compensate": "saga.undo"}},
            {
                "id": "sub",
                "uses": "subflow",
                "params": {"blueprintId": "saga", "inputs": {"failAt": "failAt"}},
            },
        ],
        "edges": [{"source": "hold", "target": "sub"}],
    }


async def test_a_failed_subflow_child_compensates_before_its_parent_hears_of_it() -> None:
    """The child saga compensates its own nodes; only then its parent's subflow node fails,
    and the parent compensates its own completions: as in-process."""
    child = load_blueprint(saga())
    parent = load_blueprint(trip())
    context = {"failAt": "ship"}
    runtime = FlowRuntime(registry=registry, blueprints=[parent, child])
    expected = await runtime.run("trip", context, run_id="t1")
    cluster = LocalCluster(registry=registry, blueprints=[parent, child], workers=3)
    got = await cluster.run("trip", context, run_id="t1")
    assert comparable(got) == comparable(expected)
    assert got.compensated == ["hold"]
    children = [r for r in cluster.store.runs if r != "t1"]
    assert len(children) == 1
    kid = await cluster.result(children[0])
    assert kid.status == "failed" and kid.compensated == ["charge", "reserve"]


async def test_a_lost_compensation_job_leaves_the_run_compensating() -> None:
    """A compensation job BullMQ gave up on is not an activation to fail: the run stays
    compensating (the reconciler enqueues the job again) and the next job finishes it."""
    from flowcraft_core.errors import WorkerLostError

    bp = load_blueprint(saga())
    cluster = LocalCluster(registry=registry, blueprints=[bp], workers=1)
    run_id = await cluster.start_run(bp.id, {"failAt": "ship"})
    queue = cluster.queue.queue
    while (job := queue.get_nowait()).kind != "compensate":
        await cluster.worker.handle(job)
    await cluster.worker.fail_activation(job, WorkerLostError("stalled"))
    assert await cluster.store.status(run_id) == "compensating"
    await cluster.worker.handle(job)
    assert (await cluster.result(run_id)).compensated == ["charge", "reserve"]
