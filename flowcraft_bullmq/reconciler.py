"""The reconciler (SPEC 9.10): find stalled runs and re-enqueue what they are owed.

A run is owed what its frontier records (`flowcraft_core.distributed.frontier`, kept by the
`create_run` and `complete` scripts): activations recorded ready whose job may be lost, and
skips and loop ends whose propagation a dead worker never applied. Reconciling works from that
recorded state only, so it never re-derives routing and an untaken branch never runs.

* `create_reconciler(...).run()` SCANs the runs' meta keys, picks the **stalled** ones (status
  `running` and no progress, by the `progressAt` the complete script writes with the Redis
  clock, for longer than the threshold; never `OBJECT IDLETIME`), and calls
  `BullMQAdapter.reconcile(run_id)` for each under the run's lease (`P:{R}:lock:reconcile`,
  SET NX EX 60).
* `BullMQAdapter.reconcile(run_id)` (`reconcile_run` here) re-adds each ready activation whose
  BullMQ job is missing or finished (a finished record is removed first, then the job is added
  with its deterministic id) and re-runs pending propagation with `DistributedWorker.follow`.
  A subflow activation parked on its child is owed the child's `-~child` notification once the
  child has ended, and nothing while it runs.
  Everything it does is idempotent: a job that is still waiting, delayed or active is left
  alone, a replayed completion changes nothing, and an activation that runs again only
  replays its recorded follow-ups.
* `schedule(cron)` upserts a BullMQ job scheduler on the adapter's queue. BullMQ hands each tick
  to exactly one worker, whose processor calls `run()` (`process_tick`).
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

from redis.asyncio import Redis

from flowcraft_core.distributed import DistributedWorker, Job
from flowcraft_core.distributed.compensation import compensation_job
from flowcraft_core.distributed.frontier import FrontierEntry, split
from flowcraft_core.distributed.protocol import COMPENSATING, FINISHED_STATUSES, PAUSED, RUNNING
from flowcraft_core.distributed.subflows import reconciled
from flowcraft_core.errors import BlueprintError, BlueprintVersionError, Problem
from flowcraft_core.runtime.plan import ExecutionPlan, get_plan
from flowcraft_core.versioning import blueprint_pin

from .keys import RunKeys, meta_pattern, run_id_of_meta_key
from .queue import BullMQJobQueue

if TYPE_CHECKING:
    from .adapter import BullMQAdapter

logger = logging.getLogger("flowcraft_bullmq.reconciler")

#: The BullMQ job name of a reconcile tick, and the id of its job scheduler.
RECONCILE_JOB_NAME: Final = "flowcraft:reconcile"
SCHEDULER_ID: Final = "flowcraft:reconcile"
DEFAULT_CRON: Final = "*/5 * * * *"
DEFAULT_THRESHOLD_S: Final = 300.0
#: The per-run lease (SPEC 9.6): long enough for one run's reconcile, short enough that a
#: reconciler that died holding it does not block the next passes for long.
LEASE_TTL_S: Final = 60
#: Statuses a reconciler looks at: work may be owed.
_LIVE: Final = frozenset({RUNNING, COMPENSATING})
#: BullMQ job states whose job will never run again: the activation's job is re-added.
_GONE: Final = frozenset({"unknown", "completed", "failed"})
#: Finished tick jobs kept (a tick every few minutes; more often only in tests).
_TICK_RETENTION: Final[Mapping[str, Any]] = {
    "removeOnComplete": {"count": 100},
    "removeOnFail": {"count": 100},
}

# Delete the lease only if it is still ours (it may have expired and been taken since).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True, slots=True)
class ReconcileStats:
    """What one `run()` pass did."""

    scanned_keys: int
    stalled_runs: int
    reconciled_runs: int
    failed_runs: int


class _FrontierReader(Protocol):
    async def frontier(self, run_id: str) -> list[FrontierEntry]: ...


class Reconciler:
    """Made by `create_reconciler`."""

    def __init__(
        self,
        *,
        adapter: BullMQAdapter,
        redis: Redis,
        stalled_threshold_s: float,
        scan_count: int = 100,
    ) -> None:
        if isinstance(stalled_threshold_s, bool) or not stalled_threshold_s >= 0:
            raise ValueError(f"stalled_threshold_s must be >= 0, not {stalled_threshold_s!r}")
        if isinstance(scan_count, bool) or not isinstance(scan_count, int) or scan_count < 1:
            raise ValueError(f"scan_count must be an int >= 1, not {scan_count!r}")
        self.adapter = adapter
        self.redis = redis
        self.stalled_threshold_s = float(stalled_threshold_s)
        self.scan_count = scan_count
        self._release = redis.register_script(_RELEASE)

    # ----------------------------------------------------------------- one pass
    async def run(self) -> ReconcileStats:
        """Scan every run of the adapter's prefix; reconcile the stalled ones."""
        prefix = self.adapter.prefix
        pattern = meta_pattern(prefix)
        scanned = stalled = reconciled = failed = 0
        cursor: int = 0
        while True:
            cursor, page = await self.redis.scan(
                cursor=cursor, match=pattern, count=self.scan_count
            )
            keys = [_text(key) for key in page]
            scanned += len(keys)
            for run_id in await self._stalled(prefix, keys):
                stalled += 1
                try:
                    if await self._reconcile(prefix, run_id):
                        reconciled += 1
                except Exception:
                    failed += 1
                    logger.exception("reconcile of run %s failed", run_id, extra={"run_id": run_id})
            if int(cursor) == 0:
                break
        stats = ReconcileStats(scanned, stalled, reconciled, failed)
        log = logger.warning if reconciled or failed else logger.info
        log(
            "reconcile pass: %d meta keys scanned, %d runs stalled, %d reconciled, %d failed",
            scanned,
            stalled,
            reconciled,
            failed,
        )
        return stats

    async def _stalled(self, prefix: str, keys: Sequence[str]) -> list[str]:
        """The stalled runs among these meta keys: `running`, and now - max(progressAt, wakeAt)
        above the threshold, on the Redis clock (the one the scripts write)."""
        if not keys:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.time()
            for key in keys:
                pipe.hmget(key, "status", "progressAt", "wakeAt", "createdAt")
            replies = await pipe.execute()
        seconds, micros = replies[0]
        now = int(seconds) + int(micros) / 1e6
        out = []
        for key, (status, progress_at, wake_at, created_at) in zip(keys, replies[1:], strict=True):
            run_id = run_id_of_meta_key(prefix, key)
            # A compensating run is live too (its compensation job may be lost); a paused
            # run is left alone (docs/run-control.md).
            if run_id is None or status is None or _text(status) not in _LIVE:
                continue
            # createdAt only stands in for a missing progressAt (create_run writes both).
            progress = _seconds(progress_at)
            times = [t for t in (progress, _seconds(wake_at)) if t is not None]
            if progress is None and (created := _seconds(created_at)) is not None:
                times.append(created)
            if times and now - max(times) > self.stalled_threshold_s:
                out.append(run_id)
        return out

    async def _reconcile(self, prefix: str, run_id: str) -> bool:
        """`adapter.reconcile(run_id)` under the run's lease; True if it enqueued a job."""
        lease = RunKeys.of(prefix, run_id).reconcile_lock
        token = uuid.uuid4().hex
        if not await self.redis.set(lease, token, nx=True, ex=LEASE_TTL_S):
            logger.info("run %s: another reconciler holds its lease; skipped", run_id)
            return False
        try:
            enqueued = await self.adapter.reconcile(run_id)
        finally:
            await self._release(keys=[lease], args=[token])
        return bool(enqueued)

    # ----------------------------------------------------------------- scheduling
    async def schedule(self, cron: str = DEFAULT_CRON, *, tz: str | None = None) -> None:
        """Upsert the reconcile job scheduler on the adapter's queue (one per queue; calling
        again replaces the pattern and settings). A 6-field pattern has seconds first.
        An invalid pattern raises ValueError."""
        queue = await _bullmq_queue(self.adapter)
        repeat: dict[str, Any] = {"pattern": cron}
        if tz is not None:
            repeat["tz"] = tz
        data = {"stalledThresholdS": self.stalled_threshold_s, "scanCount": self.scan_count}
        try:
            await queue.upsertJobScheduler(
                SCHEDULER_ID,
                repeat,
                RECONCILE_JOB_NAME,
                data,
                {"attempts": 1, **_TICK_RETENTION},
            )
        except ValueError as exc:  # croniter's errors are ValueErrors
            raise ValueError(f"invalid cron expression {cron!r}: {exc}") from None
        logger.info(
            "reconcile scheduled on queue %r: %r (threshold %ss)",
            self.adapter.queue_name,
            cron,
            self.stalled_threshold_s,
        )

    async def unschedule(self) -> bool:
        """Remove the reconcile job scheduler (and its next tick); False if there was none."""
        queue = await _bullmq_queue(self.adapter)
        return int(await queue.removeJobScheduler(SCHEDULER_ID)) == 0


def create_reconciler(
    *,
    adapter: BullMQAdapter,
    redis: Redis,
    stalled_threshold_s: float,
    scan_count: int = 100,
) -> Reconciler:
    """A reconciler of `adapter`'s runs (its prefix and queue); `redis` (either
    `decode_responses` setting) is used for the scan and the leases (SPEC 9.10)."""
    return Reconciler(
        adapter=adapter,
        redis=redis,
        stalled_threshold_s=stalled_threshold_s,
        scan_count=scan_count,
    )


async def adapter_reconciler(
    adapter: BullMQAdapter,
    *,
    stalled_threshold_s: float = DEFAULT_THRESHOLD_S,
    scan_count: int = 100,
) -> Reconciler:
    """A reconciler on the adapter's own Redis client (connecting the adapter)."""
    _, _, client = await adapter._ready()
    return create_reconciler(
        adapter=adapter,
        redis=client,
        stalled_threshold_s=stalled_threshold_s,
        scan_count=scan_count,
    )


async def process_tick(adapter: BullMQAdapter, job: Any) -> dict[str, int]:
    """A tick of the reconcile scheduler, in a worker: one `run()` (its stats are the job's
    return value)."""
    data = job.data if isinstance(job.data, Mapping) else {}
    reconciler = await adapter_reconciler(
        adapter,
        stalled_threshold_s=float(data.get("stalledThresholdS", DEFAULT_THRESHOLD_S)),
        scan_count=int(data.get("scanCount", 100)),
    )
    stats = await reconciler.run()
    logger.info("reconcile tick %s: %s", job.id, stats)
    return dataclasses.asdict(stats)


# --------------------------------------------------------------------------- one run


class _RevivingQueue:
    """The `JobQueue` port for reconciling: a job is added only when BullMQ will never run
    its id again (missing, or a finished record, which is removed first); a job that is
    waiting, delayed or active is left alone. `added` lists the ids enqueued."""

    def __init__(self, jobs: BullMQJobQueue) -> None:
        self.jobs = jobs
        self.added: list[str] = []

    async def add_bulk(self, jobs: Sequence[Job]) -> None:
        revive: list[Job] = []
        for job in {job.job_id: job for job in jobs}.values():
            queue = self.jobs.queue_of(job)  # the node's queue, else the run's
            if await queue.getJobState(job.job_id) not in _GONE:
                continue
            # 0: locked, a worker took the id meanwhile (a job re-added by someone else).
            if int(await queue.remove(job.job_id)) != 1:
                continue
            revive.append(job)
        await self.jobs.add_bulk(revive)
        self.added.extend(job.job_id for job in revive)


async def reconcile_run(adapter: BullMQAdapter, run_id: str) -> list[str]:
    """`BullMQAdapter.reconcile`: re-enqueue what the run is owed; the job ids enqueued.

    A finished or cancelled run is owed nothing. Pending skips and loop ends need the run's
    blueprint (at its pinned version) in this process; without it this raises BlueprintError
    or BlueprintVersionError after re-enqueueing the ready activations.
    """
    store, client_worker, _ = await adapter._ready()
    status = await store.status(run_id)
    if status in FINISHED_STATUSES or status == PAUSED:
        return []
    if status == COMPENSATING:  # owed its compensation job (docs/compensation.md)
        reviving = _RevivingQueue(adapter._job_queue_or_fail())
        route = (await store.load(run_id, "", ())).route
        await reviving.add_bulk([compensation_job(run_id, route)])
        return reviving.added
    entries = await cast(_FrontierReader, store.store).frontier(run_id)
    if not entries:
        logger.info("run %s: nothing recorded in flight to reconcile", run_id)
        return []
    loaded = await store.load(run_id, "", ())
    plan: ExecutionPlan | None
    try:
        plan = await _plan(client_worker, store, run_id)
    except (BlueprintError, BlueprintVersionError):
        # Without the blueprint its nodes' queues are unknown: only a run recorded on one
        # queue can be re-enqueued (create_run records `routed` otherwise).
        if loaded.route.routed:
            raise
        plan = None
    jobs, pending = split(run_id, entries, loaded.route, plan)
    # A parked subflow is owed its child's notification, and only once the child has ended.
    owed = [found for job in jobs if (found := await reconciled(store, job)) is not None]
    queue = _RevivingQueue(adapter._job_queue_or_fail())
    await queue.add_bulk(owed)
    if pending.skipped or pending.loop_ends:
        if plan is None:
            plan = await _plan(client_worker, store, run_id)  # raises the error again
        worker = DistributedWorker(store=store, queue=queue, **adapter._client_worker_args)
        await worker.follow(plan, run_id, pending, route=loaded.route)
    if queue.added:
        logger.warning(
            "run %s: re-enqueued %s",
            run_id,
            ", ".join(queue.added),
            extra={"run_id": run_id},
        )
    return queue.added


async def _plan(client_worker: DistributedWorker, store: Any, run_id: str) -> ExecutionPlan:
    loaded = await store.load(run_id, "", ())
    runtime = client_worker.runtime
    bp = runtime.blueprints.get(loaded.blueprint_id)
    if bp is None:
        raise BlueprintError(
            loaded.blueprint_id,
            [
                Problem(
                    "$",
                    "UNKNOWN_BLUEPRINT",
                    "this process has no blueprint with this id: it cannot propagate the "
                    "run's pending skips and loop ends (give the reconciler --blueprints)",
                )
            ],
        )
    if blueprint_pin(bp) != loaded.pin:
        raise BlueprintVersionError(loaded.blueprint_id, loaded.pin, blueprint_pin(bp))
    return get_plan(bp, runtime.evaluator)


async def _bullmq_queue(adapter: BullMQAdapter) -> Any:
    await adapter._ready()
    return adapter._job_queue_or_fail().queue


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _seconds(value: str | bytes | None) -> float | None:
    if value is None:
        return None
    try:
        return float(_text(value))
    except ValueError:
        return None


__all__ = [
    "DEFAULT_CRON",
    "DEFAULT_THRESHOLD_S",
    "LEASE_TTL_S",
    "RECONCILE_JOB_NAME",
    "SCHEDULER_ID",
    "ReconcileStats",
    "Reconciler",
    "adapter_reconciler",
    "create_reconciler",
    "process_tick",
    "reconcile_run",
]
