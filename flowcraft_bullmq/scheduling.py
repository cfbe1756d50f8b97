"""Scheduling on BullMQ (docs/scheduling.md): how a start is prepared, bulk starts, and runs
started by cron through BullMQ job schedulers.

* A start records the run's `Route` (its default queue, its priority) and, for a delayed start,
  its wakeAt, in the same `create_run` script; the entry jobs carry the priority and the delay.
* `start_runs` pipelines the create scripts of many runs (one round trip) and adds every entry
  job at once (`BullMQJobQueue.add_bulk`: pipelined adds).
* A schedule is a BullMQ job scheduler (`flowcraft:schedule:<id>`) on the adapter's queue whose
  tick jobs (`flowcraft:schedule`) a worker turns into a run with id `<id>~<tick ms>`: a tick
  redelivered to another worker finds that run created and only re-adds its entry jobs
  (deduplicated by job id), so each tick starts exactly one run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from bullmq import Worker
from redis.exceptions import ResponseError

from flowcraft_core.blueprint import Blueprint
from flowcraft_core.distributed import Job, Route, transitions
from flowcraft_core.distributed.protocol import Followup
from flowcraft_core.distributed.scheduling import (
    check_delay,
    check_priority,
    check_queue_name,
    routed,
)
from flowcraft_core.events import WorkflowStart
from flowcraft_core.ids import new_run_id, validate_run_id
from flowcraft_core.reserved import EXECUTION_ID
from flowcraft_core.runtime.plan import ExecutionPlan, get_plan
from flowcraft_core.versioning import blueprint_pin

from .store import RedisCoordinationStore

if TYPE_CHECKING:
    from .adapter import BullMQAdapter

logger = logging.getLogger("flowcraft_bullmq.scheduling")

#: The BullMQ job name of a schedule's tick, and the prefix of its job scheduler's id.
SCHEDULE_JOB_NAME: Final = "flowcraft:schedule"
SCHEDULER_PREFIX: Final = "flowcraft:schedule:"
#: Finished tick jobs kept per queue (the runs they started are the record).
_TICK_RETENTION: Final[Mapping[str, Any]] = {
    "removeOnComplete": {"count": 100},
    "removeOnFail": {"count": 100},
}
_SCHEDULE_ID: Final = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
#: Options `start_runs` accepts per run.
_RUN_OPTIONS: Final = frozenset({"run_id", "priority", "delay", "queue"})


# --------------------------------------------------------------------------- workers


def consumed_queues(default: str, queues: Sequence[str] | None) -> tuple[str, ...]:
    """The queues a worker consumes: `queues` (deduplicated, in order), else the default."""
    if queues is None:
        return (default,)
    if isinstance(queues, str):
        raise ValueError("queues must be a sequence of queue names, not one string")
    names = tuple(dict.fromkeys(check_queue_name(name) for name in queues))
    if not names:
        raise ValueError("queues must name at least one queue")
    return names


def check_rate_limit(limit: tuple[int, int] | None) -> tuple[int, int] | None:
    """BullMQ's limiter (at most `max` jobs per `duration` ms per queue), validated."""
    if limit is None:
        return None
    try:
        most, duration = limit
    except (TypeError, ValueError):
        raise ValueError(f"rate_limit must be (max jobs, duration ms), not {limit!r}") from None
    for value in (most, duration):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"rate_limit must be two ints >= 1, not {limit!r}")
    return most, duration


class RateLimitedWorker(Worker):  # type: ignore[misc]
    """A BullMQ worker that honours its limiter's window (B5).

    BullMQ for Python 3.4.4 records the limiter's remaining window (`limitUntil`, ms) when a
    fetch is rate limited but never waits for it: the worker blocks on the queue's marker for
    `drainDelay` (5 s) instead, so `max/duration` ran at about `max` per 5 s. Like BullMQ for
    Node, this waits out the window, then fetches again; a pause or close ends the wait
    without fetching (BullMQ's own pause cancels only its marker wait, so a stopping worker
    slept out a window of up to `duration`, then took a job)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._stopping = asyncio.Event()
        super().__init__(*args, **kwargs)

    async def getNextJob(self, token: str) -> Any:
        wait_ms = int(getattr(self, "limitUntil", 0) or 0)
        if wait_ms <= 0 or self.closing or self.paused:
            return await super().getNextJob(token)
        self.limitUntil = 0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), wait_ms / 1000)
        if self._stopping.is_set() or self.closing or self.paused:
            return None
        job = await self.moveToActive(token)
        if job:
            self.emit("active", job, "waiting")
        return job

    async def pause(self, do_not_wait_active: bool = False) -> None:
        self._stopping.set()
        await super().pause(do_not_wait_active)

    def resume(self) -> None:
        self._stopping.clear()
        super().resume()

    async def close(self, force: bool = False) -> None:
        self._stopping.set()
        await super().close(force)


def parse_rate_limit(text: str) -> tuple[int, int]:
    """`MAX/DURATION_MS` (`2/500`: at most 2 jobs per 500 ms) as a pair; ValueError."""
    most, slash, duration = text.partition("/")
    try:
        if not slash:
            raise ValueError
        limit = check_rate_limit((int(most), int(duration)))
    except ValueError:
        raise ValueError(
            f"invalid rate limit {text!r}: MAX/DURATION_MS, e.g. 2/500 (two ints >= 1)"
        ) from None
    assert limit is not None
    return limit


# --------------------------------------------------------------------------- starts


@dataclass(slots=True)
class PreparedStart:
    """One validated start: what `create_run` records and the entry jobs to add."""

    run_id: str
    blueprint: Blueprint
    plan: ExecutionPlan
    data: dict[str, Any]
    entries: list[Followup]
    counters: list[str]
    route: Route
    delay_ms: int = 0
    start_at: float | None = field(default=None)

    def create_kwargs(self) -> dict[str, Any]:
        return {
            "blueprint_id": self.blueprint.id,
            "pin": blueprint_pin(self.blueprint),
            "context": self.data,
            "entries": self.entries,
            "counters": self.counters,
            "route": self.route,
            "start_at": self.start_at,
        }

    def jobs(self) -> list[Job]:
        """The entry jobs: on their nodes' queues, with the run's priority and delay."""
        return [
            self.route.job(self.plan, self.run_id, e.node_id, e.iteration, delay_ms=self.delay_ms)
            for e in self.entries
        ]


def prepare_start(
    adapter: BullMQAdapter,
    blueprint_id: str,
    initial_context: Mapping[str, Any] | str | None,
    *,
    run_id: str | None = None,
    priority: int = 0,
    delay: float = 0,
    queue: str | None = None,
) -> PreparedStart:
    """Validate one start (BlueprintError, SerializationError, ValueError) without I/O."""
    assert adapter._client_worker is not None
    runtime = adapter._client_worker.runtime
    bp = runtime.resolve_blueprint(blueprint_id)
    data = runtime.initial_data(initial_context)
    run_id = validate_run_id(run_id) if run_id is not None else new_run_id()
    plan = get_plan(bp, runtime.evaluator)
    route = Route(
        queue=check_queue_name(queue) if queue is not None else adapter.queue_name,
        priority=check_priority(priority),
        routed=routed(plan),
    )
    delay_ms = check_delay(delay)
    if adapter._registry is not None and adapter._worker is not None:
        # A process with node code checks them now; a pure client leaves it to workers.
        adapter._worker.runtime.implementations(plan)
    data[EXECUTION_ID] = run_id
    entries, counters = transitions.entries(plan)
    return PreparedStart(
        run_id=run_id,
        blueprint=bp,
        plan=plan,
        data=data,
        entries=list(entries),
        counters=list(counters),
        route=route,
        delay_ms=delay_ms,
        start_at=time.time() + delay_ms / 1000 if delay_ms else None,
    )


async def emit_start(adapter: BullMQAdapter, start: PreparedStart) -> None:
    assert adapter._client_worker is not None
    emitter = adapter._client_worker.runtime._emitter
    if emitter is not None:
        await emitter(WorkflowStart(run_id=start.run_id, blueprint_id=start.blueprint.id))


async def start_runs(
    adapter: BullMQAdapter,
    runs: Sequence[tuple[str, Mapping[str, Any] | str | None, Mapping[str, Any] | None]],
) -> list[str]:
    """`BullMQAdapter.start_runs`: start many runs with few round trips, from
    `[(blueprint_id, context, options), ...]` (options: `start_run`'s `run_id`, `priority`,
    `delay`, `queue`, or None); the run ids in order. Every start is validated before any run
    is created; then the `create_run` scripts go in one pipeline and all entry jobs in one
    `add_bulk` (pipelined adds). Run ids that existed raise ValueError after the others
    started."""
    store, _, client = await adapter._ready()
    prepared: list[PreparedStart] = []
    for blueprint_id, context, options in runs:
        opts = dict(options or {})
        unknown = set(opts) - _RUN_OPTIONS
        if unknown:
            raise ValueError(
                f"unknown start_runs options {sorted(unknown)}: use {sorted(_RUN_OPTIONS)}"
            )
        prepared.append(prepare_start(adapter, blueprint_id, context, **opts))
    ids = [p.run_id for p in prepared]
    if len(set(ids)) != len(ids):
        raise ValueError("start_runs got the same run id twice")
    redis_store = store.store
    assert isinstance(redis_store, RedisCoordinationStore)
    script = redis_store._scripts.create_run
    async with client.pipeline(transaction=False) as pipe:
        for p in prepared:
            keys, args = redis_store.create_run_args(p.run_id, **p.create_kwargs())
            await script(keys=keys, args=args, client=pipe)
        replies = await pipe.execute(raise_on_error=False)
    existing: list[str] = []
    started: list[PreparedStart] = []
    for p, reply in zip(prepared, replies, strict=True):
        if isinstance(reply, ResponseError) and str(reply).startswith("EXISTS"):
            existing.append(p.run_id)
        elif isinstance(reply, BaseException):
            raise reply
        else:
            started.append(p)
    for p in started:
        await emit_start(adapter, p)
    await adapter._job_queue_or_fail().add_bulk([job for p in started for job in p.jobs()])
    if existing:
        raise ValueError(f"runs already exist (the others were started): {', '.join(existing)}")
    return ids


# --------------------------------------------------------------------------- schedules


@dataclass(frozen=True, slots=True)
class Schedule:
    """A run schedule: each tick of `cron` (or every `every_ms`) starts a run of
    `blueprint_id` with `context` and `priority`."""

    id: str
    blueprint_id: str
    cron: str | None
    every_ms: int | None
    context: dict[str, Any]
    priority: int = 0
    tz: str | None = None
    #: The next tick, epoch ms (None if BullMQ has none).
    next_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "blueprintId": self.blueprint_id,
            "cron": self.cron,
            "everyMs": self.every_ms,
            "tz": self.tz,
            "context": self.context,
            "priority": self.priority,
            "next": self.next_ms,
        }


def check_schedule_id(schedule_id: Any) -> str:
    if not isinstance(schedule_id, str) or not _SCHEDULE_ID.match(schedule_id):
        raise ValueError(f"invalid schedule id {schedule_id!r}: 1-200 characters of [A-Za-z0-9_.-]")
    return schedule_id


def tick_run_id(schedule_id: str, tick_ms: int) -> str:
    """The run a tick starts: the same for every delivery of that tick."""
    return f"{schedule_id}~{tick_ms}"


async def add_schedule(
    adapter: BullMQAdapter,
    schedule_id: str,
    blueprint_id: str,
    *,
    cron: str | None = None,
    every_ms: int | None = None,
    context: Mapping[str, Any] | str | None = None,
    priority: int = 0,
    tz: str | None = None,
) -> Schedule:
    """`BullMQAdapter.add_schedule`: start a run of `blueprint_id` with `context` at each tick
    of `cron` (5 fields, or 6 with seconds first) or every `every_ms`, through a BullMQ job
    scheduler on the adapter's queue; each tick starts exactly one run, `<schedule_id>~<tick
    ms>`, on whichever worker takes it. Adding an existing id replaces that schedule."""
    check_schedule_id(schedule_id)
    if (cron is None) == (every_ms is None):
        raise ValueError("give exactly one of cron and every_ms")
    if every_ms is not None and (
        isinstance(every_ms, bool) or not isinstance(every_ms, int) or every_ms < 1
    ):
        raise ValueError(f"every_ms must be an int >= 1, not {every_ms!r}")
    await adapter._ready()
    assert adapter._client_worker is not None
    runtime = adapter._client_worker.runtime
    bp = runtime.resolve_blueprint(blueprint_id)
    data = runtime.initial_data(context)
    check_priority(priority)
    repeat: dict[str, Any] = {"pattern": cron} if cron is not None else {"every": every_ms}
    if tz is not None:
        repeat["tz"] = tz
    payload: dict[str, Any] = {"scheduleId": schedule_id, "blueprintId": bp.id, "context": data}
    if priority:
        payload["priority"] = priority
    queue = adapter._job_queue_or_fail().queue
    try:
        job = await queue.upsertJobScheduler(
            SCHEDULER_PREFIX + schedule_id,
            repeat,
            SCHEDULE_JOB_NAME,
            payload,
            {"attempts": 3, "backoff": {"type": "exponential", "delay": 1000}, **_TICK_RETENTION},
        )
    except ValueError as exc:  # croniter's errors are ValueErrors
        raise ValueError(f"invalid schedule {repeat!r}: {exc}") from None
    next_ms = None
    if job is not None:
        next_ms = int((job.opts or {}).get("prevMillis") or 0) or None
    logger.info("schedule %r of blueprint %r: %r", schedule_id, bp.id, repeat)
    return Schedule(schedule_id, bp.id, cron, every_ms, data, priority, tz, next_ms)


async def list_schedules(adapter: BullMQAdapter) -> list[Schedule]:
    """`BullMQAdapter.list_schedules`: the run schedules on the adapter's queue, the next to
    fire first."""
    await adapter._ready()
    queue = adapter._job_queue_or_fail().queue
    out = []
    for record in await queue.getJobSchedulers(0, -1, True):
        key = str(record.get("key") or "")
        if not key.startswith(SCHEDULER_PREFIX):
            continue
        template = record.get("template") or {}
        data = template.get("data") if isinstance(template, Mapping) else None
        data = data if isinstance(data, Mapping) else {}
        every = record.get("every")
        out.append(
            Schedule(
                id=key.removeprefix(SCHEDULER_PREFIX),
                blueprint_id=str(data.get("blueprintId", "")),
                cron=record.get("pattern"),
                every_ms=int(every) if every is not None else None,
                context=dict(data.get("context") or {}),
                priority=int(data.get("priority") or 0),
                tz=record.get("tz"),
                next_ms=int(record["next"]) if record.get("next") is not None else None,
            )
        )
    return out


async def remove_schedule(adapter: BullMQAdapter, schedule_id: str) -> bool:
    """`BullMQAdapter.remove_schedule`: remove a schedule and its next tick; False if there
    was none. Runs it started go on."""
    check_schedule_id(schedule_id)
    await adapter._ready()
    queue = adapter._job_queue_or_fail().queue
    return int(await queue.removeJobScheduler(SCHEDULER_PREFIX + schedule_id)) == 0


def _tick_ms(job: Any) -> int:
    """The tick's time: BullMQ's `prevMillis`, else the end of its id `repeat:<id>:<ms>`."""
    millis = (job.opts or {}).get("prevMillis")
    if millis:
        return int(millis)
    return int(str(job.id).rsplit(":", 1)[-1])


async def process_schedule_tick(adapter: BullMQAdapter, job: Any) -> dict[str, Any]:
    """A schedule's tick, in a worker: start its run (once per tick: the run id comes from the
    schedule id and the tick time, and a second delivery only re-adds the entry jobs)."""
    data = job.data if isinstance(job.data, Mapping) else {}
    schedule_id = check_schedule_id(data.get("scheduleId"))
    run_id = tick_run_id(schedule_id, _tick_ms(job))
    start = prepare_start(
        adapter,
        str(data.get("blueprintId")),
        data.get("context") or {},
        run_id=run_id,
        priority=int(data.get("priority") or 0),
    )
    store, _, _ = await adapter._ready()
    try:
        await store.create_run(run_id, **start.create_kwargs())
    except ValueError:  # this tick was delivered before: its run exists
        logger.info("schedule %r: run %s exists (tick redelivered)", schedule_id, run_id)
        created = False
    else:
        created = True
        await emit_start(adapter, start)
    await adapter._job_queue_or_fail().add_bulk(start.jobs())
    return {"runId": run_id, "created": created}


__all__ = [
    "SCHEDULER_PREFIX",
    "SCHEDULE_JOB_NAME",
    "PreparedStart",
    "RateLimitedWorker",
    "Schedule",
    "add_schedule",
    "check_rate_limit",
    "check_schedule_id",
    "consumed_queues",
    "list_schedules",
    "parse_rate_limit",
    "prepare_start",
    "process_schedule_tick",
    "remove_schedule",
    "start_runs",
    "tick_run_id",
]
