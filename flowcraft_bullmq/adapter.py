"""`BullMQAdapter`: run flowcraft blueprints across processes on BullMQ and Redis (SPEC 9.2).

The adapter wires the technology-neutral protocol (`flowcraft_core.distributed`) to Redis:
the coordination store is `RedisCoordinationStore`, the queue a BullMQ queue with one job per
activation. A worker process calls `start()`; a client-only process just uses the client API
(`start_run`, `get_status`, `get_result`, `wait_for_result`, `resume_with_action`,
`cancel_run`) inside `async with adapter:`.

BullMQ 3.4.4 needs workarounds, applied here and in `connection.py`: `socket_timeout=None` on
every connection (B1), the Redis version read before the worker runs so sub-second blocks are
not rounded up to 1 s (B2), `pause()` before `close()` so jobs fetched during shutdown are not
orphaned (B3), job ids that are never all digits (B4), and a rate-limited worker that waits
out its limiter's window instead of 5 s (B5, scheduling.RateLimitedWorker).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import warnings
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

import redis.asyncio as redis
from bullmq import DelayedError, Queue, UnrecoverableError
from redis.exceptions import RedisError

from flowcraft_core.blueprint import Blueprint
from flowcraft_core.distributed import CoordinationStore, DistributedWorker, Job, akey
from flowcraft_core.distributed.durable import NotDue
from flowcraft_core.distributed.events import send_event
from flowcraft_core.distributed.protocol import COMPENSATING, FINISHED_STATUSES, NODE, PAUSED
from flowcraft_core.distributed.subflows import notify_ended
from flowcraft_core.distributed.worker import error_json
from flowcraft_core.errors import (
    RunNotFoundError,
    WorkerLostError,
)
from flowcraft_core.events import FlowEvent
from flowcraft_core.expressions import Evaluator
from flowcraft_core.fanout import FanOutBus
from flowcraft_core.registry import as_registry
from flowcraft_core.results import RunStatus, WorkflowResult
from flowcraft_core.runtime import FlowRuntime
from flowcraft_core.runtime.executor import RetryLater
from flowcraft_core.runtime.plan import get_plan
from flowcraft_core.versioning import blueprint_pin

from . import control
from .codec import encode
from .composed import (
    CURRENT_JOB,
    ActiveLoad,
    ComposedAdd,
    FetchingWorker,
    FinishedOnce,
    Preloads,
)
from .connection import ConnectionLike, RedisConnector, check_eviction_policy, named_error
from .control import INITIAL_CONTEXT, run_options
from .event_stream import RunEventStream, follow
from .idempotency import FinishHook, idempotency_redis_key, run_idempotency_key
from .inspection import RunInspection, RunSummary, inspect_run, list_runs
from .multiplex import Multiplexer, route_scripts
from .progress import ProgressHeartbeat
from .queue import DEFAULT_ATTEMPTS, DEFAULT_RETENTION, BullMQJobQueue
from .reconciler import RECONCILE_JOB_NAME, process_tick, reconcile_run
from .retries import NodeAttemptFailed, QueueRetryOptions, check_retry_mode, queue_attempt
from .scheduling import (
    SCHEDULE_JOB_NAME,
    RateLimitedWorker,
    add_schedule,
    check_rate_limit,
    consumed_queues,
    emit_start,
    list_schedules,
    prepare_start,
    process_schedule_tick,
    remove_schedule,
    start_runs,
)
from .store import RedisCoordinationStore

logger = logging.getLogger("flowcraft_bullmq.adapter")

#: The BullMQ scripts a worker runs once per job (fetch it, finish it).
_PER_JOB_SCRIPTS: Final = ("moveToActive", "moveToFinished")
#: The BullMQ scripts of a queue's add (queue.py runs them with the multiplexer as client).
_ADD_SCRIPTS: Final = ("addStandardJob", "addDelayedJob", "addPrioritizedJob")

#: wait_for_result polls the run status with this backoff (seconds).
_POLL_FIRST: Final = 0.005
_POLL_MAX: Final = 0.2
_POLL_FACTOR: Final = 1.5
#: Statuses wait_for_result keeps waiting through (docs/run-control.md).
_LIVE: Final = frozenset({RunStatus.RUNNING.value, COMPENSATING, PAUSED})
#: BullMQ's pause before fetching again after a connection error (milliseconds).
_RUN_RETRY_DELAY_MS: Final = 1000


def _traceback_wanted(exc: BaseException) -> bool:
    """Redis being unreachable is an operational condition, logged in one line (its traceback
    at DEBUG, SPEC 7.4); anything else is a bug worth its traceback."""
    return not isinstance(exc, RedisError) or logger.isEnabledFor(logging.DEBUG)


class _ClientRegistry(Mapping[str, Any]):
    """A registry that stands in for missing implementations.

    A client process (no node code) still completes a waiting activation on resume: that only
    routes, it never runs a node, but `FlowRuntime` resolves every implementation of a plan.
    """

    def __init__(self, registry: Mapping[str, Any]) -> None:
        self._registry = registry

    def __getitem__(self, key: str) -> Any:
        impl = self._registry.get(key)
        return impl if impl is not None else _not_here

    def __iter__(self) -> Iterator[str]:
        return iter(self._registry)

    def __len__(self) -> int:
        return len(self._registry)


def _limit_text(limit: tuple[int, int] | None) -> str:
    return "" if limit is None else f", at most {limit[0]} jobs per {limit[1]} ms"


async def _not_here(ctx: Any) -> None:
    raise RuntimeError("node implementations are not loaded in this (client) process")


class _Watch:
    """Checks a running job's run every `interval` seconds (a timer, then one status read)
    and cancels the handler's task once the run has finished, or if the check failed
    (`error`, raised by `_watched` as the old inline check did)."""

    __slots__ = ("error", "fired", "interval", "job", "running", "store", "task", "tasks", "timer")

    def __init__(
        self,
        store: FinishHook,
        job: Job,
        task: asyncio.Task[Any],
        interval: float,
        tasks: set[asyncio.Task[Any]],
    ) -> None:
        self.store = store
        self.job = job
        self.task = task
        self.interval = interval
        #: The adapter's background tasks (a check in flight is one; close() waits for them).
        self.tasks = tasks
        self.running = True
        #: True once this watch cancelled the task.
        self.fired = False
        self.error: Exception | None = None
        self.timer = asyncio.get_running_loop().call_later(interval, self._check)

    def stop(self) -> bool:
        """The handler is done: no more checks. True if this watch cancelled it."""
        self.running = False
        self.timer.cancel()
        return self.fired

    def _check(self) -> None:
        check = asyncio.get_running_loop().create_task(self._status())
        self.tasks.add(check)
        check.add_done_callback(self.tasks.discard)

    async def _status(self) -> None:
        job = self.job
        try:
            finished = await self.store.status(job.run_id) in FINISHED_STATUSES
        except Exception as exc:
            if self.running:
                self.error = exc
                self._cancel()
            return
        if not self.running:
            return
        if not finished:
            self.timer = asyncio.get_running_loop().call_later(self.interval, self._check)
            return
        logger.info(
            "run %s ended while node %r ran: cancelling it",
            job.run_id,
            job.node_id,
            extra={"run_id": job.run_id, "node_id": job.node_id},
        )
        self._cancel()

    def _cancel(self) -> None:
        self.fired = True
        self.running = False
        self.task.cancel()


class BullMQAdapter:
    """Distributed runs on BullMQ: a worker (`start()`) and the client API, over one Redis."""

    def __init__(
        self,
        *,
        connection: ConnectionLike,
        registry: Mapping[str, Any] | None = None,
        blueprints: Mapping[str, Blueprint | Mapping[str, Any]] | Iterable[Blueprint],
        queue_name: str = "flowcraft",
        prefix: str = "flowcraft",
        concurrency: int = 10,
        dependencies: Mapping[str, Any] | None = None,
        event_bus: Any = None,
        middleware: Sequence[Any] = (),
        evaluator: Evaluator | None = None,
        webhook_registrar: Any = None,
        retry_mode: str = "in_process",
        state_ttl_s: int = 86_400,
        idempotency_ttl_s: int | None = None,
        lock_duration_s: float = 10,
        stalled_interval_s: float = 5,
        max_stalled_count: int = 3,
        progress_interval_s: float = 30,
        max_loop_iterations: int = 10_000,
        job_retention: Mapping[str, Any] | None = None,
        event_stream: bool = False,
        event_stream_maxlen: int = 10_000,
        multiplex: bool = True,
        queues: Sequence[str] | None = None,
        rate_limit: tuple[int, int] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if lock_duration_s <= 0 or stalled_interval_s <= 0:
            raise ValueError("lock_duration_s and stalled_interval_s must be > 0")
        if max_stalled_count < 0 or state_ttl_s < 0:
            raise ValueError("max_stalled_count and state_ttl_s must be >= 0")
        if isinstance(progress_interval_s, bool) or not progress_interval_s >= 0:
            raise ValueError(f"progress_interval_s must be >= 0, not {progress_interval_s!r}")
        if idempotency_ttl_s is not None and (
            isinstance(idempotency_ttl_s, bool)
            or not isinstance(idempotency_ttl_s, int)
            or idempotency_ttl_s < 0
        ):
            raise ValueError(f"idempotency_ttl_s must be an int >= 0, not {idempotency_ttl_s!r}")
        if not queue_name or ":" in queue_name:
            raise ValueError(f"invalid queue name {queue_name!r}: non-empty, without ':'")
        if not prefix or any(c in "{}" or ord(c) < 0x20 for c in prefix):
            raise ValueError(f"invalid key prefix {prefix!r}: non-empty, no braces or controls")
        self.connector = RedisConnector(connection)
        #: Where runs started here put the jobs of nodes without `config.queue`.
        self.queue_name = queue_name
        #: The queues `start()` consumes, one BullMQ worker each (docs/scheduling.md).
        self.queues = consumed_queues(queue_name, queues)
        #: BullMQ's limiter of each consumed queue: at most (max jobs, per duration ms).
        self.rate_limit = check_rate_limit(rate_limit)
        self.prefix = prefix
        self.concurrency = concurrency
        self.state_ttl_s = state_ttl_s
        #: How long an idempotency key is remembered after its run ended (0: forever; None:
        #: as long as the run's state, state_ttl_s).
        self.idempotency_ttl_s = state_ttl_s if idempotency_ttl_s is None else idempotency_ttl_s
        self.lock_duration_s = lock_duration_s
        self.stalled_interval_s = stalled_interval_s
        self.max_stalled_count = max_stalled_count
        #: A worker refreshes progressAt of runs with an executing job this often (0: never).
        self.progress_interval_s = progress_interval_s
        #: Our scripts (load, complete, add) and BullMQ's per-job ones share one pipelined
        #: connection (multiplex.py); False keeps them on the connection pool.
        self.multiplex = multiplex
        self.retry_mode = check_retry_mode(retry_mode)  # "queue": BullMQ retries (retries.py)
        self.job_options: dict[str, Any] = {
            **(job_retention if job_retention is not None else DEFAULT_RETENTION),
            **DEFAULT_ATTEMPTS,
        }
        self._registry = registry
        #: event_stream=True: every event also goes to the run's Redis Stream (event_stream.py).
        self._event_stream: RunEventStream | None = None
        if event_stream:
            if event_stream_maxlen < 1:
                raise ValueError("event_stream_maxlen must be >= 1")
            self._event_stream = RunEventStream(
                prefix, maxlen=event_stream_maxlen, ttl_s=state_ttl_s
            )
            event_bus = FanOutBus(event_bus, self._event_stream)
        # Load (and validate) the blueprints once, now: both workers below share the objects.
        loaded = FlowRuntime(blueprints=blueprints, evaluator=evaluator).blueprints
        self._worker_args: dict[str, Any] = {
            "blueprints": loaded,
            "dependencies": dependencies,
            "event_bus": event_bus,
            "middleware": middleware,
            "evaluator": evaluator,
            "webhook_registrar": webhook_registrar,
            "max_loop_iterations": max_loop_iterations,
        }
        # The client side routes resumes without node code (see _ClientRegistry).
        self._client_worker_args = {
            **self._worker_args,
            "registry": _ClientRegistry(as_registry(registry)),
        }
        self._client: redis.Redis | None = None
        self._multiplexer: Multiplexer | None = None
        self._store: FinishHook | None = None
        self._queue: Any = None
        self._queues: dict[str, Any] = {}
        self._job_queue: BullMQJobQueue | None = None
        self._client_worker: DistributedWorker | None = None
        self._worker: DistributedWorker | None = None
        self._bull_worker: Any = None  # the first of _bull_workers
        self._bull_workers: list[Any] = []
        self._run_tasks: list[asyncio.Task[Any]] = []
        self._progress: ProgressHeartbeat | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connect_lock = asyncio.Lock()
        self._closed = False
        self._abort = asyncio.Event()

    # ----------------------------------------------------------------- lifecycle
    async def __aenter__(self) -> BullMQAdapter:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the connections (without consuming); checks Redis is reachable."""
        async with self._connect_lock:
            if self._closed:
                raise RuntimeError("this BullMQAdapter is closed")
            if self._store is not None:
                return
            client = self.connector.client()
            try:
                await client.ping()
            except Exception as exc:
                if self.connector.owns_client:
                    await client.aclose()
                if isinstance(exc, RedisError):  # one message naming the server (no password)
                    raise named_error(exc, self.connector.describe()) from exc
                raise
            await check_eviction_policy(client, where=self.connector.describe())
            if self.multiplex and Multiplexer.supports(client):
                self._multiplexer = Multiplexer(client)
            store = self._make_store(client)
            self._client = client
            if self._event_stream is not None:
                self._event_stream.attach(client)
            self._store = FinishHook(
                store, client, self.prefix, self.idempotency_ttl_s, via=self._multiplexer
            )
            self._queue = self.bullmq_queue(self.queue_name)
            self._job_queue = BullMQJobQueue(
                self._queue,
                job_options=self.job_options,
                retry_options=QueueRetryOptions(self) if self.retry_mode == "queue" else None,
                via=self._multiplexer,
                queue_for=self.bullmq_queue,
            )
            self._compose(store)
            self._client_worker = DistributedWorker(
                store=self._store, queue=self._job_queue, **self._client_worker_args
            )
            self._worker = DistributedWorker(
                store=self._store,
                queue=self._job_queue,
                registry=self._registry,
                **self._worker_args,
            )

    def _compose(self, store: CoordinationStore) -> None:
        """`complete` adds the successors' jobs itself (composed.py) when every job it would
        add is plain: no per-job retry options, and no event bus: a completion's node:skipped
        events, known from its reply, come before its ready successors' jobs (SPEC 7.1) only
        if the worker adds them after emitting. Only on the multiplexed connection (one Redis,
        not a cluster)."""
        if (
            isinstance(store, RedisCoordinationStore)
            and self._multiplexer is not None
            and self.retry_mode != "queue"
            and self._worker_args["event_bus"] is None
        ):
            assert self._job_queue is not None
            store.adds = ComposedAdd.build(
                store.client, self._queue, self._job_queue.job_options, store.prefix
            )

    def _compose_fetch(self, worker: Any) -> None:
        """BullMQ's fetch of a job also loads it (composed.ActiveLoad); a job that complete+add
        finished is not finished again (composed.FinishedOnce), and its slot runs the job that
        finish fetched (composed.FetchingWorker)."""
        commands = worker.scripts.commands
        store = self._store.store if self._store is not None else None
        if not isinstance(store, RedisCoordinationStore) or self._multiplexer is None:
            return
        if store.adds is not None and store.adds.finishes and "moveToFinished" in commands:
            commands["moveToFinished"] = FinishedOnce(commands["moveToFinished"], store.adds)
            if isinstance(worker, FetchingWorker):  # its finishes fetch the slot's next job
                worker.adds = store.adds
        if store.preloads is None:
            store.preloads = Preloads(self.prefix, self._multiplexer)
        if not ActiveLoad.install(
            commands, store.client, self._multiplexer, store.preloads, self.prefix
        ):
            store.preloads = None

    async def _publish_preloads(self) -> None:
        """The composed fetch learns what each node of this worker's blueprints loads."""
        store = self._store.store if self._store is not None else None
        if not isinstance(store, RedisCoordinationStore) or store.preloads is None:
            return
        assert self._worker is not None
        runtime = self._worker.runtime
        await store.preloads.publish_plans(
            [
                (bp.id, blueprint_pin(bp), get_plan(bp, runtime.evaluator))
                for bp in runtime.blueprints.values()
            ]
        )

    def bullmq_queue(self, name: str) -> Any:
        """The `bullmq.Queue` named `name` (made on first use, one connection each), where
        jobs routed to it are added (docs/scheduling.md)."""
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = Queue(
                name,
                {
                    "connection": self.connector.new_client(),
                    "prefix": self.prefix,
                    "defaultJobOptions": self.job_options,
                },
            )
            if self._multiplexer is not None:  # queue.py's adds: straight to the multiplexer
                route_scripts(
                    queue.scripts.commands, _ADD_SCRIPTS, self._multiplexer, unnamed=False
                )
        return queue

    def _make_store(self, client: redis.Redis) -> CoordinationStore:
        """The Redis coordination store."""
        return RedisCoordinationStore(
            client,
            prefix=self.prefix,
            state_ttl_s=self.state_ttl_s,
            scripts_via=self._multiplexer,
        )

    async def start(self) -> None:
        """Begin consuming jobs of every queue in `queues`; returns once the BullMQ workers
        run (until `close()`)."""
        await self.connect()
        if self._bull_worker is not None:
            return
        try:
            for name in self.queues:
                worker = await self._start_worker(name)
                self._bull_workers.append(worker)
                self._run_tasks.append(
                    asyncio.create_task(worker.run(), name=f"flowcraft-bullmq-worker-{name}")
                )
        except BaseException:  # no half-started adapter: stop the queues' workers started
            for started in self._bull_workers:
                await started.close(force=True)
            await asyncio.gather(*self._run_tasks, return_exceptions=True)
            self._bull_workers.clear()
            self._run_tasks.clear()
            raise
        self._bull_worker = self._bull_workers[0]
        await self._publish_preloads()
        assert self._client is not None
        self._progress = ProgressHeartbeat(self._client, self.prefix, self.progress_interval_s)
        self._progress.start()
        await asyncio.sleep(0)
        logger.info(
            "worker consuming queue %s (prefix %r, concurrency %d%s) on %s",
            ", ".join(repr(name) for name in self.queues),
            self.prefix,
            self.concurrency,
            _limit_text(self.rate_limit),
            self.connector.describe(),
        )

    async def _start_worker(self, name: str) -> Any:
        """A BullMQ worker of queue `name`, not running yet (B2)."""
        options: dict[str, Any] = {}
        if self.rate_limit is not None:
            options["limiter"] = {"max": self.rate_limit[0], "duration": self.rate_limit[1]}
        # A rate-limited worker fetches through its run loop only (it waits out the window).
        worker = (FetchingWorker if self.rate_limit is None else RateLimitedWorker)(
            name,
            self._process,
            {
                **options,
                "connection": self.connector.new_client(),
                "prefix": self.prefix,
                "concurrency": self.concurrency,
                "autorun": False,  # B2: read the Redis version before running
                "lockDuration": int(self.lock_duration_s * 1000),
                "stalledInterval": int(self.stalled_interval_s * 1000),
                "maxStalledCount": self.max_stalled_count,
                "name": f"{socket.gethostname()}:{os.getpid()}",
                "removeOnComplete": self.job_options.get("removeOnComplete"),
                "removeOnFail": self.job_options.get("removeOnFail"),
                # After a lost connection BullMQ waits this long before fetching again
                # (default 15 s): a restarted Redis is used again within a second.
                "runRetryDelay": _RUN_RETRY_DELAY_MS,
            },
        )
        if self._multiplexer is not None and worker.scripts is not None:
            # BullMQ's two per-job scripts share our pipelined connection (multiplex.py).
            route_scripts(worker.scripts.commands, _PER_JOB_SCRIPTS, self._multiplexer)
            self._compose_fetch(worker)
        worker.on("error", self._on_error)
        worker.on("failed", self._on_failed)
        try:
            with warnings.catch_warnings():
                # BullMQ warns about the eviction policy itself; connect() logged it already.
                warnings.simplefilter("ignore")
                await worker.blockingRedisConnection.getRedisVersion()
        except BaseException:
            await worker.close(force=True)
            raise
        return worker

    async def close(self, timeout_s: float | None = None) -> None:
        """Stop fetching, let in-flight activations finish (cancelled after `timeout_s`),
        close what the adapter opened. A client passed in stays open."""
        if self._closed:
            return
        self._closed = True
        workers, self._bull_workers, self._bull_worker = self._bull_workers, [], None
        if workers:
            # B3: pause first (waits for in-flight jobs), then close.
            pausing = asyncio.ensure_future(asyncio.gather(*(w.pause() for w in workers)))
            aborted = asyncio.ensure_future(self._abort.wait())
            done, _ = await asyncio.wait(
                {pausing, aborted}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
            aborted.cancel()
            force = pausing not in done
            if force:
                logger.warning("cancelling in-flight activations (close timed out or aborted)")
            for worker in workers:
                try:
                    await worker.close(force=force)
                except Exception:
                    logger.exception("closing the BullMQ worker failed")
            if not pausing.done():
                pausing.cancel()
            await asyncio.gather(pausing, return_exceptions=True)
            await asyncio.gather(*self._run_tasks, return_exceptions=True)
        if self._progress is not None:
            await self._progress.stop()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for queue in self._queues.values():
            try:
                await queue.close()
            except Exception:
                logger.exception("closing the BullMQ queue failed")
        if self._multiplexer is not None:
            await self._multiplexer.aclose()
        if self._client is not None and self.connector.owns_client:
            await self._client.aclose()

    def abort_close(self) -> None:
        """Make a `close()` in progress cancel in-flight activations now (a second Ctrl-C).

        Their jobs stay active in BullMQ and are redelivered once their locks expire."""
        self._abort.set()

    # ----------------------------------------------------------------- the worker side
    async def _process(self, job: Any, token: str) -> Any:
        """BullMQ processor: one activation job. Raises only for infrastructure errors
        (BullMQ retries them); a job's last failed attempt fails the run, never silently."""
        assert self._worker is not None
        if job.name == RECONCILE_JOB_NAME:  # a reconcile scheduler tick (reconciler.py)
            return await process_tick(self, job)
        if job.name == SCHEDULE_JOB_NAME:  # a tick of a run schedule (scheduling.py)
            return await process_schedule_tick(self, job)
        try:
            data = Job.from_data(job.data)
        except (KeyError, TypeError, ValueError) as exc:
            logger.error("job %s has malformed data %r: %s", job.id, job.data, exc)
            raise UnrecoverableError(f"malformed flowcraft job data: {exc}") from exc
        attempt = queue_attempt(job, data) if self.retry_mode == "queue" else None
        # Its completion may also finish it (composed.py): only a node job's, as BullMQ's
        # worker would finish it after this returns (the result None).
        current = CURRENT_JOB.set(
            (akey(data.node_id, data.iteration), job, token) if data.kind == NODE else None
        )
        try:
            await self._watched(data, attempt)
        except RunNotFoundError:
            logger.warning("job %s: run %r not found (expired?): acknowledged", job.id, data.run_id)
        except RetryLater as retry:  # retry_mode="queue": BullMQ runs the next attempt
            raise NodeAttemptFailed(str(retry)) from retry.error
        except NotDue as early:  # a wake before its time: the same job, delayed again
            await job.moveToDelayed(round(time.time() * 1000) + early.delay_ms, token)
            raise DelayedError(str(early)) from None
        except Exception as exc:
            attempts = int((job.opts or {}).get("attempts") or 1)
            final = int(job.attemptsMade or 0) + 1 >= attempts
            logger.error(
                "job %s (run %s, node %r) raised %s: %s%s",
                job.id,
                data.run_id,
                data.node_id,
                type(exc).__name__,
                exc,
                "; failing the run" if final else "; BullMQ will retry it",
                extra={"run_id": data.run_id, "node_id": data.node_id},
                exc_info=_traceback_wanted(exc),
            )
            if final:
                await self._fail_run(data, exc)
            raise
        finally:
            CURRENT_JOB.reset(current)

    async def _watched(self, job: Job, attempt: int | None = None) -> None:
        """Handle a job; while it runs, check the run every lock_duration/2 and cancel the
        node once the run is cancelled or finished (SPEC 9.8). The handler runs in the
        processor's own task and the check is a timer (`_Watch`): a job that ends before the
        first check costs a timer, not a task and an `asyncio.wait` per job."""
        assert self._worker is not None and self._store is not None
        task = asyncio.current_task()
        assert task is not None
        handling = (
            self._worker.handle(job)
            if attempt is None
            else self._worker.handle(job, attempt=attempt)  # retry_mode="queue"
        )
        progress = self._progress  # its sweep refreshes progressAt while the job runs
        if progress is not None:
            progress.begin(job.run_id)
        watch = _Watch(self._store, job, task, self.lock_duration_s / 2, self._tasks)
        try:
            try:
                await handling
            except BaseException:
                if not watch.stop():
                    raise  # the node's own outcome, or the processor was cancelled
            else:
                if not watch.stop():
                    return
            # The watch cancelled the handler: the run ended (or checking it failed).
            if task.uncancel() > 0:  # and the processor itself was cancelled (forced close)
                raise asyncio.CancelledError
            if watch.error is not None:
                raise watch.error
        finally:
            if progress is not None:
                progress.end(job.run_id)

    async def _lost(self, job: Job, exc: WorkerLostError) -> None:
        """A job BullMQ gave up on (a node job, a wake, a resume, a `-~child` notification)
        fails its activation (docs/semantics.md); the run only if that is impossible."""
        if self._worker is None:
            await self._fail_run(job, exc)
            return
        try:
            await self._worker.fail_activation(job, exc)
        except Exception:
            logger.exception("could not fail activation of job %s", job.job_id)
            await self._fail_run(job, exc)

    async def _fail_run(self, job: Job, exc: BaseException) -> None:
        assert self._store is not None and self._worker is not None
        try:
            await self._store.fail_run(job.run_id, error_json(exc, node_id=job.node_id))
            await notify_ended(self._worker, job.run_id)  # a subflow child's parent
        except Exception as error:
            logger.error(
                "could not fail run %s: %s: %s",
                job.run_id,
                type(error).__name__,
                error,
                exc_info=_traceback_wanted(error),
            )

    def _on_error(self, error: BaseException, job: Any = None) -> None:
        logger.error(
            "BullMQ worker error%s: %s: %s",
            f" (job {job.id})" if job is not None else "",
            type(error).__name__,
            error,
        )

    def _on_failed(self, job: Any, error: BaseException) -> None:
        if isinstance(error, NodeAttemptFailed):  # a node attempt BullMQ retries (logged)
            return
        logger.error("job %s failed: %s: %s", job.id, type(error).__name__, error)
        if isinstance(error, UnrecoverableError) and "stalled" in str(error):
            # BullMQ gave up on a job whose workers kept dying: the activation is lost.
            try:
                data = Job.from_data(job.data)
            except (KeyError, TypeError, ValueError):
                return
            lost = WorkerLostError(
                f"activation {akey(data.node_id, data.iteration)!r} stalled more than "
                f"{self.max_stalled_count} times (its workers died or lost their locks)"
            )
            task = asyncio.get_running_loop().create_task(self._lost(data, lost))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # ----------------------------------------------------------------- client API
    async def _ready(self) -> tuple[FinishHook, DistributedWorker, redis.Redis]:
        await self.connect()
        assert self._store is not None and self._client_worker is not None
        assert self._client is not None
        return self._store, self._client_worker, self._client

    async def start_run(
        self,
        blueprint_id: str,
        initial_context: Mapping[str, Any] | str | None = None,
        *,
        run_id: str | None = None,
        idempotency_key: str | None = None,
        priority: int = 0,
        delay: float = 0,
        queue: str | None = None,
        compensate: bool = True,
    ) -> str:
        """Create the run, enqueue its entry activations, emit `workflow:start`; the run id.

        `priority` (BullMQ's: 1 highest .. 2,097,152 lowest; 0, the default, is none, and
        such jobs are taken first) goes with every job of the run; `delay` (seconds) holds
        the entry jobs back; `queue` replaces the adapter's `queue_name` as the run's queue
        for nodes without `config.queue` (docs/scheduling.md).

        Unknown blueprint: BlueprintError. Non-JSON context: SerializationError. An existing
        run id, or an invalid priority, delay or queue: ValueError. A repeated
        `idempotency_key` returns the first run's id. `compensate=False` opts the run out of
        compensation (docs/compensation.md).
        """
        return await self._start(
            blueprint_id,
            initial_context,
            run_id=run_id,
            idempotency_key=idempotency_key,
            options=run_options(compensate=compensate),
            priority=priority,
            delay=delay,
            queue=queue,
        )

    async def _start(
        self,
        blueprint_id: str,
        initial_context: Mapping[str, Any] | str | None,
        *,
        run_id: str | None,
        idempotency_key: str | None,
        options: Mapping[str, str],
        priority: int = 0,
        delay: float = 0,
        queue: str | None = None,
    ) -> str:
        """`start_run`, writing `options` (meta fields) before the first job is enqueued."""
        store, client_worker, client = await self._ready()
        start = prepare_start(
            self,
            blueprint_id,
            initial_context,
            run_id=run_id,
            priority=priority,
            delay=delay,
            queue=queue,
        )
        run_id = start.run_id
        initial = encode(client_worker.runtime.initial_data(initial_context)).decode()
        idem = idempotency_redis_key(self.prefix, idempotency_key) if idempotency_key else None
        if idem is not None:
            existing = await self._claim_idempotency(client, idem, run_id)
            if existing is not None:
                await self._finish_interrupted_start(store, existing)
                return existing
        try:
            await store.create_run(run_id, **start.create_kwargs())
        except BaseException:
            if idem is not None:
                await self._release_idempotency(client, idem, run_id)
            raise
        # The initial context too (restart_run), before the first job can change the context.
        await store.set_options(run_id, {**options, INITIAL_CONTEXT: initial})
        if idem is not None:
            await client.set(run_idempotency_key(self.prefix, run_id), idem)
            if not start.entries:
                await store.finished(run_id)
        await emit_start(self, start)
        await self._job_queue_or_fail().add_bulk(start.jobs())
        return run_id

    # Bulk starts and cron-started runs (scheduling.py, docs/scheduling.md): the module's
    # functions, whose first parameter is the adapter, as methods.
    start_runs = start_runs
    add_schedule = add_schedule
    list_schedules = list_schedules
    remove_schedule = remove_schedule

    def _job_queue_or_fail(self) -> BullMQJobQueue:
        assert self._job_queue is not None
        return self._job_queue

    @staticmethod
    async def _claim_idempotency(client: redis.Redis, idem: str, run_id: str) -> str | None:
        """SET NX the key; the existing run id if another start claimed it first."""
        for _ in range(3):
            if await client.set(idem, run_id, nx=True):
                return None
            existing = await client.get(idem)
            if existing is not None:
                return str(existing)
        raise RuntimeError(f"could not claim idempotency key {idem!r}")

    async def _finish_interrupted_start(self, store: CoordinationStore, run_id: str) -> None:
        """A client retries a start that raised after its run was created (the entry jobs were
        never enqueued): re-enqueue what the run is owed now, instead of leaving it idle until
        the reconciler's threshold. Only missing jobs are added, so nothing runs twice."""
        try:
            status = await store.status(run_id)
        except RunNotFoundError:
            return  # the first start is still creating it
        if status == RunStatus.RUNNING:
            await self.reconcile(run_id)

    @staticmethod
    async def _release_idempotency(client: redis.Redis, idem: str, run_id: str) -> None:
        try:
            if await client.get(idem) == run_id:
                await client.delete(idem)
        except Exception:
            logger.warning("could not release idempotency key %r", idem)

    async def get_status(self, run_id: str) -> str:
        """`running`, `awaiting`, `completed`, `failed` or `cancelled`; RunNotFoundError."""
        store, _, _ = await self._ready()
        return await store.status(run_id)

    async def get_blueprint_id(self, run_id: str) -> str:
        """The id of the run's blueprint; RunNotFoundError."""
        store, _, _ = await self._ready()
        return (await store.load(run_id, "", ())).blueprint_id

    async def get_result(self, run_id: str) -> WorkflowResult | None:
        """The run's result, or None while it is `running`."""
        _, client_worker, _ = await self._ready()
        result = await client_worker.result(run_id)
        return None if result.status == RunStatus.RUNNING else result

    async def wait_for_result(
        self, run_id: str, *, timeout_s: float | None = None
    ) -> WorkflowResult:
        """Poll until the run is no longer `running`; TimeoutError after `timeout_s`."""
        store, _, _ = await self._ready()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        delay = _POLL_FIRST
        while True:
            # Poll the status (one small read); read the whole result once it is settled.
            if await store.status(run_id) not in _LIVE:  # compensating, paused: not yet
                result = await self.get_result(run_id)
                if result is not None:
                    return result
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"run {run_id!r} still running after {timeout_s}s")
                delay = min(delay, left)
            await asyncio.sleep(delay)
            delay = min(delay * _POLL_FACTOR, _POLL_MAX)

    async def resume_with_action(
        self,
        run_id: str,
        action: str | None = None,
        output: Any = None,
        *,
        node_id: str | Sequence[str] | None = None,
    ) -> str:
        """Resume a waiting activation with `NodeResult(output, action)` (SPEC 9.7).

        `"resumed"`: the first matching waiting activation (`node_id`'s, else the first in
        blueprint order) is claimed, once, and a `-~resume0` job completes it with normal
        routing, so only the action's edges are taken. `"buffered"`: nothing matches yet, so
        the request waits in the run's FIFO until a wait activation that it matches starts.
        A finished or cancelled run: RunNotAwaitingError. A `node_id` that is not a wait,
        webhook or subflow node: ValueError. Needs no node code (the job runs on a worker).
        A waiting subflow node forwards the resume to its child run; `node_id` may be a path
        through subflow nodes (`["sub", "w2"]`).
        """
        _, client_worker, _ = await self._ready()
        return await client_worker.resume(run_id, node_id=node_id, output=output, action=action)

    async def events(
        self, run_id: str, *, since: str = "0-0", settle_s: float = 0.5
    ) -> AsyncIterator[FlowEvent]:
        """Follow a run's events from any process (the workers' and the starter's, with
        `event_stream=True` there): oldest first (after stream id `since`), as they come,
        until the run has finished and `settle_s` passed without one. RunNotFoundError."""
        store, _, client = await self._ready()
        async for event in follow(
            client, self.prefix, run_id, store.status, since=since, settle_s=settle_s
        ):
            yield event

    async def reconcile(self, run_id: str) -> list[str]:
        """Re-enqueue what a run is owed, from its recorded state (SPEC 9.10): activations
        recorded ready whose job is missing or finished, and skips and loop ends whose
        propagation never ran. Returns the ids of the jobs enqueued (reconciler.py)."""
        return await reconcile_run(self, run_id)

    async def cancel_run(self, run_id: str) -> bool:
        """Cancel a running, awaiting or paused run and its subflow children (SPEC 9.8): True;
        False if it had already finished (or is compensating: it failed already)."""
        _, client_worker, _ = await self._ready()
        return await client_worker.cancel(run_id)

    async def send_event(self, run_or_key: str, name: str, payload: Any = None) -> str:
        """Deliver a named event to a run (docs/events.md): its id, or the idempotency key it
        was started with (a correlation key). The run's wait node with `params.event ==
        name` resumes with `payload` as its output (`"resumed"`), or takes it when it starts
        waiting (`"buffered"`). RunNotFoundError, RunNotAwaitingError for a finished run,
        ValueError if no wait node of the run's blueprint waits on `name`."""
        _, client_worker, _ = await self._ready()
        run_id = await control.resolve_run(self, run_or_key)
        return await send_event(client_worker, run_id, name, payload)

    # ----------------------------------------------------------------- run control
    async def pause_run(self, run_id: str) -> bool:
        """Pause a running or awaiting run (docs/run-control.md): in-flight nodes finish,
        nothing new starts. False if the run is not running or awaiting."""
        return await control.pause_run(self, run_id)

    async def resume_run(self, run_id: str) -> bool:
        """Continue a paused run where it stopped; False if it is not paused."""
        return await control.resume_run(self, run_id)

    async def restart_run(self, run_id: str) -> str:
        """A new run of the same blueprint and initial context (meta `restartedFrom`)."""
        return await control.restart_run(self, run_id)

    async def retry_run(self, run_id: str, *, from_failed: bool = True) -> str:
        """Run a failed run's failed nodes again and what follows them, keeping what
        succeeded (docs/run-control.md); `from_failed=False` is `restart_run`."""
        return await control.retry_run(self, run_id, from_failed=from_failed)

    # ----------------------------------------------------------------- read-only views
    @property
    def blueprints(self) -> Mapping[str, Blueprint]:
        """The blueprints this adapter loaded, by id (to draw a run's graph)."""
        loaded: Mapping[str, Blueprint] = self._worker_args["blueprints"]
        return loaded

    async def list_runs(
        self,
        *,
        limit: int = 100,
        status: str | None = None,
        blueprint_id: str | None = None,
        max_scanned: int = 10_000,
    ) -> list[RunSummary]:
        """The newest runs first, optionally of one status or blueprint; finds them by SCAN
        of at most `max_scanned` meta keys (inspection.py)."""
        return await list_runs(
            self, limit=limit, status=status, blueprint_id=blueprint_id, max_scanned=max_scanned
        )

    async def inspect_run(self, run_id: str) -> RunInspection:
        """A run's meta, context, errors, waits and activations (with their BullMQ jobs'
        times and attempts), read without writing anything; RunNotFoundError."""
        return await inspect_run(self, run_id)


__all__ = ["BullMQAdapter", "idempotency_redis_key", "run_idempotency_key"]
