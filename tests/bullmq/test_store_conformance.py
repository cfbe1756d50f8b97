"""One conformance suite for every coordination store (APScheduler style): the in-memory
reference (`InMemoryCoordinationStore`) and `RedisCoordinationStore` must answer every call
alike. Then Redis-only checks (TTLs, key layout, scripts) and end-to-end parity: `LocalCluster`
on the Redis store against `FlowRuntime` with the blueprints of tests/distributed.

Transitions are built by hand here, so each join, loop and in-flight rule is pinned directly.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

import pytest
from distributed.subflow_cases import (
    SCENARIOS,
    blueprints,
    in_process,
    on_cluster,
    registry_of,
    same,
)
from distributed.test_memory_parity import CASES, comparable, make_registry, n, random_batches
from hypothesis import given, settings
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.crc import key_slot
from runtime.test_random_dags import Workload
from strategies import workflow_dags
from transition_builders import fu, ready, res, step

from flowcraft_bullmq import RedisContext, RedisCoordinationStore
from flowcraft_bullmq.multiplex import Multiplexer
from flowcraft_bullmq.scripts import NAMES
from flowcraft_core import FlowRuntime, InMemoryEventBus, NodeRegistry, WorkflowResult
from flowcraft_core.context import DELETED, MISSING
from flowcraft_core.distributed import Job, LocalCluster
from flowcraft_core.distributed.memory import InMemoryCoordinationStore
from flowcraft_core.distributed.protocol import (
    LOOP_END,
    PARKED,
    SKIPPED,
    WAITING,
    Applied,
    BatchOpen,
    Close,
    CoordinationStore,
    ItemEnd,
    LoopEnd,
    NextIteration,
    Resolution,
    Transition,
)
from flowcraft_core.errors import RunNotFoundError
from flowcraft_core.runtime.state import DEAD, FAILED_RES, TAKEN

R = "r1"


# --------------------------------------------------------------------------- builders


def error(node_id: str = "a") -> dict[str, Any]:
    return {"nodeId": node_id, "type": "ValueError", "message": "boom", "attempts": 1}


async def start(
    store: CoordinationStore,
    *entries: str,
    run_id: str = R,
    context: dict[str, Any] | None = None,
) -> None:
    await store.create_run(
        run_id,
        blueprint_id="bp",
        pin="sha256:pin",
        context=context or {},
        entries=[fu(a) for a in entries],
    )


@pytest.fixture(params=["memory", "redis", "redis-multiplexed"])
async def store(
    request: pytest.FixtureRequest, redis_client: Redis
) -> AsyncIterator[CoordinationStore]:
    if request.param == "memory":
        yield InMemoryCoordinationStore()
    elif request.param == "redis":
        yield RedisCoordinationStore(redis_client)
    else:  # the scripts on the worker's pipelined connection (multiplex.py)
        via = Multiplexer(redis_client)
        try:
            yield RedisCoordinationStore(redis_client, scripts_via=via)
        finally:
            await via.aclose()


# --------------------------------------------------------------------------- runs and context

ODD_VALUES: dict[str, Any] = {
    "big": 2**70,
    "float": 0.1,
    "negative": -1.5e-300,
    "none": None,
    "empty_list": [],
    "empty_dict": {},
    "nested": {"a": [1, {"b": None, "c": [[]]}], "d": True},
    "text": 'üñí "quoted" \\ / {braces} ]]',
}


async def test_create_run_and_read_it_back(store: CoordinationStore) -> None:
    await start(store, "a@", context=ODD_VALUES)
    assert await store.status(R) == "running"
    assert await store.snapshot(R) == ODD_VALUES
    assert await store.get(R, "big") == 2**70
    assert await store.get(R, "none") is None
    assert await store.get(R, "absent") is MISSING
    assert await store.result(R) == ("running", ODD_VALUES, [], {})
    loaded = await store.load(R, "a@", ["text", "absent", "empty_list"])
    assert loaded.status == "running"
    assert (loaded.blueprint_id, loaded.pin) == ("bp", "sha256:pin")
    assert loaded.done is None and loaded.fired is None and not loaded.waiting
    assert loaded.join == {}
    assert loaded.values == {"text": ODD_VALUES["text"], "empty_list": []}
    assert (await store.load(R, "a@", None)).values == ODD_VALUES
    assert (await store.load(R, "", ())).values == {}


async def test_a_run_id_is_created_once(store: CoordinationStore) -> None:
    await start(store, "a@")
    with pytest.raises(ValueError, match="already exists"):
        await start(store, "b@")
    assert (await store.load(R, "a@", None)).blueprint_id == "bp"


async def test_a_run_without_entries_completes_at_once(store: CoordinationStore) -> None:
    await start(store, context={"k": 1})
    assert await store.result(R) == ("completed", {"k": 1}, [], {})


async def test_unknown_runs_are_not_found(store: CoordinationStore) -> None:
    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: store.load("nope", "a@", None),
        lambda: store.complete("nope", step("a@")),
        lambda: store.get("nope", "k"),
        lambda: store.snapshot("nope"),
        lambda: store.commit("nope", [("k", 1, False)]),
        lambda: store.status("nope"),
        lambda: store.result("nope"),
        lambda: store.resume_waiting("nope", "a@"),
        lambda: store.cancel("nope"),
        lambda: store.fail_run("nope", error()),
    ]
    for call in calls:
        with pytest.raises(RunNotFoundError, match="'nope'"):
            await call()


async def test_commit_applies_writes_in_order(store: CoordinationStore) -> None:
    await start(store, "a@", context={"gone": 1, "kept": 2})
    await store.commit(
        R,
        [
            ("gone", None, True),
            ("twice", 1, False),
            ("twice", None, True),
            ("null", None, False),
            ("kept", ODD_VALUES["nested"], False),
            ("never", None, True),
        ],
    )
    await store.commit(R, [])
    assert await store.snapshot(R) == {"kept": ODD_VALUES["nested"], "null": None}
    assert await store.get(R, "null") is None
    assert await store.get(R, "twice") is MISSING


async def test_redis_context_is_the_context_store_port(redis_client: Redis) -> None:
    redis_store = RedisCoordinationStore(redis_client)
    await start(redis_store, "a@", context={"a": 1})
    context = redis_store.context(R)
    assert isinstance(context, RedisContext)
    await context.commit([("b", [2]), ("a", DELETED)])
    assert await context.get("a") is MISSING
    assert await context.get("b") == [2]
    assert await context.snapshot() == {"b": [2]}


# --------------------------------------------------------------------------- complete


async def test_a_chain_enqueues_its_successor_and_finishes(store: CoordinationStore) -> None:
    await start(store, "a@", context={"k": 0})
    applied = await store.complete(
        R,
        step(
            "a@",
            res("b@", "a", value=7),
            output={"x": 2**70},
            output_keys=("_outputs.a", "_outputs.stand"),
            ops=[("k", 1, False), ("_outputs.a", "overwritten by the output", False)],
        ),
    )
    assert applied == Applied(ready=ready("b@"))
    loaded = await store.load(R, "b@", ["k", "_outputs.a"])
    assert loaded.join == {"a": (TAKEN, 7)}
    assert loaded.values == {"k": 1, "_outputs.a": {"x": 2**70}}
    assert (await store.load(R, "a@", ())).done == Applied(ready=ready("b@"))
    done = await store.complete(R, step("b@", output=None, output_keys=("_outputs.b",)))
    assert done == Applied(finished="completed")
    status, context, errors, waiting = await store.result(R)
    assert (status, errors, waiting) == ("completed", [], {})
    assert context == {"k": 1, "_outputs.a": {"x": 2**70}, "_outputs.stand": {"x": 2**70}} | {
        "_outputs.b": None
    }


async def test_many_context_writes_land_in_order(store: CoordinationStore) -> None:
    """complete.lua writes a run of sets as one HSET of at most 500 pairs, and a delete
    after the sets before it: a key set, deleted and set again ends with its last value."""
    await start(store, "a@", context={"old": 0})
    ops = [(f"k{i}", i, False) for i in range(1200)]
    ops += [("k5", None, True), ("old", None, True), ("k7", "again", False), ("k5", 5.5, False)]
    ops += [("k9", None, True)]
    await store.complete(R, step("a@", ops=ops, output=1, output_keys=("k8", "_outputs.a")))
    status, context, _, _ = await store.result(R)
    expected: dict[str, Any] = {f"k{i}": i for i in range(1200)}
    expected |= {"k5": 5.5, "k7": "again", "k8": 1, "_outputs.a": 1}
    del expected["k9"]
    assert (status, context) == ("completed", expected)


async def test_a_redelivered_transition_replays_and_changes_nothing(
    store: CoordinationStore,
) -> None:
    await start(store, "a@")
    first = await store.complete(
        R,
        step("a@", res("b@", "a"), res("c@", "a", DEAD), output=1, output_keys=("_outputs.a",)),
    )
    assert first == Applied(ready=ready("b@"), skipped=[fu("c@", DEAD)])
    before = await store.result(R)
    again = await store.complete(
        R,
        step("a@", res("d@", "a"), output=2, output_keys=("_outputs.a",), error=error()),
    )
    assert again == dataclasses.replace(first, replay=True)
    assert await store.result(R) == before
    assert (await store.load(R, "d@", ())).join == {}
    # In-flight count unchanged by the replay: b and c end, and the run completes.
    assert (await store.complete(R, step("b@"))).finished is None
    assert (await store.complete(R, step("c@", outcome=SKIPPED))).finished == "completed"
    # A finished run ignores everything, recorded or not.
    late = await store.complete(R, step("b@"))
    assert late == Applied(ignored=True, finished="completed")


async def test_an_all_join_waits_for_every_predecessor(store: CoordinationStore) -> None:
    await start(store, "a@")
    fan_out = await store.complete(R, step("a@", res("b@", "a"), res("c@", "a")))
    assert fan_out.ready == ready("b@", "c@")
    first = await store.complete(R, step("b@", res("d@", "b", value="vb", expected=2)))
    assert first == Applied()
    assert (await store.load(R, "d@", ())).join == {"b": (TAKEN, "vb")}
    second = await store.complete(R, step("c@", res("d@", "c", DEAD, expected=2)))
    assert second == Applied(ready=ready("d@"))
    assert (await store.load(R, "d@", ())).join == {"b": (TAKEN, "vb"), "c": (DEAD, None)}
    assert (await store.complete(R, step("d@"))).finished == "completed"


async def test_a_duplicate_predecessor_never_counts_twice(store: CoordinationStore) -> None:
    await start(store, "b@", "c@", "x@", "y@")
    assert await store.complete(R, step("b@", res("d@", "b", value=1, expected=2))) == Applied()
    # The same predecessor again (another transition, e.g. a stand-in): not counted.
    assert await store.complete(R, step("x@", res("d@", "b", value=2, expected=2))) == Applied()
    assert (await store.load(R, "d@", ())).join == {"b": (TAKEN, 1)}
    fired = await store.complete(R, step("c@", res("d@", "c", expected=2)))
    assert fired == Applied(ready=ready("d@"))
    # Once decided, a join never fires again.
    assert await store.complete(R, step("y@", res("d@", "c", expected=2))) == Applied()


async def test_an_all_join_of_dead_predecessors_is_skipped(store: CoordinationStore) -> None:
    await start(store, "a@", "b@")
    assert await store.complete(R, step("a@", res("j@", "a", DEAD, expected=2))) == Applied()
    skipped = await store.complete(R, step("b@", res("j@", "b", DEAD, expected=2)))
    assert skipped == Applied(skipped=[fu("j@", DEAD)])


async def test_a_failed_predecessor_blocks_a_join_at_once(store: CoordinationStore) -> None:
    await start(store, "a@", "b@")
    blocked = await store.complete(R, step("a@", res("j@", "a", FAILED_RES, expected=2)))
    assert blocked == Applied(skipped=[fu("j@", FAILED_RES)])
    assert await store.complete(R, step("b@", res("j@", "b", expected=2))) == Applied()
    assert (await store.load(R, "j@", ())).join == {"a": (FAILED_RES, None)}


async def test_an_any_join_fires_once_and_records_its_firing_predecessor(
    store: CoordinationStore,
) -> None:
    await start(store, "a@", "b@", "c@")
    dead = await store.complete(R, step("a@", res("j@", "a", DEAD, expected=3, any_=True)))
    assert dead == Applied()
    fired = await store.complete(R, step("b@", res("j@", "b", value="vb", expected=3, any_=True)))
    assert fired == Applied(ready=ready("j@"))
    late = await store.complete(R, step("c@", res("j@", "c", value="vc", expected=3, any_=True)))
    assert late == Applied()
    loaded = await store.load(R, "j@", ())
    assert loaded.fired == "b"
    assert loaded.join == {"a": (DEAD, None), "b": (TAKEN, "vb")}


async def test_an_any_join_is_blocked_by_a_failure_before_any_taken_edge(
    store: CoordinationStore,
) -> None:
    await start(store, "a@", "b@")
    blocked = await store.complete(R, step("a@", res("j@", "a", FAILED_RES, expected=2, any_=True)))
    assert blocked == Applied(skipped=[fu("j@", FAILED_RES)])
    assert await store.complete(R, step("b@", res("j@", "b", expected=2, any_=True))) == Applied()
    assert (await store.load(R, "j@", ())).fired is None


async def test_unreachable_predecessors_count_as_dead_from_the_start(
    store: CoordinationStore,
) -> None:
    await start(store, "a@", "b@", "u@")
    pending = await store.complete(
        R, step("a@", res("j@", "a", value=1, expected=3, dead=["u"], opens=()))
    )
    assert pending == Applied()
    assert (await store.load(R, "j@", ())).join == {"u": (DEAD, None), "a": (TAKEN, 1)}
    # A resolution from the prefilled predecessor is already recorded: ignored.
    assert await store.complete(R, step("u@", res("j@", "u", expected=3, dead=["u"]))) == Applied()
    fired = await store.complete(R, step("b@", res("j@", "b", DEAD, expected=3, dead=["u"])))
    assert fired == Applied(ready=ready("j@"))


async def test_concurrent_predecessors_fire_a_join_exactly_once(store: CoordinationStore) -> None:
    preds = [f"p{i}" for i in range(25)]
    await start(store, *(f"{p}@" for p in preds))
    answers = await asyncio.gather(
        *(
            store.complete(R, step(f"{p}@", res("j@", p, value=i, expected=len(preds))))
            for i, p in enumerate(preds)
        )
    )
    assert [a.ready for a in answers if a.ready] == [ready("j@")]
    assert len((await store.load(R, "j@", ())).join) == len(preds)
    assert (await store.complete(R, step("j@"))).finished == "completed"


# --------------------------------------------------------------------------- loops


async def test_loop_counters_back_edges_and_the_loop_end(store: CoordinationStore) -> None:
    """a -> L (header) -> b -> back to L; L --break--> done (exit edge 2)."""
    await start(store, "a@")
    entered = await store.complete(R, step("a@", res("L@0", "a", opens=["L@0"])))
    assert entered == Applied(ready=ready("L@0"))
    body = await store.complete(
        R, step("L@0", res("b@0", "L", opens=["L@0"]), close=[Close("L@0", "L", ())])
    )
    assert body == Applied(ready=ready("b@0"))
    # The back edge starts L@1 (counter L@1); L@0 reaches 0 with its back edge taken: no end.
    nxt = NextIteration("L@0", "L@1", "b", "L", (1,), 5, open=("L@1",))
    again = await store.complete(R, step("b@0", nxt=[nxt], close=[Close("L@0", "L", ())]))
    assert again == Applied(ready=ready("L@1"))
    assert (await store.load(R, "L@1", ())).join == {"b": (TAKEN, 5)}
    breaks = await store.complete(
        R,
        step(
            "L@1",
            res("done@", "L", value="out"),
            res("b@1", "L", DEAD, opens=["L@1"]),
            exits=[("L#", 2)],
            close=[Close("L@1", "L", ())],
        ),
    )
    assert breaks == Applied(ready=ready("done@"), skipped=[fu("b@1", DEAD)])
    # The skipped body releases L@1's last activation with no back edge: the loop ends.
    end = await store.complete(R, step("b@1", outcome=SKIPPED, close=[Close("L@1", "L", ())]))
    assert end == Applied(loop_ends=[LoopEnd("L", (), (2,), ())])
    assert await store.complete(R, step("~end:L#", outcome=LOOP_END)) == Applied()
    assert (await store.complete(R, step("done@"))).finished == "completed"


async def test_a_back_edge_is_taken_once_per_iteration(store: CoordinationStore) -> None:
    await start(store, "a@")
    await store.complete(R, step("a@", res("L@0", "a", opens=["L@0"])))
    fan = await store.complete(
        R,
        step(
            "L@0",
            res("b@0", "L", opens=["L@0"]),
            res("c@0", "L", opens=["L@0"]),
            close=[Close("L@0", "L", ())],
        ),
    )
    assert fan.ready == ready("b@0", "c@0")
    first = NextIteration("L@0", "L@1", "b", "L", (1,), "from b", open=("L@1",))
    second = NextIteration("L@0", "L@1", "c", "L", (1,), "from c", open=("L@1",))
    by_b = await store.complete(R, step("b@0", nxt=[first], close=[Close("L@0", "L", ())]))
    assert by_b == Applied(ready=ready("L@1"))
    by_c = await store.complete(R, step("c@0", nxt=[second], close=[Close("L@0", "L", ())]))
    assert by_c == Applied()
    assert (await store.load(R, "L@1", ())).join == {"b": (TAKEN, "from b")}
    ends = await store.complete(R, step("L@1", close=[Close("L@1", "L", ())]))
    assert ends == Applied(loop_ends=[LoopEnd("L", (), (), ())])


async def test_a_loop_end_leaves_the_outer_counters_to_its_transition(
    store: CoordinationStore,
) -> None:
    """x runs in inner loop I inside outer loop O; its end closes I@0.0 then O@0."""
    await start(store, "s@")
    await store.complete(R, step("s@", res("x@0.0", "s", opens=["O@0", "I@0.0"])))
    closes = [Close("I@0.0", "I", (0,)), Close("O@0", "O", ())]
    inner = await store.complete(R, step("x@0.0", exits=[("I#0", 1)], close=closes))
    assert inner == Applied(loop_ends=[LoopEnd("I", (0,), (1,), (Close("O@0", "O", ()),))])
    outer = await store.complete(
        R, step("~end:I#0", outcome=LOOP_END, close=[Close("O@0", "O", ())])
    )
    assert outer == Applied(loop_ends=[LoopEnd("O", (), (), ())])
    done = await store.complete(R, step("~end:O#", outcome=LOOP_END))
    assert done == Applied(finished="completed")


async def test_exits_are_kept_per_loop_instance(store: CoordinationStore) -> None:
    await start(store, "s@")
    await store.complete(
        R,
        step("s@", res("x@0.0", "s", opens=["I@0.0"]), res("x@1.0", "s", opens=["I@1.0"])),
    )
    first = await store.complete(
        R,
        step(
            "x@0.0",
            exits=[("I#0", 3), ("I#0", 1), ("I#0", 3), ("I#0", 10)],
            close=[Close("I@0.0", "I", (0,))],
        ),
    )
    assert first == Applied(loop_ends=[LoopEnd("I", (0,), (1, 3, 10), ())])
    second = await store.complete(
        R, step("x@1.0", exits=[("I#1", 2)], close=[Close("I@1.0", "I", (1,))])
    )
    assert second == Applied(loop_ends=[LoopEnd("I", (1,), (2,), ())])


# --------------------------------------------------------------------------- waits and ends


async def test_a_waiting_activation_is_resumed_once_claimed(store: CoordinationStore) -> None:
    await start(store, "w@")
    details = {"kind": "wait", "iteration": []}
    paused = await store.complete(R, step("w@~wait", outcome=WAITING, waiting=details))
    assert paused == Applied(finished="awaiting")
    assert await store.result(R) == ("awaiting", {}, [], {"w@": details})
    assert (await store.load(R, "w@", ())).waiting
    assert await store.resume_waiting(R, "other@") is False
    assert await store.resume_waiting(R, "w@") is True
    assert await store.status(R) == "running"
    resumed = await store.complete(R, step("w@", res("n@", "w", value="ok")))
    assert resumed == Applied(ready=ready("n@"))
    assert not (await store.load(R, "w@", ())).waiting
    assert (await store.complete(R, step("n@"))).finished == "completed"
    assert await store.resume_waiting(R, "w@") is False


async def test_a_second_claim_of_the_same_wait_is_refused(store: CoordinationStore) -> None:
    # A webhook delivered twice: only the first resume counts, so the run still finishes.
    await start(store, "w@")
    await store.complete(R, step("w@~wait", outcome=WAITING, waiting={"iteration": []}))
    assert await store.resume_waiting(R, "w@") is True
    assert await store.resume_waiting(R, "w@") is False
    assert (await store.complete(R, step("w@"))).finished == "completed"
    assert (await store.complete(R, step("w@"))).ignored
    assert await store.status(R) == "completed"


async def test_a_subflow_activation_follows_its_child_episode_by_episode(
    store: CoordinationStore,
) -> None:
    """Parked (in flight), waiting once per child episode, re-armed only by a newer episode,
    completed once whether it waits or not; stale child-driven waits change nothing."""
    await start(store, "s@")
    record = {"runId": "r1-s-0", "blueprintId": "child", "context": {"k": [1]}, "input": None}
    parked = Transition("s@~child", "s", (), PARKED, child=record)
    assert await store.complete(R, parked) == Applied()
    loaded = await store.load(R, "s@", ())
    assert (loaded.child, loaded.episode, loaded.status) == (record, 0, "running")
    assert [e.akey for e in await store.frontier(R)] == ["s@"]  # still owed

    def wait(episode: int, awaiting: list[str]) -> Transition:
        details = {"reason": "subflow", "childRunId": "r1-s-0", "awaiting": awaiting}
        return Transition(f"s@~wait~{episode}", "s", (), WAITING, waiting=details, episode=episode)

    assert await store.complete(R, wait(0, ["w1", "w2"])) == Applied(finished="awaiting")
    assert (await store.complete(R, wait(0, ["w1", "w2"]))).replay
    assert await store.frontier(R) == []
    assert await store.rearm(R, "s@", 0) is False  # the child still waits in episode 0
    assert await store.rearm(R, "s@", 1) is True
    assert (await store.status(R), (await store.load(R, "", ())).episode) == ("running", 1)
    assert await store.rearm(R, "s@", 1) is False
    assert (await store.complete(R, wait(1, ["w1"]))).finished == "awaiting"
    # The child waits again and moves on without the parent: the newer wait replaces it.
    replaced = await store.complete(R, wait(3, ["w3"]))
    assert (replaced.ignored, await store.status(R)) == (False, "awaiting")
    assert (await store.result(R))[3]["s@"]["awaiting"] == ["w3"]
    assert (await store.complete(R, wait(2, ["w2"]))).ignored  # older than the wait
    # The child finished: the waiting activation completes, the run is running again first.
    done = step("s@", res("n@", "s", value="out"))
    done.episode = 4
    assert await store.complete(R, done) == Applied(ready=ready("n@"))
    assert (await store.status(R), (await store.load(R, "", ())).episode) == ("running", 2)
    assert (await store.complete(R, wait(5, ["w5"]))).ignored  # completed already
    assert await store.rearm(R, "s@", 9) is False
    assert (await store.complete(R, step("n@"))).finished == "completed"


async def test_a_child_run_records_its_parent(store: CoordinationStore) -> None:
    await store.create_run(
        "p-s-1.2",
        blueprint_id="child",
        pin="sha256:pin",
        context={},
        entries=ready("a@"),
        parent=("p", "s", (1, 2)),
    )
    loaded = await store.load("p-s-1.2", "", ())
    assert (tuple(loaded.parent or ()), loaded.episode) == (("p", "s", (1, 2)), 0)
    assert (await store.load("p-s-1.2", "", ())).child is None
    await start(store, "a@", run_id="orphan")
    assert (await store.load("orphan", "", ())).parent is None


async def test_the_final_status_prefers_failed_then_awaiting_then_stalled(
    store: CoordinationStore,
) -> None:
    await start(store, "a@", "w@", run_id="failed")
    await store.complete("failed", step("w@~wait", outcome=WAITING, waiting={}))
    failed = await store.complete("failed", step("a@", error=error()))
    assert failed == Applied(finished="failed")
    assert await store.result("failed") == ("failed", {}, [error()], {"w@": {}})

    await start(store, "a@", "w@", run_id="awaiting")
    await store.complete("awaiting", step("a@", res("j@", "a", expected=2)))
    assert (await store.complete("awaiting", step("w@~wait", outcome=WAITING, waiting={}))) == (
        Applied(finished="awaiting")
    )

    await start(store, "a@", run_id="stalled")
    stalled = await store.complete("stalled", step("a@", res("j@", "a", expected=2)))
    assert stalled == Applied(finished="stalled")
    assert await store.status("stalled") == "stalled"


async def test_cancel_moves_a_live_run_to_cancelled_once(store: CoordinationStore) -> None:
    await start(store, "a@", context={"k": 1})
    assert await store.cancel(R) is True
    assert await store.cancel(R) is False
    assert await store.status(R) == "cancelled"
    ignored = await store.complete(R, step("a@", output=1, output_keys=("_outputs.a",)))
    assert ignored == Applied(ignored=True, finished="cancelled")
    await store.fail_run(R, error())
    assert await store.result(R) == ("cancelled", {"k": 1}, [], {})

    await start(store, "w@", run_id="awaiting")
    await store.complete("awaiting", step("w@~wait", outcome=WAITING, waiting={}))
    assert await store.cancel("awaiting") is True
    assert await store.resume_waiting("awaiting", "w@") is False

    await start(store, run_id="completed")
    assert await store.cancel("completed") is False
    assert await store.status("completed") == "completed"


async def test_fail_run_records_a_run_level_error_once(store: CoordinationStore) -> None:
    await start(store, "a@")
    await store.fail_run(R, error("x"))
    await store.fail_run(R, error("y"))
    assert await store.result(R) == ("failed", {}, [error("x")], {})
    assert await store.complete(R, step("a@")) == Applied(ignored=True, finished="failed")
    assert await store.cancel(R) is False


# --------------------------------------------------------------------------- Redis only


async def _ttls(client: Redis) -> dict[str, int]:
    return {key: await client.ttl(key) async for key in client.scan_iter("*")}


async def test_a_live_run_has_no_ttl_and_a_finished_one_expires(redis_client: Redis) -> None:
    redis_store = RedisCoordinationStore(redis_client, state_ttl_s=600)
    await start(redis_store, "a@", context={"k": 1})
    await redis_store.complete(R, step("a@", res("w@", "a"), res("j@", "a", expected=2)))
    await redis_store.complete(R, step("w@~wait", outcome=WAITING, waiting={}))
    assert await redis_store.status(R) == "awaiting"
    live = await _ttls(redis_client)
    assert f"flowcraft:{{{R}}}:join:j@" in live
    assert set(live.values()) == {-1}
    await redis_store.resume_waiting(R, "w@")
    await redis_store.complete(R, step("w@", res("j@", "w", expected=2)))
    await redis_store.complete(R, step("j@"))
    assert await redis_store.status(R) == "completed"
    ended = await _ttls(redis_client)
    assert set(ended) == set(live) - {f"flowcraft:{{{R}}}:waiting"}  # emptied hashes go
    assert all(590 <= ttl <= 600 for ttl in ended.values()), ended
    # A late commit on the finished run: the context hash keeps the run's TTL.
    await redis_store.commit(R, [(k, None, True) for k in await redis_store.snapshot(R)])
    assert await redis_client.exists(f"flowcraft:{{{R}}}:ctx") == 0
    await redis_store.commit(R, [("late", 1, False)])
    assert 0 < await redis_client.ttl(f"flowcraft:{{{R}}}:ctx") <= 600


async def test_state_ttl_zero_keeps_the_keys_of_finished_runs(redis_client: Redis) -> None:
    redis_store = RedisCoordinationStore(redis_client, state_ttl_s=0)
    await start(redis_store, "a@", run_id="done")
    await redis_store.complete("done", step("a@", res("b@", "a")))
    await redis_store.complete("done", step("b@"))
    await start(redis_store, "a@", run_id="gone")
    await redis_store.cancel("gone")
    await start(redis_store, run_id="empty")
    ttls = await _ttls(redis_client)
    assert len(ttls) > 3
    assert set(ttls.values()) == {-1}


@pytest.mark.parametrize("end", ["cancel", "fail_run", "no entries"])
async def test_every_final_status_sets_the_ttl(redis_client: Redis, end: str) -> None:
    redis_store = RedisCoordinationStore(redis_client, state_ttl_s=60)
    if end == "no entries":
        await start(redis_store, context={"k": 1})
    else:
        await start(redis_store, "a@", context={"k": 1})
        await redis_store.complete(R, step("a@", res("j@", "a", expected=2), res("b@", "a")))
        assert set((await _ttls(redis_client)).values()) == {-1}
        if end == "cancel":
            await redis_store.cancel(R)
        else:
            await redis_store.fail_run(R, error())
    ttls = await _ttls(redis_client)
    assert ttls and all(0 < ttl <= 60 for ttl in ttls.values()), ttls


async def test_every_key_is_under_the_prefix_and_tagged_with_the_run(redis_client: Redis) -> None:
    redis_store = RedisCoordinationStore(redis_client, prefix="fc.test")
    for run_id in ("r1", "r-2.x~y_z"):
        await start(redis_store, "a@", run_id=run_id, context={"k": 1})
        await redis_store.complete(
            run_id,
            step(
                "a@",
                res("{odd}:node@", "a", value={"v": 1}, expected=2, dead=["u"], opens=["L@0"]),
                res("b@", "a", opens=["L@0"]),
                exits=[("L#", 0)],
                error=error(),
            ),
        )
        await redis_store.complete(run_id, step("w@~wait", outcome=WAITING, waiting={}))
    keys = await _ttls(redis_client)
    for run_id in ("r1", "r-2.x~y_z"):
        mine = [k for k in keys if k.startswith(f"fc.test:{{{run_id}}}:")]
        assert {key_slot(k.encode()) for k in mine} == {key_slot(run_id.encode())}
        assert {k.split(":", 2)[2] for k in mine} >= {"meta", "ctx", "errors", "acts"}
        assert f"fc.test:{{{run_id}}}:join:{{odd}}:node@" in mine
    assert all(k.startswith(("fc.test:{r1}:", "fc.test:{r-2.x~y_z}:")) for k in keys)


async def test_create_run_clears_what_an_expired_run_left(redis_client: Redis) -> None:
    redis_store = RedisCoordinationStore(redis_client)
    await start(redis_store, "a@")
    await redis_store.complete(R, step("a@", res("j@", "a", expected=2)))
    # Keys expire one by one: the meta key went first.
    await redis_client.delete(f"flowcraft:{{{R}}}:meta")
    await start(redis_store, "a@")
    assert (await redis_store.load(R, "a@", ())).done is None
    assert (await redis_store.load(R, "j@", ())).join == {}
    left = {f"flowcraft:{{{R}}}:{name}" for name in ("meta", "frontier")}  # a@ is owed
    assert set(await _ttls(redis_client)) == left


async def test_the_store_validates_its_options(redis_client: Redis, redis_port: int) -> None:
    for prefix in ("", "a{b", "a}b", "a\nb"):
        with pytest.raises(ValueError, match="prefix"):
            RedisCoordinationStore(redis_client, prefix=prefix)
    for ttl in (-1, 1.5, True):
        with pytest.raises(ValueError, match="state_ttl_s"):
            RedisCoordinationStore(redis_client, state_ttl_s=ttl)  # type: ignore[arg-type]
    raw = Redis(host="127.0.0.1", port=redis_port)
    try:
        with pytest.raises(ValueError, match="decode_responses"):
            RedisCoordinationStore(raw)
    finally:
        await raw.aclose()
    redis_store = RedisCoordinationStore(redis_client)
    with pytest.raises(ValueError, match="invalid run id"):
        await redis_store.status("a{b}")


def test_every_script_starts_with_its_keys_and_argv() -> None:
    lua = resources.files("flowcraft_bullmq").joinpath("lua")
    names = sorted(p.name for p in lua.iterdir() if p.name.endswith(".lua"))
    # lib.lua is put in front of scripts; active_load.lua after BullMQ's, fetched_load.lua (a
    # function, its parameters listed instead) in the scripts that fetch a job (composed.py).
    functions = ["fetched_load.lua"]
    extra = ["lib.lua", "active_load.lua", *functions]
    assert names == sorted([f"{name}.lua" for name in NAMES] + extra)
    for name in names:
        head = lua.joinpath(name).read_text("utf-8").split("]==]", 1)[0]
        assert head.startswith(f"--[==[ {name.removesuffix('.lua')}"), name
        if name in functions:
            assert "load_fetched(reply" in head, name
        else:
            assert "KEYS[1" in head and "ARGV" in head, name


# --------------------------------------------------------------------------- batches


def item_end(index: int, output: Any = None, *, failed: bool = False) -> Transition:
    t = step(f"s[{index}]@", output=output, error=error(f"s[{index}]") if failed else None)
    t.item = ItemEnd("s@", index)
    return t


def gated(pred: str) -> Resolution:
    r = res("g@", pred, expected=2)
    r.gate = "s@"
    return r


async def test_a_batch_starts_chunk_items_then_one_per_ended_item(
    store: CoordinationStore,
) -> None:
    """SPEC 9.7: at most `chunk` items in flight; the gather is parked until every item ended,
    then gets the results in item order; item outputs stay out of the context."""
    await start(store, "s@", "x@")
    scatter = step("s@", gated("s"), output={"itemCount": 3})
    scatter.batch = BatchOpen("s@", "s", (), ["a", None, {"k": [1]}], 2, "g@")
    assert (await store.complete(R, scatter)).ready == ready("s[0]@", "s[1]@")
    loaded = await store.load(R, "s[1]@", ())
    assert loaded.batch_input == (None,) and loaded.done is None
    # The gather's join is satisfied while items run: parked, neither ready nor skipped.
    assert await store.complete(R, step("x@", gated("x"))) == Applied()
    assert (await store.complete(R, item_end(1, "B"))).ready == ready("s[2]@")
    # Redelivered: the same answer, no item started or counted twice.
    again = await store.complete(R, item_end(1, "B"))
    assert (again.replay, again.ready) == (True, ready("s[2]@"))
    assert (await store.complete(R, item_end(0, "A"))).ready == []
    last = await store.complete(R, item_end(2, ["C"]))
    assert (last.ready, last.finished) == (ready("g@"), None)
    assert (await store.load(R, "g@", ())).batch_input == (["A", "B", ["C"]],)
    assert await store.snapshot(R) == {}
    assert (await store.complete(R, step("g@"))).finished == "completed"


async def test_a_failed_item_stops_the_batch_and_blocks_its_gather(
    store: CoordinationStore,
) -> None:
    """Only the first item failure is a run error; no item starts after it; the gather is
    blocked once the items in flight ended."""
    await start(store, "s@", "y@")
    scatter = step("s@", gated("s"), output={"itemCount": 5})
    scatter.batch = BatchOpen("s@", "s", (), [1, 2, 3, 4, 5], 2, "g@")
    await store.complete(R, scatter)
    assert (await store.complete(R, item_end(0, failed=True))).ready == []
    assert (await store.complete(R, item_end(1, failed=True))).ready == []
    # The gather's join fires after the batch failed: blocked at once.
    blocked = await store.complete(R, step("y@", gated("y")))
    assert (blocked.ready, blocked.skipped) == ([], [fu("g@", FAILED_RES)])
    assert (await store.load(R, "g@", ())).batch_input is None
    await store.complete(R, step("g@", outcome=SKIPPED))
    status, _, errors, _ = await store.result(R)
    assert (status, errors) == ("failed", [error("s[0]")])


async def test_an_empty_batch_lets_its_gather_fire_at_once(store: CoordinationStore) -> None:
    await start(store, "s@")
    scatter = step("s@", res("g@", "s", expected=1), output={"itemCount": 0})
    scatter.resolutions[0].gate = "s@"
    scatter.batch = BatchOpen("s@", "s", (), [], None, "g@")
    assert (await store.complete(R, scatter)).ready == ready("g@")
    assert (await store.load(R, "g@", ())).batch_input == ([],)


# --------------------------------------------------------------------------- record and replay

APPROVAL: dict[str, Any] = {
    "id": "approval",
    "nodes": [n("a", "inc"), n("ask", "wait"), n("yes", "inc"), n("no", "inc")],
    "edges": [
        {"source": "a", "target": "ask"},
        {"source": "ask", "target": "yes", "action": "approve"},
        {"source": "ask", "target": "no", "action": "reject"},
    ],
}


class Recording:
    """The in-memory store, recording every call with a copy of its answer (in the order the
    calls took effect: an in-memory call never yields to the event loop)."""

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


async def replay(recording: Recording, store: CoordinationStore) -> int:
    """Make the same calls on `store`: every answer must be the reference's."""
    for position, (name, args, kwargs, expected) in enumerate(recording.calls):
        answer = await getattr(store, name)(*args, **kwargs)
        assert answer == expected, (position, name, args)
    return len(recording.calls)


async def record(
    registry: NodeRegistry,
    blueprint: dict[str, Any],
    context: dict[str, Any] | None = None,
    *,
    run_id: str = "rec",
    resume: tuple[str, Any] | None = None,
) -> Recording:
    """Run `blueprint` on `LocalCluster` (several consumers) over a recording in-memory store,
    then resume it with (action, output) if given."""
    cluster = LocalCluster(registry=registry, blueprints=[blueprint], workers=3)
    recording = Recording()
    cluster.store = recording  # type: ignore[assignment]
    cluster.worker.store = recording  # type: ignore[assignment]
    await cluster.run(blueprint["id"], context, run_id=run_id)
    if resume is not None:
        await cluster.resume_with_action(run_id, *resume)
    return recording


@pytest.mark.parametrize("name", sorted(CASES))
async def test_the_calls_of_a_cluster_run_get_the_same_answers_on_redis(
    redis_client: Redis, name: str
) -> None:
    blueprint, context = CASES[name]
    recording = await record(make_registry(), blueprint, context)
    assert await replay(recording, RedisCoordinationStore(redis_client)) > 5


async def test_the_calls_of_a_wait_and_its_resume_get_the_same_answers_on_redis(
    redis_client: Redis,
) -> None:
    recording = await record(make_registry(), APPROVAL, resume=("reject", 5))
    names = {name for name, *_ in recording.calls}
    assert {"resume_waiting", "result", "load", "complete"} <= names
    await replay(recording, RedisCoordinationStore(redis_client))


# --------------------------------------------------------------------------- end to end


def redis_cluster(
    client: Redis, registry: NodeRegistry, blueprints: list[dict[str, Any]], workers: int = 3
) -> LocalCluster:
    """`LocalCluster` (the worker's exact code path) on the Redis store."""
    cluster = LocalCluster(registry=registry, blueprints=blueprints, workers=workers)
    store = RedisCoordinationStore(client)
    cluster.store = store  # type: ignore[assignment]
    cluster.worker.store = store
    return cluster


async def both_on_redis(
    client: Redis,
    registry: NodeRegistry,
    blueprint: dict[str, Any],
    context: dict[str, Any] | None = None,
    *,
    run_id: str = "run1",
) -> tuple[WorkflowResult, WorkflowResult]:
    local = await FlowRuntime(registry=registry, blueprints=[blueprint]).run(
        blueprint["id"], context, run_id=run_id
    )
    cluster = redis_cluster(client, registry, [blueprint])
    distributed = await cluster.run(blueprint["id"], context, run_id=run_id)
    assert await client.hget(f"flowcraft:{{{run_id}}}:meta", "status") == distributed.status
    return local, distributed


@pytest.mark.parametrize("name", sorted(CASES))
async def test_local_cluster_on_redis_matches_the_in_process_runtime(
    redis_client: Redis, name: str
) -> None:
    blueprint, context = CASES[name]
    local, distributed = await both_on_redis(redis_client, make_registry(), blueprint, context)
    assert comparable(distributed) == comparable(local)


async def test_a_wait_resumed_on_redis_routes_the_same(redis_client: Redis) -> None:
    blueprint = APPROVAL
    reg = make_registry()
    runtime = FlowRuntime(registry=reg, blueprints=[blueprint])
    paused = await runtime.run("approval", run_id="r-wait")
    cluster = redis_cluster(redis_client, reg, [blueprint])
    waiting = await cluster.run("approval", run_id="r-wait")
    assert waiting.status == paused.status == "awaiting"
    assert comparable(waiting) == comparable(paused)
    resumed_local = await runtime.resume(
        "approval", paused.serialized_context, output=5, action="reject"
    )
    resumed = await cluster.resume_with_action("r-wait", "reject", 5)
    assert resumed.status == "completed"
    assert comparable(resumed) == comparable(resumed_local)


async def test_redelivered_jobs_on_redis_change_nothing(redis_client: Redis) -> None:
    blueprint, _ = CASES["diamond"]
    cluster = redis_cluster(redis_client, make_registry(), [blueprint], workers=1)
    before = comparable(await cluster.run("diamond", run_id="r-dup"))
    for node_id in ("a", "b", "c", "d"):
        await cluster.worker.handle(Job("r-dup", node_id, ()))
    await cluster.drain()
    assert comparable(await cluster.result("r-dup")) == before


@settings(max_examples=20, deadline=None)
@given(workflow_dags(max_nodes=7))
async def test_random_acyclic_blueprints_match_on_redis(
    make_client: Callable[[], Redis], spec: Any
) -> None:
    spec = dataclasses.replace(
        spec, nodes=tuple(dataclasses.replace(node, join="all") for node in spec.nodes)
    )
    client = make_client()
    try:
        await client.flushdb()
        local, distributed = await both_on_redis(
            client, Workload().registry(), spec.blueprint(), run_id="r-prop"
        )
        recording = await record(Workload().registry(), spec.blueprint())
        await replay(recording, RedisCoordinationStore(client))
    finally:
        await client.aclose()
    racy = frozenset({"_catch_error"})
    assert comparable(distributed, racy) == comparable(local, racy)


@settings(max_examples=20, deadline=None)
@given(random_batches())
async def test_random_batches_match_on_redis(
    make_client: Callable[[], Redis], case: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    """Random batches: the in-process result on Redis, and every store call answered as the
    in-memory reference answers it."""
    blueprint, context = case
    client = make_client()
    try:
        await client.flushdb()
        local, distributed = await both_on_redis(
            client, make_registry(), blueprint, context, run_id="r-batch"
        )
        recording = await record(make_registry(), blueprint, context)
        await replay(recording, RedisCoordinationStore(client))
    finally:
        await client.aclose()
    assert comparable(distributed) == comparable(local)


@contextmanager
def round_trips() -> Iterator[list[int]]:
    """Count requests sent to Redis (one per command, one per pipeline, one per script)."""
    count = [0]
    original = AbstractConnection.send_packed_command

    async def counting(self: AbstractConnection, *args: Any, **kwargs: Any) -> None:
        count[0] += 1
        await original(self, *args, **kwargs)

    AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
    try:
        yield count
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]


def chain(length: int) -> dict[str, Any]:
    ids = [f"n{i}" for i in range(length)]
    return {
        "id": f"chain{length}",
        "nodes": [n(i, "inc") for i in ids],
        "edges": [{"source": a, "target": b} for a, b in itertools.pairwise(ids)],
    }


async def test_a_chain_job_costs_two_round_trips_of_ours(redis_client: Redis) -> None:
    """SPEC 9.4: at most three per job; here load + complete (the queue is in memory)."""
    blueprint = chain(10)
    cluster = redis_cluster(redis_client, make_registry(), [blueprint], workers=1)
    await cluster.run(blueprint["id"], run_id="warm")  # connect, load the scripts
    await cluster.start_run(blueprint["id"], run_id=uuid.uuid4().hex)
    with round_trips() as count:
        started = time.perf_counter()
        await cluster.drain()
        elapsed = time.perf_counter() - started
    assert count[0] == 2 * 10, count[0]
    assert elapsed < 5


async def test_a_batch_item_job_costs_two_round_trips_of_ours(redis_client: Redis) -> None:
    """SPEC 9.4 for items too: an item job loads its item and completes (ending the item and
    starting the next one) in one script each."""
    blueprint, _ = CASES["batch_chunked"]
    items = list(range(10))
    cluster = redis_cluster(redis_client, make_registry(), [blueprint], workers=1)
    await cluster.run(blueprint["id"], {"items": items}, run_id="warm")
    run_id = await cluster.start_run(blueprint["id"], {"items": items}, run_id=uuid.uuid4().hex)
    with round_trips() as count:
        await cluster.drain()
    result = await cluster.result(run_id)
    assert result.context["doubled"] == [2 * i for i in items]
    # scatter, 10 items, gather and its successor: two each.
    assert count[0] == 2 * (1 + len(items) + 2), count[0]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_subflows_on_redis_match_the_in_process_runtime(
    redis_client: Redis, name: str
) -> None:
    """SPEC 5.6, 9.7 with the Redis scripts (parent link, parked and waiting subflows,
    episodes, rearm): each step ends as in-process."""
    scenario = SCENARIOS[name]
    registry, bps = registry_of(scenario), blueprints(scenario)
    local = await in_process(FlowRuntime(registry=registry, blueprints=bps), scenario, "run1")
    cluster = redis_cluster(redis_client, registry, bps)
    same(await on_cluster(cluster, scenario, "run1"), local)


async def test_a_redelivered_subflow_job_on_redis_starts_one_child(redis_client: Redis) -> None:
    """The child's meta records its parent; the parent's job handled again while the child
    runs, or after it waits, neither starts a second child nor fails on the existing run."""
    scenario = SCENARIOS["wait_resumed_through_the_parent"]
    bus = InMemoryEventBus()
    cluster = LocalCluster(
        registry=registry_of(scenario), blueprints=blueprints(scenario), event_bus=bus
    )
    store = RedisCoordinationStore(redis_client)
    cluster.store = store  # type: ignore[assignment]
    cluster.worker.store = store
    await cluster.start_run(scenario.root, run_id="r-sub")
    child_meta = "flowcraft:{r-sub-sub-0}:meta"
    while not await redis_client.exists(child_meta):
        await cluster.worker.handle(cluster.queue.queue.get_nowait())
    assert json.loads(await redis_client.hget(child_meta, "parent")) == ["r-sub", "sub", []]
    for _ in range(2):
        await cluster.worker.handle(Job("r-sub", "sub", ()))
    await cluster.drain()
    assert (await cluster.result("r-sub")).status == "awaiting"
    await cluster.worker.handle(Job("r-sub", "sub", ()))
    assert await store.status("r-sub") == "awaiting"
    starts = [s.run_id for s in bus.of_type("workflow:start") if s.parent_run_id == "r-sub"]
    assert starts == ["r-sub-sub-0"]
    done = await cluster.resume_with_action("r-sub", "stop", 5, node_id="sub")
    assert done.status == "completed"
    assert await redis_client.hget(child_meta, "episode") == "1"
