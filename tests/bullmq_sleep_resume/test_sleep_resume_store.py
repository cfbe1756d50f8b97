"""The store side of durable sleeps and buffered resumes: the in-memory reference and
`RedisCoordinationStore` (Lua) answer alike, call by call (SPEC 9.7)."""

from __future__ import annotations

import copy
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from distributed.test_durable_memory import APPROVAL, TWO_WAITS, sleepy
from distributed.test_memory_parity import make_registry
from redis.asyncio import Redis

from flowcraft_bullmq import RedisCoordinationStore
from flowcraft_core.context import MISSING
from flowcraft_core.distributed import LocalCluster
from flowcraft_core.distributed.frontier import ready_entry
from flowcraft_core.distributed.memory import InMemoryCoordinationStore
from flowcraft_core.distributed.protocol import (
    SLEEPING,
    SUCCEEDED,
    WAITING,
    Applied,
    CoordinationStore,
    Followup,
    Transition,
)

R = "r1"


def _client(url: str) -> Redis:
    return Redis.from_url(url, decode_responses=True, socket_timeout=None)


@pytest.fixture(params=["memory", "redis"])
async def store(
    request: pytest.FixtureRequest, redis_url: str, prefix: str
) -> AsyncIterator[CoordinationStore]:
    if request.param == "memory":
        yield InMemoryCoordinationStore()
        return
    client = _client(redis_url)
    try:
        yield RedisCoordinationStore(client, prefix=prefix)
    finally:
        await client.aclose()


def entry(node_id: str) -> Followup:
    return Followup(f"{node_id}@", node_id, ())


def waits(node_id: str) -> Transition:
    return Transition(
        akey=f"{node_id}@~wait",
        node_id=node_id,
        iteration=(),
        outcome=WAITING,
        waiting={"reason": "external_event", "iteration": []},
    )


def done(node_id: str, output: Any = None) -> Transition:
    return Transition(
        akey=f"{node_id}@",
        node_id=node_id,
        iteration=(),
        outcome=SUCCEEDED,
        output=output,
        output_keys=(f"_outputs.{node_id}",),
    )


async def test_a_sleeping_activation_stays_in_flight(store: CoordinationStore) -> None:
    await store.create_run(R, blueprint_id="bp", pin="p", context={}, entries=[entry("z")])
    wake_at = time.time() * 1000 + 60_000
    sleeps = Transition(
        akey="z@~sleep",
        node_id="z",
        iteration=(),
        outcome=SLEEPING,
        ops=[("_inputs.z", {"x": [1, 2]}, False)],
        sleep=(wake_at, {"x": [1, 2]}),
    )
    assert await store.complete(R, sleeps) == Applied()
    assert await store.status(R) == "running"
    # Still owed (its node job, delivered again, re-adds the wake job).
    assert await store.frontier(R) == [ready_entry(entry("z"))]  # type: ignore[attr-defined]
    loaded = await store.load(R, "z@", None)
    assert loaded.sleeping == (wake_at, {"x": [1, 2]}) and loaded.done is None
    assert loaded.values == {"_inputs.z": {"x": [1, 2]}}
    assert await store.complete(R, sleeps) == Applied(replay=True)  # delivered again
    assert await store.status(R) == "running"
    if isinstance(store, RedisCoordinationStore):
        woke = await store.client.hget(store.keys(R).meta, "wakeAt")
        assert float(woke) == pytest.approx(wake_at / 1000)
    else:
        assert isinstance(store, InMemoryCoordinationStore)
        assert store.runs[R].wake_at == pytest.approx(wake_at / 1000)
    # The wake completes it; the run ends.
    assert await store.complete(R, done("z", {"x": [1, 2]})) == Applied(finished="completed")
    assert (await store.load(R, "z@", ())).sleeping == (wake_at, {"x": [1, 2]})


async def test_buffered_resumes_are_taken_by_waits_that_start(store: CoordinationStore) -> None:
    entries = [entry("w"), entry("v"), entry("x")]
    await store.create_run(R, blueprint_id="bp", pin="p", context={}, entries=entries)
    assert await store.buffer_resume(R, "v", "for-v", "go") == "buffered"
    assert await store.buffer_resume(R, None, "any1", None) == "buffered"
    assert await store.buffer_resume(R, None, {"n": [1]}, "a2") == "buffered"
    # w: nothing names it, so the oldest without a node; it stays in flight, never waits.
    assert await store.complete(R, waits("w")) == Applied(taken=("any1", None))
    assert await store.complete(R, waits("w")) == Applied(taken=("any1", None), replay=True)
    status, _, _, waiting = await store.result(R)
    assert (status, waiting) == ("running", {})
    assert await store.complete(R, done("w", "any1")) == Applied()
    # v: the request naming it, although older requests without a node exist.
    assert await store.complete(R, waits("v")) == Applied(taken=("for-v", "go"))
    assert await store.complete(R, done("v", "for-v")) == Applied()
    # x takes the last one; a fourth wait would wait.
    assert await store.complete(R, waits("x")) == Applied(taken=({"n": [1]}, "a2"))
    assert await store.complete(R, done("x", {"n": [1]})) == Applied(finished="completed")
    assert await store.get(R, "_outputs.x") == {"n": [1]}
    assert await store.buffer_resume(R, None, 1, None) == "finished"


async def test_buffering_races_and_claims(store: CoordinationStore) -> None:
    await store.create_run(
        R, blueprint_id="bp", pin="p", context={}, entries=[entry("x"), entry("y")]
    )
    assert await store.complete(R, waits("x")) == Applied()  # nothing buffered: it waits
    # A request matching an unclaimed waiting activation is not buffered: claim it instead.
    assert await store.buffer_resume(R, "x", 1, None) == "retry"
    assert await store.buffer_resume(R, None, 1, None) == "retry"
    assert await store.buffer_resume(R, "y", "for-y", None) == "buffered"  # y is not waiting
    owed = [ready_entry(entry("y"))]
    assert await store.frontier(R) == owed  # type: ignore[attr-defined]
    assert await store.resume_waiting(R, "x@", {"ok": True}, "approve") is True
    # Owed again until its resume job completes it.
    owed.insert(0, ready_entry(entry("x")))
    assert await store.frontier(R) == owed  # type: ignore[attr-defined]
    assert (await store.load(R, "x@", ())).claimed == ({"ok": True}, "approve")
    assert await store.resume_waiting(R, "x@", 2, None) is False  # claimed once
    assert await store.buffer_resume(R, "x", 3, None) == "buffered"  # x is claimed
    assert await store.complete(R, done("x", {"ok": True})) == Applied()
    assert await store.complete(R, waits("y")) == Applied(taken=("for-y", None))
    assert await store.complete(R, done("y", "for-y")) == Applied(finished="completed")
    if isinstance(store, RedisCoordinationStore):  # the leftover request was dropped
        assert await store.client.exists(store.keys(R).resume) == 0


async def test_a_cancelled_run_drops_its_buffered_resumes(store: CoordinationStore) -> None:
    await store.create_run(R, blueprint_id="bp", pin="p", context={}, entries=[entry("x")])
    assert await store.buffer_resume(R, None, 1, None) == "buffered"
    assert await store.cancel(R) is True
    assert await store.buffer_resume(R, None, 1, None) == "finished"
    assert await store.complete(R, waits("x")) == Applied(ignored=True, finished="cancelled")
    if isinstance(store, RedisCoordinationStore):
        assert await store.client.exists(store.keys(R).resume) == 0
    else:
        assert isinstance(store, InMemoryCoordinationStore)
        assert store.runs[R].buffered == []


# --------------------------------------------------------------------------- record, replay


class Recording:
    """The in-memory store, recording every call with a copy of its answer."""

    def __init__(self) -> None:
        self.inner = InMemoryCoordinationStore()
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any], Any]] = []

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self.inner, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            answer = await method(*args, **kwargs)
            memo = {id(MISSING): MISSING}
            self.calls.append((name, *copy.deepcopy((args, kwargs, answer), memo)))
            return answer

        return call


def recording_cluster(blueprints: list[dict[str, Any]]) -> tuple[LocalCluster, Recording]:
    cluster = LocalCluster(registry=make_registry(), blueprints=blueprints, workers=1)
    recording = Recording()
    cluster.store = recording  # type: ignore[assignment]
    cluster.worker.store = recording  # type: ignore[assignment]
    return cluster, recording


async def replay(recording: Recording, store: CoordinationStore) -> set[str]:
    for position, (name, args, kwargs, expected) in enumerate(recording.calls):
        answer = await getattr(store, name)(*args, **kwargs)
        assert answer == expected, (position, name, args)
    return {name for name, *_ in recording.calls}


async def test_the_calls_of_sleeps_and_buffered_resumes_get_the_same_answers_on_redis(
    redis_url: str, prefix: str
) -> None:
    cluster, recording = recording_cluster([sleepy("30ms"), APPROVAL, TWO_WAITS])
    await cluster.run("sleepy", run_id="sleep")
    await cluster.start_run("approval", run_id="early")
    assert await cluster.resume("early", "reject", 4) == "buffered"
    await cluster.start_run("twowaits", run_id="two")
    assert await cluster.resume("two", None, "X", node_id="w2") == "buffered"
    await cluster.drain()
    assert await cluster.resume("two", None, "Y") == "resumed"
    await cluster.drain()
    await cluster.run("approval", run_id="twice")
    assert await cluster.resume("twice", "approve", 1) == "resumed"
    assert await cluster.resume("twice", "reject", 2) == "buffered"
    await cluster.drain()
    for run_id in ("sleep", "early", "two", "twice"):
        assert (await cluster.result(run_id)).status == "completed"
    client = _client(redis_url)
    try:
        names = await replay(recording, RedisCoordinationStore(client, prefix=prefix))
    finally:
        await client.aclose()
    assert {"buffer_resume", "resume_waiting", "complete", "load"} <= names
