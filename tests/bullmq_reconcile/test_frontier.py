"""The frontier (what a run is owed) kept alike by the in-memory reference store and the Redis
store: entries and ready successors until they complete, skips and loop ends until their
propagation is applied; and, for every acceptance blueprint, a worker that dies right after any
`complete` leaves exactly what the frontier lists, from which the run heals to the in-process
result.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest
from distributed.test_memory_parity import CASES, comparable, make_registry
from redis.asyncio import Redis
from transition_builders import res, split_key, step

from flowcraft_bullmq import RedisCoordinationStore
from flowcraft_bullmq.keys import FIXED
from flowcraft_core import FlowRuntime
from flowcraft_core.distributed import LocalCluster
from flowcraft_core.distributed.frontier import (
    LOOP_END,
    READY,
    SKIP,
    FrontierEntry,
    entries_of,
    split,
)
from flowcraft_core.distributed.memory import InMemoryCoordinationStore
from flowcraft_core.distributed.protocol import (
    LOOP_END as LOOP_END_OUTCOME,
)
from flowcraft_core.distributed.protocol import (
    SKIPPED,
    WAITING,
    Applied,
    Close,
    Followup,
    Job,
    LoopEnd,
    NextIteration,
    Transition,
)
from flowcraft_core.errors import RunNotFoundError
from flowcraft_core.runtime.plan import get_plan
from flowcraft_core.runtime.state import DEAD, FAILED_RES, TAKEN

R = "r1"


# --------------------------------------------------------------------------- builders


def owed(akey: str, status: int = TAKEN) -> FrontierEntry:
    node_id, iteration = split_key(akey)
    return FrontierEntry(READY if status == TAKEN else SKIP, akey, node_id, iteration, status)


async def start(store: Any, *entries: str, run_id: str = R) -> None:
    followups = [Followup(a, *split_key(a)) for a in entries]
    await store.create_run(run_id, blueprint_id="bp", pin="p", context={}, entries=followups)


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest, client: Redis, prefix: str) -> Any:
    if request.param == "memory":
        return InMemoryCoordinationStore()
    return RedisCoordinationStore(client, prefix=prefix)


# --------------------------------------------------------------------------- bookkeeping


async def test_entries_and_ready_successors_are_owed_until_they_complete(store: Any) -> None:
    await start(store, "a@", "b@")
    assert await store.frontier(R) == [owed("a@"), owed("b@")]
    await store.complete(R, step("a@", res("c@", "a")))
    assert await store.frontier(R) == [owed("b@"), owed("c@")]
    # A redelivered completion replays its answer and changes nothing.
    replay = await store.complete(R, step("a@", res("d@", "a")))
    assert replay.replay
    assert await store.frontier(R) == [owed("b@"), owed("c@")]
    await store.complete(R, step("b@"))
    assert (await store.complete(R, step("c@"))).finished == "completed"
    assert await store.frontier(R) == []


async def test_a_run_without_entries_owes_nothing(store: Any) -> None:
    await start(store)
    assert await store.status(R) == "completed"
    assert await store.frontier(R) == []
    with pytest.raises(RunNotFoundError):
        await store.frontier("nope")


async def test_skips_and_blocks_are_owed_until_propagated(store: Any) -> None:
    await start(store, "a@")
    applied = await store.complete(
        R,
        step(
            "a@",
            res("b@", "a"),
            res("c@", "a", DEAD),
            res("j@", "a", FAILED_RES, expected=2),
        ),
    )
    expected = [owed("b@"), owed("c@", DEAD), owed("j@", FAILED_RES)]
    assert entries_of(applied) == expected
    assert await store.frontier(R) == expected
    # The skipped c propagates: it leaves, its own skipped successor d enters.
    await store.complete(R, step("c@", res("d@", "c", DEAD), outcome=SKIPPED))
    assert await store.frontier(R) == [owed("b@"), owed("d@", DEAD), owed("j@", FAILED_RES)]
    jobs, pending = split(R, await store.frontier(R))
    assert jobs == [Job(R, "b", ())]
    assert pending == Applied(
        skipped=[Followup("d@", "d", (), DEAD), Followup("j@", "j", (), FAILED_RES)]
    )


async def test_a_waiting_activation_is_not_owed_until_resumed(store: Any) -> None:
    await start(store, "a@")
    await store.complete(R, step("a@", res("w@", "a")))
    assert await store.frontier(R) == [owed("w@")]
    await store.complete(R, step("w@~wait", outcome=WAITING, waiting={"k": 1}))
    assert await store.status(R) == "awaiting"
    assert await store.frontier(R) == []
    assert await store.resume_waiting(R, "w@")
    await store.complete(R, step("w@", res("z@", "w")))
    assert await store.frontier(R) == [owed("z@")]


async def test_iterations_and_loop_ends_are_owed(store: Any) -> None:
    """a -> L (header) -> b -> back to L; L --break--> done (exit edge 2)."""
    await start(store, "a@")
    await store.complete(R, step("a@", res("L@0", "a", opens=["L@0"])))
    await store.complete(
        R, step("L@0", res("b@0", "L", opens=["L@0"]), close=[Close("L@0", "L", ())])
    )
    nxt = NextIteration("L@0", "L@1", "b", "L", (1,), 5, open=("L@1",))
    await store.complete(R, step("b@0", nxt=[nxt], close=[Close("L@0", "L", ())]))
    assert await store.frontier(R) == [owed("L@1")]
    await store.complete(
        R,
        step(
            "L@1",
            res("done@", "L"),
            res("b@1", "L", DEAD, opens=["L@1"]),
            exits=[("L#", 2)],
            close=[Close("L@1", "L", ())],
        ),
    )
    assert await store.frontier(R) == [owed("b@1", DEAD), owed("done@")]
    end = LoopEnd("L", (), (2,), ())
    ended = await store.complete(R, step("b@1", outcome=SKIPPED, close=[Close("L@1", "L", ())]))
    assert ended == Applied(loop_ends=[end])
    loop_end = FrontierEntry(LOOP_END, "~end:L#", "L", (), loop_end=end)
    assert await store.frontier(R) == [owed("done@"), loop_end]  # by akey
    assert split(R, [loop_end]) == ([], Applied(loop_ends=[end]))
    await store.complete(R, step("~end:L#", outcome=LOOP_END_OUTCOME))
    assert await store.frontier(R) == [owed("done@")]


async def test_a_nested_loop_end_keeps_the_outer_counters_it_releases(store: Any) -> None:
    await start(store, "s@")
    await store.complete(R, step("s@", res("x@0.0", "s", opens=["O@0", "I@0.0"])))
    closes = [Close("I@0.0", "I", (0,)), Close("O@0", "O", ())]
    await store.complete(R, step("x@0.0", exits=[("I#0", 1)], close=closes))
    inner = LoopEnd("I", (0,), (1,), (Close("O@0", "O", ()),))
    assert await store.frontier(R) == [
        FrontierEntry(LOOP_END, "~end:I#0", "I", (0,), loop_end=inner)
    ]
    await store.complete(
        R, step("~end:I#0", outcome=LOOP_END_OUTCOME, close=[Close("O@0", "O", ())])
    )
    outer = LoopEnd("O", (), (), ())
    assert await store.frontier(R) == [FrontierEntry(LOOP_END, "~end:O#", "O", (), loop_end=outer)]


async def test_the_frontier_key_ends_with_the_run(client: Redis, prefix: str) -> None:
    store = RedisCoordinationStore(client, prefix=prefix, state_ttl_s=60)
    await start(store, "a@", "b@")
    key = f"{prefix}:{{{R}}}:frontier"
    assert await client.ttl(key) == -1  # a live run's keys never expire
    assert await store.cancel(R)
    assert 0 < await client.ttl(key) <= 60
    assert len(await store.frontier(R)) == 2  # cancelled runs are never reconciled


# --------------------------------------------------------------------------- crash anywhere


class _Crash(Exception):
    """The worker process died right after a `complete` (its job and follow-ups are lost)."""


class _CrashAfter:
    """The store, except that the `at`-th `complete` is applied and then the worker dies."""

    def __init__(self, inner: Any, at: int) -> None:
        self.inner = inner
        self.at = at
        self.calls = 0
        self.lost: Applied | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def complete(self, run_id: str, transition: Transition) -> Applied:
        applied = await self.inner.complete(run_id, transition)
        self.calls += 1
        if self.calls == self.at:
            self.lost = applied
            raise _Crash
        return applied


def _cluster(store: Any, blueprint: dict[str, Any]) -> LocalCluster:
    cluster = LocalCluster(registry=make_registry(), blueprints=[blueprint], workers=3)
    cluster.store = store
    cluster.worker.store = store
    handle = cluster.worker.handle

    async def dying_worker(job: Job, **options: Any) -> None:
        try:
            await handle(job, **options)
        except _Crash:
            pass  # the job is gone with the worker

    cluster.worker.handle = dying_worker  # type: ignore[method-assign]
    return cluster


async def _completes(blueprint: dict[str, Any], context: dict[str, Any] | None) -> int:
    counting = _CrashAfter(InMemoryCoordinationStore(), 0)
    await _cluster(counting, blueprint).run(blueprint["id"], context, run_id="count")
    return counting.calls


@pytest.mark.parametrize("backend", ["memory", "redis"])
@pytest.mark.parametrize("name", sorted(CASES))
async def test_a_crash_after_any_complete_leaves_the_frontier_to_heal_from(
    name: str, backend: str, client: Redis, prefix: str
) -> None:
    blueprint, context = CASES[name]
    local = await FlowRuntime(registry=make_registry(), blueprints=[blueprint]).run(
        blueprint["id"], context, run_id="crash"
    )
    plan = get_plan(FlowRuntime(blueprints=[blueprint]).blueprints[blueprint["id"]])
    total = await _completes(blueprint, context)
    assert total >= 3
    for at in range(1, total + 1):
        run_id = f"{name}-{at}".replace("_", "-")
        inner: Any = (
            InMemoryCoordinationStore()
            if backend == "memory"
            else RedisCoordinationStore(client, prefix=prefix)
        )
        store = _CrashAfter(inner, at)
        cluster = _cluster(store, blueprint)
        await cluster.start_run(blueprint["id"], context, run_id=run_id)
        await cluster.drain()
        assert store.lost is not None, at
        frontier = await store.frontier(run_id)
        # Nothing the lost answer owed is forgotten, and a run still running is owed something.
        assert all(entry in frontier for entry in entries_of(store.lost)), (at, frontier)
        assert (await store.status(run_id) == "running") == bool(frontier), (at, frontier)
        # Heal from the recorded state only (what BullMQAdapter.reconcile does).
        jobs, pending = split(run_id, frontier)
        for job in jobs:
            cluster.queue.queue.put_nowait(job)
        await cluster.worker.follow(plan, run_id, pending)
        await cluster.drain()
        result = await cluster.result(run_id)
        assert comparable(result, frozenset({"_executionId"})) == comparable(
            local, frozenset({"_executionId"})
        ), at
        assert await store.frontier(run_id) == []


def test_the_scripts_count_the_fixed_keys_keys_py_defines() -> None:
    """Join keys follow the fixed keys in KEYS: lib.lua's count must be keys.FIXED's."""
    lib = resources.files("flowcraft_bullmq").joinpath("lua", "lib.lua").read_text("utf-8")
    assert f"local FIXED_KEYS = {len(FIXED)}\n" in lib
    assert FIXED[-1] == "frontier"
