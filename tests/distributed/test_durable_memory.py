"""Durable sleeps and buffered resumes on the in-memory protocol (LocalCluster), against the
in-process runtime (SPEC 5.3, 9.7): a sleep holds no worker and passes its input through; a
resume that arrives before its wait is buffered and applied when the wait starts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from distributed.test_memory_parity import APPROVAL, comparable, e, make_registry, n

from flowcraft_core import FlowRuntime, NodeRegistry, RunNotAwaitingError, RunNotFoundError
from flowcraft_core.distributed import Job, LocalCluster
from flowcraft_core.distributed.protocol import WAKE


def sleepy(duration: Any = "150ms", **params: Any) -> dict[str, Any]:
    """a -> z (sleep) -> b."""
    return {
        "id": "sleepy",
        "nodes": [
            n("a", "inc"),
            n("z", "sleep", params={"duration": duration} if not params else params),
            n("b", "inc"),
        ],
        "edges": [e("a", "z"), e("z", "b")],
    }


#: Two sleeps of different lengths in parallel, joined.
PARALLEL_SLEEPS = {
    "id": "par",
    "nodes": [
        n("a", "inc"),
        n("s1", "sleep", params={"duration": 120}),
        n("s2", "sleep", params={"duration": "40ms"}),
        n("x", "inc"),
        n("j", "sum"),
    ],
    "edges": [e("a", "s1"), e("a", "s2"), e("s2", "x"), e("s1", "j"), e("x", "j")],
}

#: A sleep inside a loop body: each iteration sleeps (its loop counter stays open meanwhile).
SLEEP_LOOP = {
    "id": "sleeploop",
    "nodes": [
        n("a", "inc"),
        n("L", "loop-controller", params={"condition": "count < 3"}),
        n("z", "sleep", params={"duration": "20ms"}),
        n("b", "count"),
        n("done", "inc"),
    ],
    "edges": [
        e("a", "L"),
        e("L", "z", action="continue"),
        e("z", "b"),
        e("b", "L"),
        e("L", "done", action="break"),
    ],
}

#: Two waits in a row: a -> w1 -> w2 -> done.
TWO_WAITS = {
    "id": "twowaits",
    "nodes": [n("a", "inc"), n("w1", "wait"), n("w2", "webhook"), n("done", "sum")],
    "edges": [e("a", "w1"), e("w1", "w2"), e("w2", "done")],
}


async def in_process(
    registry: NodeRegistry,
    blueprint: dict[str, Any],
    resumes: Sequence[tuple[str | None, Any, str | None]] = (),
    context: dict[str, Any] | None = None,
    run_id: str = "r1",
) -> Any:
    """FlowRuntime: run, then apply (node_id, output, action) resumes in order."""
    runtime = FlowRuntime(registry=registry, blueprints=[blueprint])
    result = await runtime.run(blueprint["id"], context, run_id=run_id)
    for node_id, output, action in resumes:
        result = await runtime.resume(
            blueprint["id"],
            result.serialized_context,
            node_id=node_id,
            output=output,
            action=action,
        )
    return result


async def until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll `predicate` every 2 ms; fail after `timeout_s`."""
    for _ in range(int(timeout_s / 0.002)):
        if predicate():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("condition not reached in time")


def wake_jobs(cluster: LocalCluster) -> list[str]:
    return sorted(j for j in cluster.queue.seen if j.endswith("-~wake"))


# --------------------------------------------------------------------------- sleep


@pytest.mark.parametrize(
    "blueprint", [sleepy(), PARALLEL_SLEEPS, SLEEP_LOOP], ids=["chain", "parallel", "loop"]
)
async def test_a_sleep_gives_the_in_process_result(blueprint: dict[str, Any]) -> None:
    context = {"count": 0}
    local = await in_process(make_registry(), blueprint, context=context)
    cluster = LocalCluster(registry=make_registry(), blueprints=[blueprint], workers=2)
    distributed = await cluster.run(blueprint["id"], context, run_id="r1")
    assert distributed.status == "completed"
    assert comparable(distributed) == comparable(local)
    assert wake_jobs(cluster)  # it slept through a delayed job, not inside its job


async def test_the_output_is_the_input_and_the_run_stays_running_while_it_sleeps() -> None:
    cluster = LocalCluster(registry=make_registry(), blueprints=[sleepy("200ms")], workers=1)
    run_id = await cluster.start_run("sleepy", run_id="r1")
    draining = asyncio.create_task(cluster.drain())
    await until(lambda: "r1-z-0-~wake" in cluster.queue.seen)
    run = cluster.store.runs[run_id]
    assert run.status == "running" and run.in_flight == 1  # the sleep is in flight
    assert run.sleeping["z@"][1] == 1  # its input, recorded with wakeAt
    assert run.wake_at * 1000 == pytest.approx(run.sleeping["z@"][0])
    assert (await cluster.result(run_id)).status == "running"
    await draining
    result = await cluster.result(run_id)
    assert result.status == "completed"
    assert result.context["_outputs.z"] == 1 and result.context["_outputs.b"] == 2


@pytest.mark.parametrize(
    "params",
    [{"duration": 0}, {"duration": "0s"}, {"until": "2001-01-01T00:00:00+00:00"}],
    ids=["zero", "zero-string", "past"],
)
async def test_a_sleep_of_zero_or_in_the_past_completes_at_once(params: dict[str, Any]) -> None:
    blueprint = sleepy(**params)
    cluster = LocalCluster(registry=make_registry(), blueprints=[blueprint], workers=1)
    result = await cluster.run("sleepy", run_id="r1")
    assert result.status == "completed" and result.context["_outputs.b"] == 2
    assert wake_jobs(cluster) == []
    assert comparable(result) == comparable(await in_process(make_registry(), blueprint))


async def test_a_sleep_does_not_hold_a_worker() -> None:
    """One consumer: a second run's nodes all run while the first run sleeps."""
    chain = {
        "id": "chain",
        "nodes": [n("c1", "inc"), n("c2", "inc"), n("c3", "inc")],
        "edges": [e("c1", "c2"), e("c2", "c3")],
    }
    cluster = LocalCluster(registry=make_registry(), blueprints=[sleepy("400ms"), chain], workers=1)
    sleeper = await cluster.start_run("sleepy", run_id="sleeper")
    started = time.monotonic()
    draining = asyncio.create_task(cluster.drain())
    await until(lambda: "sleeper-z-0-~wake" in cluster.queue.seen)
    other = await cluster.start_run("chain", run_id="other")
    await until(lambda: cluster.store.runs[other].status == "completed")
    assert cluster.store.runs[sleeper].status == "running"
    assert time.monotonic() - started < 0.35
    await draining
    assert (await cluster.result(sleeper)).status == "completed"
    assert time.monotonic() - started >= 0.39


async def test_a_wake_of_a_cancelled_run_is_a_no_op() -> None:
    cluster = LocalCluster(registry=make_registry(), blueprints=[sleepy("100ms")], workers=1)
    run_id = await cluster.start_run("sleepy", run_id="r1")
    draining = asyncio.create_task(cluster.drain())
    await until(lambda: "r1-z-0-~wake" in cluster.queue.seen)
    assert await cluster.cancel_run(run_id) is True
    await draining  # the wake job ran: it changed nothing
    result = await cluster.result(run_id)
    assert result.status == "cancelled"
    assert "_outputs.z" not in result.context and "_outputs.b" not in result.context
    assert result.context["_outputs.a"] == 1


async def test_redelivered_node_and_wake_jobs_change_nothing() -> None:
    cluster = LocalCluster(registry=make_registry(), blueprints=[sleepy("80ms")], workers=1)
    run_id = await cluster.start_run("sleepy", run_id="r1")
    draining = asyncio.create_task(cluster.drain())
    await until(lambda: "r1-z-0-~wake" in cluster.queue.seen)
    # The sleep's node job again (a lost lock): it only re-adds its wake job (deduplicated).
    added = cluster.queue.added
    await cluster.worker.handle(Job(run_id, "z", ()))
    assert cluster.queue.added == added and cluster.store.runs[run_id].in_flight == 1
    await draining
    before = comparable(await cluster.result(run_id))
    # The wake job again, and the node job, after the run completed: replays.
    await cluster.worker.handle(Job(run_id, "z", (), kind=WAKE))
    await cluster.worker.handle(Job(run_id, "z", ()))
    await cluster.drain()
    assert comparable(await cluster.result(run_id)) == before


async def test_a_wake_of_an_activation_that_never_slept_is_acknowledged() -> None:
    cluster = LocalCluster(registry=make_registry(), blueprints=[sleepy("10ms")], workers=1)
    run_id = await cluster.start_run("sleepy", run_id="r1")
    await cluster.worker.handle(Job(run_id, "z", (), kind=WAKE))  # z has not run yet
    assert "_outputs.z" not in cluster.store.runs[run_id].context
    await cluster.drain()
    assert (await cluster.result(run_id)).status == "completed"


# --------------------------------------------------------------------------- resume


async def test_a_resume_before_the_wait_is_buffered_then_applied() -> None:
    for action, output in (("approve", 7), ("reject", 5)):
        cluster = LocalCluster(registry=make_registry(), blueprints=[APPROVAL])
        run_id = await cluster.start_run("approval", run_id="r1")
        assert await cluster.resume(run_id, action, output) == "buffered"
        await cluster.drain()
        result = await cluster.result(run_id)
        assert result.status == "completed"
        local = await in_process(make_registry(), APPROVAL, [(None, output, action)])
        assert comparable(result) == comparable(local)
        taken = "yes" if action == "approve" else "no"
        assert result.context[f"_outputs.{taken}"] == output + 1
        assert cluster.store.runs[run_id].buffered == []


async def test_a_resume_buffered_during_a_sleep_is_taken_when_the_wait_starts() -> None:
    blueprint = {
        "id": "nap",
        "nodes": [
            n("a", "inc"),
            n("z", "sleep", params={"duration": "60ms"}),
            n("ask", "wait"),
            n("yes", "inc"),
            n("no", "inc"),
        ],
        "edges": [
            e("a", "z"),
            e("z", "ask"),
            e("ask", "yes", action="approve"),
            e("ask", "no", action="reject"),
        ],
    }
    cluster = LocalCluster(registry=make_registry(), blueprints=[blueprint], workers=1)
    run_id = await cluster.start_run("nap", run_id="r1")
    draining = asyncio.create_task(cluster.drain())
    await until(lambda: "r1-z-0-~wake" in cluster.queue.seen)
    assert await cluster.resume(run_id, "reject", 40) == "buffered"
    await draining
    result = await cluster.result(run_id)
    assert result.status == "completed"
    assert result.context["_outputs.no"] == 41 and "_outputs.yes" not in result.context
    local = await in_process(make_registry(), blueprint, [(None, 40, "reject")])
    assert comparable(result) == comparable(local)


async def test_buffered_resumes_are_taken_oldest_first_and_by_node() -> None:
    # FIFO: without node ids, the first wait takes the oldest request.
    cluster = LocalCluster(registry=make_registry(), blueprints=[TWO_WAITS])
    run_id = await cluster.start_run("twowaits", run_id="r1")
    assert await cluster.resume(run_id, None, 1) == "buffered"
    assert await cluster.resume(run_id, None, 2) == "buffered"
    await cluster.drain()
    result = await cluster.result(run_id)
    assert result.status == "completed"
    assert (result.context["_outputs.w1"], result.context["_outputs.w2"]) == (1, 2)
    local = await in_process(make_registry(), TWO_WAITS, [(None, 1, None), (None, 2, None)])
    assert comparable(result) == comparable(local)

    # A request naming w2 waits for w2, even though it is older than w1's.
    cluster = LocalCluster(registry=make_registry(), blueprints=[TWO_WAITS])
    run_id = await cluster.start_run("twowaits", run_id="r1")
    assert await cluster.resume(run_id, None, "X", node_id="w2") == "buffered"
    assert await cluster.resume(run_id, None, "Y") == "buffered"
    assert await cluster.resume(run_id, None, "Z") == "buffered"
    await cluster.drain()
    result = await cluster.result(run_id)
    assert result.status == "completed"
    assert (result.context["_outputs.w1"], result.context["_outputs.w2"]) == ("Y", "X")
    local = await in_process(make_registry(), TWO_WAITS, [("w1", "Y", None), ("w2", "X", None)])
    assert comparable(result) == comparable(local)
    assert cluster.store.runs[run_id].buffered == []  # "Z" was dropped when the run ended


async def test_a_request_for_a_node_that_is_not_waiting_is_buffered_while_another_waits() -> None:
    cluster = LocalCluster(registry=make_registry(), blueprints=[TWO_WAITS])
    waiting = await cluster.run("twowaits", run_id="r1")
    assert waiting.status == "awaiting" and waiting.context["_awaitingNodeIds"] == ["w1"]
    assert await cluster.resume("r1", None, "for-w2", node_id="w2") == "buffered"
    assert cluster.store.runs["r1"].status == "awaiting"
    result = await cluster.resume_with_action("r1", None, "for-w1", node_id="w1")
    assert result.status == "completed"
    assert (result.context["_outputs.w1"], result.context["_outputs.w2"]) == ("for-w1", "for-w2")


async def test_a_double_resume_resumes_once_and_buffers_the_other() -> None:
    cluster = LocalCluster(registry=make_registry(), blueprints=[APPROVAL])
    assert (await cluster.run("approval", run_id="r1")).status == "awaiting"
    answers = await asyncio.gather(
        cluster.resume("r1", "approve", 1), cluster.resume("r1", "reject", 2)
    )
    assert sorted(answers) == ["buffered", "resumed"]
    await cluster.drain()
    result = await cluster.result("r1")
    assert result.status == "completed"
    # Exactly one branch ran: the first resume's.
    assert ("_outputs.yes" in result.context) != ("_outputs.no" in result.context)
    assert cluster.store.runs["r1"].in_flight == 0 and cluster.store.runs["r1"].buffered == []
    with pytest.raises(RunNotAwaitingError, match="not waiting"):
        await cluster.resume("r1", "approve", 1)


async def test_resume_errors() -> None:
    cluster = LocalCluster(registry=make_registry(), blueprints=[APPROVAL])
    with pytest.raises(RunNotFoundError):
        await cluster.resume("nope", "approve")
    run_id = await cluster.start_run("approval", run_id="r1")
    with pytest.raises(ValueError, match="has no node 'ghost'"):
        await cluster.resume(run_id, "approve", node_id="ghost")
    with pytest.raises(ValueError, match="only wait, webhook and subflow"):
        await cluster.resume(run_id, "approve", node_id="yes")
    assert await cluster.resume(run_id, "approve", 3) == "buffered"
    assert await cluster.cancel_run(run_id) is True
    assert cluster.store.runs[run_id].buffered == []  # dropped with the run
    with pytest.raises(RunNotAwaitingError, match="run status: cancelled"):
        await cluster.resume(run_id, "approve")
    await cluster.drain()
    assert (await cluster.result(run_id)).status == "cancelled"


async def test_buffered_resumes_feed_a_wait_in_a_loop() -> None:
    blueprint = {
        "id": "ask3",
        "nodes": [
            n("a", "inc"),
            n("L", "loop-controller", params={"condition": "count < 3"}),
            n("w", "wait"),
            n("c", "count"),
            n("done", "inc"),
        ],
        "edges": [
            e("a", "L"),
            e("L", "w", action="continue"),
            e("w", "c"),
            e("c", "L"),
            e("L", "done", action="break"),
        ],
    }
    cluster = LocalCluster(registry=make_registry(), blueprints=[blueprint])
    run_id = await cluster.start_run("ask3", {"count": 0}, run_id="r1")
    for i in range(3):
        assert await cluster.resume(run_id, None, f"answer{i}") == "buffered"
    await cluster.drain()
    result = await cluster.result(run_id)
    assert result.status == "completed"
    local = await in_process(
        make_registry(), blueprint, [(None, f"answer{i}", None) for i in range(3)], {"count": 0}
    )
    assert comparable(result) == comparable(local)
    assert result.context["_outputs.w"] == "answer2" and result.context["count"] == 3


async def test_a_lost_resume_job_is_healed_by_the_activation_s_node_job() -> None:
    """A client that claimed a wait and died before adding the resume job: the claimed
    activation is owed again (in the frontier), and its node job completes it with the claim."""
    cluster = LocalCluster(registry=make_registry(), blueprints=[APPROVAL])
    assert (await cluster.run("approval", run_id="r1")).status == "awaiting"
    assert [e.akey for e in await cluster.store.frontier("r1")] == []
    assert await cluster.store.resume_waiting("r1", "ask@", 9, "reject") is True
    assert [e.akey for e in await cluster.store.frontier("r1")] == ["ask@"]
    await cluster.worker.handle(Job("r1", "ask", ()))  # what the reconciler re-enqueues
    await cluster.drain()
    result = await cluster.result("r1")
    assert result.status == "completed" and result.context["_outputs.no"] == 10
    local = await in_process(make_registry(), APPROVAL, [(None, 9, "reject")])
    assert comparable(result) == comparable(local)
