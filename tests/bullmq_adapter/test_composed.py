"""`complete+add` (flowcraft_bullmq/composed.py): the successors' BullMQ jobs added inside
`complete` must be exactly what BullMQ's own `Queue.add` writes with our options.

Two adapters on the same server, with the same run ids under two key prefixes: one composes
(multiplexed), one adds every job with `Queue.add` (multiplex=False never composes). Both run
the same jobs one at a time in the same order (no BullMQ worker: `handle` is called on the job
at the tail of the wait list), then every BullMQ key they wrote is compared.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
import redis.asyncio as redis
from adapter_support import adapter, chain, e, n
from bullmq import Job as BullMQJob
from bullmq import Queue, Worker
from distributed.test_memory_parity import CASES, make_registry
from hypothesis import given, settings
from hypothesis import strategies as st

from flowcraft_bullmq import composed
from flowcraft_bullmq.adapter import BullMQAdapter
from flowcraft_bullmq.composed import CURRENT_JOB
from flowcraft_bullmq.multiplex import Multiplexer
from flowcraft_bullmq.store import RedisCoordinationStore
from flowcraft_core import load_blueprint
from flowcraft_core.distributed import Job
from flowcraft_core.distributed.preload import preload_keys
from flowcraft_core.distributed.protocol import Transition
from flowcraft_core.runtime.plan import get_plan
from flowcraft_core.versioning import blueprint_pin

#: Node ids of every kind: plain, needing a job-id token, quotes and backslashes (JSON escapes:
#: not composed), non-ASCII (json.dumps escapes it: not composed), long (a msgpack str16 id:
#: each "-" is "~2d" in the job id).
ODD_IDS = ["n0", "a-b c/d", 'q"uote', "back\\slash", "caf\u00e9", "a-" * 100, "tail"]

ODD_CHAIN: dict[str, Any] = {
    "id": "odd",
    "nodes": [n(node_id, "inc") for node_id in ODD_IDS],
    "edges": [e(a, b) for a, b in itertools.pairwise(ODD_IDS)],
}

#: More successors than complete+add adds itself (ADD_MAX in complete.lua): the worker adds
#: the others.
WIDE: dict[str, Any] = {
    "id": "wide",
    "nodes": [n("a", "inc"), *(n(f"p{i}", "inc") for i in range(120))],
    "edges": [e("a", f"p{i}") for i in range(120)],
}

BLUEPRINTS = [chain(4), ODD_CHAIN, CASES["loop"][0], CASES["nested_loops"][0], WIDE]


def record_commands(via: Multiplexer) -> list[str]:
    """What `via` sends from now on: each command's name, an EVALSHA's SHA1."""
    sent: list[str] = []
    enqueue = via._enqueue

    def recording(command: bytes) -> asyncio.Future[Any]:
        parts = command.split(b"\r\n")
        sent.append((parts[4] if parts[2] == b"EVALSHA" else parts[2]).decode())
        return enqueue(command)

    via._enqueue = recording  # type: ignore[method-assign]
    return sent


def _store(a: BullMQAdapter) -> RedisCoordinationStore:
    store = a._store.store  # type: ignore[union-attr]
    assert isinstance(store, RedisCoordinationStore)
    return store


async def _drive(
    a: BullMQAdapter, client: redis.Redis, queue_prefix: str, *, redeliver: bool = False
) -> list[str]:
    """Handle the oldest unhandled job of the wait list until none is left (with `redeliver`,
    each twice in a row: the second replays it); the job ids in the order they were handled."""
    assert a._worker is not None
    handled: list[str] = []
    while True:
        waiting = await client.lrange(queue_prefix + "wait", 0, -1)
        waiting.reverse()  # LPUSH: the oldest is last
        waiting += await client.zrange(queue_prefix + "prioritized", 0, -1)
        todo = [job_id for job_id in waiting if job_id not in handled]
        if not todo:
            return handled
        data = json.loads(await client.hget(queue_prefix + todo[0], "data"))
        await a._worker.handle(Job.from_data(data))
        if redeliver:
            await a._worker.handle(Job.from_data(data))
        handled.append(todo[0])


async def _bullmq_state(client: redis.Redis, queue_prefix: str, job_ids: list[str]) -> Any:
    """Everything BullMQ keeps of these jobs: their hashes (without the add time), the wait
    list, the marker, the queue's meta and id counter, and the events (without stream ids)."""
    jobs = {}
    for job_id in job_ids:
        fields = await client.hgetall(queue_prefix + job_id)
        fields.pop("timestamp")
        jobs[job_id] = fields
    events = [fields for _, fields in await client.xrange(queue_prefix + "events")]
    return {
        "jobs": jobs,
        "wait": await client.lrange(queue_prefix + "wait", 0, -1),
        "prioritized": await client.zrange(queue_prefix + "prioritized", 0, -1, withscores=True),
        "marker": await client.zrange(queue_prefix + "marker", 0, -1, withscores=True),
        "meta": await client.hgetall(queue_prefix + "meta"),
        "id": await client.get(queue_prefix + "id"),
        "events": events,
    }


async def _run_both(
    redis_url: str,
    prefix: str,
    client: redis.Redis,
    blueprint_id: str,
    *,
    start: Callable[[BullMQAdapter, str], Any] | None = None,
    redeliver: bool = True,
) -> tuple[Any, Any, list[str]]:
    """The BullMQ state after running one run in both adapters (composed, then Queue.add);
    with `redeliver`, every job is handled twice (the second time replays its follow-ups)."""
    states = []
    handled: list[str] = []
    for tag, multiplex in (("c", True), ("q", False)):
        async with adapter(
            redis_url,
            prefix + tag,
            registry=make_registry(),
            blueprints=BLUEPRINTS,
            consume=False,
            multiplex=multiplex,
        ) as a:
            assert (_store(a).adds is not None) == multiplex
            queue_prefix = f"{prefix}{tag}:flowcraft:"
            if start is None:
                await a.start_run(blueprint_id, {"count": 0}, run_id="run-1")
            else:
                await start(a, "run-1")
            handled = await _drive(a, client, queue_prefix, redeliver=redeliver)
            assert (await a.get_result("run-1")).status == "completed"  # type: ignore[union-attr]
            states.append(await _bullmq_state(client, queue_prefix, handled))
    return states[0], states[1], handled


@pytest.mark.parametrize("blueprint_id", ["chain", "odd", "loop", "nested", "wide"])
async def test_jobs_added_by_complete_are_those_queue_add_writes(
    redis_url: str, prefix: str, client: redis.Redis, blueprint_id: str
) -> None:
    ours, bullmq, handled = await _run_both(redis_url, prefix, client, blueprint_id)
    assert len(handled) >= 4
    assert ours == bullmq
    # The replays re-added every successor: BullMQ ignored them ("duplicated", by job id).
    assert any(event["event"] == "duplicated" for event in ours["events"])


async def test_runs_with_a_priority_keep_the_workers_add(
    redis_url: str, prefix: str, client: redis.Redis
) -> None:
    async def start(a: BullMQAdapter, run_id: str) -> None:
        await a.start_run("chain", {}, run_id=run_id, priority=5)

    ours, bullmq, _ = await _run_both(redis_url, prefix, client, "chain", start=start)
    assert ours == bullmq


async def test_a_chain_step_adds_its_successor_inside_complete(
    redis_url: str, prefix: str, client: redis.Redis
) -> None:
    """The composed path is the one taken: no add script of BullMQ's is sent for a chain."""
    async with adapter(
        redis_url, prefix, registry=make_registry(), blueprints=[chain(4)], consume=False
    ) as a:
        via = a._multiplexer
        assert isinstance(via, Multiplexer)
        adds = _store(a).adds
        assert adds is not None
        await a.start_run("chain", {}, run_id="run-1")
        sent = record_commands(via)
        handled = await _drive(a, client, f"{prefix}:flowcraft:")
        assert (await a.get_result("run-1")).status == "completed"  # type: ignore[union-attr]
    assert len(handled) == 4
    assert a._queue.scripts.commands["addStandardJob"].script.sha not in sent
    assert sent.count(adds.script.sha) == 4


@pytest.mark.parametrize(
    "missing", ["no script", "other arity", "no hook"], ids=lambda text: text.replace(" ", "-")
)
async def test_without_bullmqs_add_script_the_worker_adds_every_job(
    redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    if missing == "no script":
        monkeypatch.setattr(composed, "bullmq_script", lambda name: None)
    elif missing == "other arity":
        monkeypatch.setattr(composed, "ADD_SCRIPT", "addStandardJob-10.lua")
    else:
        monkeypatch.setattr(composed, "_HOOK", "-- nothing like it\n")
    if missing == "no hook":
        with pytest.raises(ValueError, match="hook"):
            composed.complete_add_source("return 1")
        monkeypatch.setattr(composed, "bullmq_script", lambda name: "cmsgpack.unpack(ARGV[1])")
        with pytest.raises(ValueError, match="hook"):
            async with adapter(redis_url, prefix, blueprints=[chain(2)], consume=False):
                pass
        return
    async with adapter(redis_url, prefix, registry=make_registry(), blueprints=[chain(3)]) as a:
        assert _store(a).adds is None
        run_id = await a.start_run("chain", {"_inputs.n0": 1})
        result = await a.wait_for_result(run_id, timeout_s=30)
    assert (result.status, result.context["_outputs.n2"]) == ("completed", 4)


async def test_an_event_bus_or_queue_retries_keep_the_workers_add(
    redis_url: str, prefix: str
) -> None:
    """The completion's events are emitted before its successors exist (SPEC 7.1), and
    per-job retry options are the worker's to compute: neither is composed."""
    events: list[Any] = []

    class Bus:
        async def emit(self, event: Any) -> None:
            events.append(event)

    for options in ({"event_bus": Bus()}, {"event_stream": True}, {"retry_mode": "queue"}):
        async with adapter(redis_url, prefix, blueprints=[chain(2)], consume=False, **options) as a:
            assert _store(a).adds is None


async def test_the_options_template_is_bullmqs_packing_split_at_the_job_id(
    redis_url: str, prefix: str
) -> None:
    options = {"removeOnComplete": {"count": 5}, "attempts": 3, "backoff": {"type": "fixed"}}
    queue = Queue("q", {"connection": redis_url, "prefix": prefix})
    try:
        template = composed.options_template(queue, options)
        assert template is not None
        for job_id in ("short", "r" * 32 + "-n-0", "z" * 300, "y" * 70_000):
            job = BullMQJob(queue, "node", {}, {**options, "jobId": job_id})
            packed = queue.scripts.addJobArgs(job)[2]
            assert packed == template[0] + composed.msgpack_str(job_id) + template[1]
    finally:
        await queue.close()


# ----------------------------------------------------------------- moveToActive+load


async def test_a_fetched_job_is_loaded_with_its_fetch(
    redis_url: str, prefix: str, client: redis.Redis
) -> None:
    """The worker published what each node of its blueprints loads when it started: every
    job's load comes with BullMQ's fetch, the entry job's too."""
    async with adapter(redis_url, prefix, registry=make_registry(), blueprints=[chain(4)]) as a:
        via = a._multiplexer
        assert isinstance(via, Multiplexer)
        store = _store(a)
        assert store.preloads is not None
        fetch = a._bull_worker.scripts.commands["moveToActive"]
        assert isinstance(fetch, composed.ActiveLoad)
        finish = a._bull_worker.scripts.commands["moveToFinished"]
        assert isinstance(finish, composed.FinishedOnce)
        cached = await client.hgetall(f"{prefix}:preload")
        assert sorted(field.rpartition("\n")[2] for field in cached) == ["n0", "n1", "n2", "n3"]
        sent = record_commands(via)
        run_id = await a.start_run("chain", {"_inputs.n0": 1})
        result = await a.wait_for_result(run_id, timeout_s=30)
    assert (result.status, result.context["_outputs.n3"]) == ("completed", 5)
    assert sent.count(store._scripts.load.sha) == 0
    assert sent.count(fetch.script.sha) >= 1  # n0's; n1..n3 came with n0..n2's finishes
    # complete+add finished n0..n2's jobs too; n3's completion ended the run (the worker then
    # has more to do), so BullMQ's worker finished that one.
    assert not finish.adds.finished
    assert sent.count(finish.command.script.sha) == 1
    queue_prefix = f"{prefix}:flowcraft:"
    jobs = [f"{run_id}-n{i}-0" for i in range(4)]
    assert all([await client.zscore(queue_prefix + "completed", job) for job in jobs])
    assert not await client.lrange(queue_prefix + "active", 0, -1)
    here = await client.hgetall(queue_prefix + jobs[1])  # finished by complete+add
    there = await client.hgetall(queue_prefix + jobs[3])  # by BullMQ's worker
    assert here.keys() == there.keys()
    same = ("returnvalue", "atm", "ats", "name", "pb")
    assert {k: here.get(k) for k in same} == {k: there.get(k) for k in same}


async def test_a_large_blueprints_plans_are_published_in_bounded_hsets(
    prefix: str, client: redis.Redis
) -> None:
    """A worker of a 2,500-node blueprint publishes every node's preload keys at start, in
    HSETs of at most PRELOAD_PUBLISH_FIELDS fields each: one HSET per blueprint's nodes would
    block Redis for a blueprint of 100,000 nodes."""
    big = load_blueprint(chain(2_500, "big"))
    small = load_blueprint(chain(3, "small"))
    plans = [(bp.id, blueprint_pin(bp), get_plan(bp)) for bp in (big, small)]
    via = Multiplexer(client)
    hsets: list[int] = []
    execute = via.execute

    async def recording(*args: Any) -> Any:
        if args[0] == "HSET":
            hsets.append((len(args) - 2) // 2)
        return await execute(*args)

    via.execute = recording  # type: ignore[method-assign]
    try:
        await composed.Preloads(prefix, via).publish_plans(plans)
    finally:
        await via.aclose()
    assert sum(hsets) == 2_503 and len(hsets) >= 3
    assert max(hsets) <= composed.PRELOAD_PUBLISH_FIELDS
    expected = {
        f"{bp_id}\n{pin}\n{node.id}": json.dumps(list(keys)) if keys is not None else "null"
        for bp_id, pin, plan in plans
        for node in plan.nodes
        for keys in [preload_keys(plan, node)]
    }
    assert await client.hgetall(f"{prefix}:preload") == expected


async def test_a_fetched_load_is_the_load_the_job_would_make(
    redis_url: str, prefix: str, client: redis.Redis
) -> None:
    """The fetch's load is load.lua's, taken once; not when stale or when the job wants other
    keys; nothing is loaded for a node the cache does not know."""
    async with adapter(
        redis_url, prefix, registry=make_registry(), blueprints=[chain(3)], consume=False
    ) as a:
        store, via, scripts = _store(a), a._multiplexer, a._queue.scripts
        assert via is not None and a._worker is not None
        preloads = store.preloads = composed.Preloads(prefix, via)
        original = scripts.commands["moveToActive"]
        assert composed.ActiveLoad.install(scripts.commands, client, via, preloads, prefix)
        try:
            await a.start_run("chain", {"_inputs.n0": 1, "other": 2}, run_id="run-1")
            pin = await client.hget(f"{prefix}:{{run-1}}:meta", "blueprintVersion")
            keys = ["_inputs.n1", "_outputs.n0", "missing"]
            await preloads.publish(["running", "chain", pin], "n1@", keys)
            await a._worker.handle(Job("run-1", "n0", ()))  # adds n1 (complete+add)
            first = await scripts.moveToActive("token", {"lockDuration": 10_000})
            assert first[1] == "run-1-n0-0" and not preloads._waiting  # n0: not cached
            second = await scripts.moveToActive("token", {"lockDuration": 10_000})
            assert second[1] == "run-1-n1-0" and second[0]["data"]  # BullMQ's reply
            fetched = preloads._waiting[("run-1", "n1@")][2]
        finally:
            scripts.commands["moveToActive"] = original
        assert await store.load("run-1", "n1@", keys) == await store.load("run-1", "n1@", keys)
        assert not preloads._waiting  # taken by the first load
        text = json.dumps(keys)
        preloads.keep("run-1", "n1@", text, fetched)
        assert preloads.take("run-1", "n1@", ["other"]) is None  # other keys: a real load
        preloads.keep("run-1", "n1@", text, fetched)
        assert preloads.take("run-1", "n1@", None) is fetched  # a job that does not know
        assert preloads.take("run-1", "n1@", keys) is None  # once
        preloads.keep("run-1", "n1@", text, fetched)
        at, *rest = preloads._waiting[("run-1", "n1@")]
        preloads._waiting[("run-1", "n1@")] = (at - composed.PRELOAD_MAX_AGE_S - 1, *rest)
        assert preloads.take("run-1", "n1@", keys) is None  # stale


# ----------------------------------------------------------------- finish + fetch next


async def test_a_finish_fetches_the_slots_next_job_with_its_load(
    redis_url: str, prefix: str, client: redis.Redis
) -> None:
    """A chain step's finish fetches its successor's job for the same slot (moveToFinished
    with fetch next, as BullMQ for Node does), loaded in the same script: the slot runs it
    without a fetch or a load of its own. Without it every step is fetched by the run loop."""
    async with adapter(
        redis_url, prefix, registry=make_registry(), blueprints=[chain(8)], concurrency=1
    ) as a:
        worker = a._bull_worker
        assert isinstance(worker, composed.FetchingWorker) and worker.adds is not None
        via = a._multiplexer
        assert isinstance(via, Multiplexer)
        store = _store(a)
        fetch = worker.scripts.commands["moveToActive"]
        assert isinstance(fetch, composed.ActiveLoad)
        active: list[str] = []
        worker.on("active", lambda job, prev: active.append(job.id))
        sent = record_commands(via)
        run_id = await a.start_run("chain", {"_inputs.n0": 1})
        result = await a.wait_for_result(run_id, timeout_s=30)
        assert not worker.adds.fetched  # every fetched job was run
    assert (result.status, result.context["_outputs.n7"]) == ("completed", 9)
    jobs = [f"{run_id}-n{i}-0" for i in range(8)]
    assert active == jobs  # each job once, in order, announced as BullMQ's fetch does
    # n1..n7 came with n0..n6's finishes (each finish's reply carried the next job): the run
    # loop fetched n0, and found nothing before it (when it started) and after n7 (8 without).
    assert sent.count(fetch.script.sha) <= 3
    assert sent.count(store._scripts.load.sha) == 0
    queue_prefix = f"{prefix}:flowcraft:"
    assert all([await client.zscore(queue_prefix + "completed", job) for job in jobs])
    assert not await client.lrange(queue_prefix + "active", 0, -1)
    assert not await client.keys(queue_prefix + "*:lock")


async def test_a_closing_or_paused_worker_finishes_without_fetching(
    redis_url: str, prefix: str
) -> None:
    """A worker that is closing or paused takes no new job with a finish: what it fetched
    would wait for a slot that no longer asks for jobs."""
    async with adapter(
        redis_url, prefix, registry=make_registry(), blueprints=[chain(2)], consume=False
    ) as a:
        worker = await a._start_worker("flowcraft")
        try:
            assert isinstance(worker, composed.FetchingWorker)
            adds = _store(a).adds
            assert adds is not None and adds.finishes
            job = BullMQJob(worker, "node", {}, {}, "run-1-n0-0")
            transition = Transition("n0@", "n0", (), "completed")
            fetches = []
            for closing, paused in ((False, False), (True, False), (False, True)):
                worker.closing, worker.paused = closing, paused
                token = CURRENT_JOB.set(("n0@", job, "token-1"))
                try:
                    _, args, finished = adds.tail(transition)
                finally:
                    CURRENT_JOB.reset(token)
                assert finished == ("run-1-n0-0", "token-1")
                fetches.append(args[-1 - args[-1] + 5])  # moveToFinished's ARGV[6]
            worker.closing = worker.paused = False
        finally:
            await worker.close(force=True)
    assert fetches == ["1", "", ""]


# ----------------------------------------------------------------- finish template

#: Ints BullMQ packs (msgpack's whole range: fixints, 8 to 64 bits, negative).
_INTS = st.one_of(st.integers(-3, 130), st.integers(-(2**63), 2**64 - 1))
#: Strings of every msgpack length class (fixstr, str8, str16, str32), odd characters too.
_TEXTS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["r" * 32 + "-n3-0", "z" * 300, "y" * 70_000, "caf\u00e9:\U0001f600", "a{b}:c"]
    ),
)
#: removeOnComplete as BullMQ's getKeepJobs reads it.
_REMOVES = st.one_of(
    st.booleans(),
    st.none(),
    _INTS,
    st.builds(lambda count: {"count": count}, _INTS),
    st.builds(lambda age: {"age": age}, _INTS),
    st.builds(lambda age, count: {"age": age, "count": count}, _INTS, _INTS),
)


def _finish_part(adds: composed.ComposedAdd, keys: list[str], args: list[Any]) -> Any:
    """moveToFinished's keys and arguments in `ComposedAdd.tail`'s."""
    return keys[len(adds.keys) :], args[-1 - args[-1] : -1]


def _tail(adds: composed.ComposedAdd, job: Any, token: str) -> Any:
    context = CURRENT_JOB.set(("n0@", job, token))
    try:
        keys, args, finished = adds.tail(Transition("n0@", "n0", (), "completed"))
    finally:
        CURRENT_JOB.reset(context)
    assert finished == (job.id, token)
    return _finish_part(adds, keys, args)


async def test_the_finish_template_makes_bullmqs_move_to_completed_args(
    redis_url: str, prefix: str
) -> None:
    """For any job, token, attempts, removeOnComplete and fetch flag, the template's keys and
    arguments of moveToFinished are those BullMQ's own function makes, byte for byte (the
    packed options too), at the same time; for workers of odd queue names and key prefixes."""
    workers = [
        Worker(
            name, None, {"connection": redis_url, "prefix": key_prefix, "autorun": False, **opts}
        )
        for name, key_prefix, opts in (
            ("flowcraft", prefix, {}),
            ("q:with:colons", prefix + "{slot}", {"lockDuration": 123}),
            ("caf\u00e9", "p" * 40, {"lockDuration": 2**40, "removeOnComplete": 5}),
        )
    ]
    templates = [composed.FinishTemplate.build(worker) for worker in workers]
    try:

        @settings(max_examples=400, deadline=None)
        @given(
            which=st.integers(0, len(workers) - 1),
            job_id=_TEXTS.filter(bool),
            token=_TEXTS,
            attempts=_INTS,
            made=_INTS,
            remove=_REMOVES,
            fetch=st.booleans(),
            now=st.floats(0, 4e9),
            from_json=st.booleans(),
        )
        def check(
            which: int,
            job_id: str,
            token: str,
            attempts: int,
            made: int,
            remove: Any,
            fetch: bool,
            now: float,
            from_json: bool,
        ) -> None:
            worker, template = workers[which], templates[which]
            assert template is not None
            opts = {"attempts": attempts, "removeOnComplete": remove}
            if from_json:  # as BullMQ's worker makes a job it fetched
                raw = {"name": "node", "data": "{}", "opts": json.dumps(opts), "atm": str(made)}
                job = BullMQJob.fromJSON(worker, raw, job_id)
            else:
                job = BullMQJob(worker, "node", {}, opts, job_id)
                job.attemptsMade = made
            with mock.patch("time.time", return_value=now):
                expected = worker.scripts.moveToCompletedArgs(job, None, remove, token, fetch)
            made_here = template.completed(job, remove, token, fetch, round(now * 1000))
            assert made_here == expected
            assert isinstance(made_here[1][7], bytes)

        check()
    finally:
        for worker in workers:
            await worker.close()


async def test_what_the_finish_template_cannot_express_is_bullmqs_function(
    redis_url: str, prefix: str
) -> None:
    """A worker with a limiter or metrics has no template; a job with failure options (set or
    read from its stored options), or a value of a type the template does not pack, is
    finished with BullMQ's own function: `tail` gives what it gives."""
    async with adapter(
        redis_url, prefix, registry=make_registry(), blueprints=[chain(2)], consume=False
    ) as a:
        plain = await a._start_worker("flowcraft")
        options = {"connection": redis_url, "prefix": f"{prefix}:flowcraft", "autorun": False}
        limited = composed.FetchingWorker(
            "flowcraft", None, {**options, "limiter": {"max": 5, "duration": 1000}}
        )
        measured = composed.FetchingWorker(
            "flowcraft", None, {**options, "metrics": {"maxDataPoints": 10}}
        )
        try:
            adds = _store(a).adds
            assert adds is not None and adds.finishes
            assert composed.FinishTemplate.build(plain) is not None
            assert composed.FinishTemplate.build(limited) is None
            assert composed.FinishTemplate.build(measured) is None
            calls: list[str] = []
            for worker in (plain, limited, measured):
                own = worker.scripts.moveToCompletedArgs

                def spy(job: Any, *args: Any, own: Any = own) -> Any:
                    calls.append(job.id)
                    return own(job, *args)

                worker.scripts.moveToCompletedArgs = spy
            cases: list[tuple[Any, Any, str, bool]] = [  # worker, job, token, by BullMQ
                (plain, BullMQJob(plain, "node", {}, {}, "plain"), "t", False),
                (limited, BullMQJob(limited, "node", {}, {}, "limiter"), "t", True),
                (measured, BullMQJob(measured, "node", {}, {}, "metrics"), "t", True),
                (
                    plain,
                    BullMQJob(plain, "node", {}, {"removeOnComplete": "yes"}, "str"),
                    "t",
                    True,
                ),
                (
                    plain,
                    BullMQJob(plain, "node", {}, {"removeOnComplete": 1.5}, "float"),
                    "t",
                    True,
                ),
                (plain, BullMQJob(plain, "node", {}, {"attempts": 2.0}, "attempts"), "t", True),
                (plain, BullMQJob(plain, "node", {}, {"attempts": True}, "bool"), "t", True),
                (plain, BullMQJob(plain, "node", {}, {}, "token"), b"bytes-token", True),
            ]
            for name in composed._FAILURE_OPTS:
                job = BullMQJob(plain, "node", {}, {name: True}, name)
                cases.append((plain, job, "t", True))
            raw = {"name": "node", "data": "{}", "opts": json.dumps({"fpof": False})}
            cases.append((plain, BullMQJob.fromJSON(plain, raw, "stored"), "t", True))
            for worker, job, token, by_bullmq in cases:
                calls.clear()
                with mock.patch("time.time", return_value=1_700_000_000.0004):
                    found = _tail(adds, job, token)
                    remove = job.opts.get("removeOnComplete", False)
                    expected = worker.scripts.moveToCompletedArgs(job, None, remove, token, False)
                assert found[0] == expected[0] and found[1][:5] + found[1][6:] == (
                    expected[1][:5] + expected[1][6:]  # ARGV[6]: fetch next (a plain one)
                )
                assert calls.count(job.id) == (2 if by_bullmq else 1), job.id
        finally:
            for worker in (plain, limited, measured):
                await worker.close(force=True)
