"""Prometheus metrics of a worker (the `metrics` extra; `flowcraft worker --metrics-port`).

* `flowcraft_node_executions_total{blueprint,node,outcome}`: activations ended here, by
  outcome `succeeded`, `failed`, `waiting` or `skipped`.
* `flowcraft_node_retries_total{blueprint,node}`: failed attempts that were retried.
* `flowcraft_node_duration_seconds{blueprint,node}`: histogram of activation run times.
* `flowcraft_runs_started_total{blueprint}`: runs whose first entry activation ran here.
* `flowcraft_runs_finished_total{blueprint,status}`: runs this worker finished (`completed`,
  `failed`, `awaiting`, `cancelled`, ...).
* `flowcraft_queue_jobs{queue,state}`: gauge read from BullMQ when scraped (`waiting`,
  `active`, `delayed`, `prioritized`).
* `flowcraft_reconciler_passes_total{queue}`: reconcile scheduler ticks this worker ran, and
  `flowcraft_reconciler_runs_resumed_total{queue}`: stalled runs they re-enqueued work for.
* `flowcraft_resumes_total{blueprint}`: resume jobs (`resume_with_action`) run here.

Node metrics come from the event bus; run and reconcile metrics from `MeteredAdapter`, a
`BullMQAdapter` whose store counts finished runs. A worker without `--metrics-port` uses the
plain adapter and pays nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import redis.asyncio as redis

from flowcraft_core.blueprint import Blueprint
from flowcraft_core.distributed import transitions
from flowcraft_core.distributed.protocol import COMPENSATING, RESUME, Applied, Loaded, Transition
from flowcraft_core.events import (
    FlowEvent,
    NodeAwaiting,
    NodeError,
    NodeFinish,
    NodeRetry,
    NodeSkipped,
    NodeStart,
)
from flowcraft_core.runtime.plan import get_plan

from .adapter import BullMQAdapter
from .reconciler import RECONCILE_JOB_NAME
from .store import RedisCoordinationStore

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

#: Node duration buckets (seconds): fast in-memory nodes to slow external calls.
DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
QUEUE_STATES: Final = ("waiting", "active", "delayed", "prioritized")
_INSTALL_HINT: Final = "metrics need prometheus_client: pip install 'flowcraft[metrics]'"
#: Activations started and not yet ended that the duration clock remembers.
_MAX_OPEN: Final = 10_000


class WorkerMetrics:
    """The metrics of one worker process, in their own registry; also an event bus."""

    def __init__(self, *, queue_name: str, registry: CollectorRegistry | None = None) -> None:
        try:
            from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        except ImportError as exc:
            raise ImportError(_INSTALL_HINT) from exc
        self.queue_name = queue_name
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        self.node_executions = Counter(
            "flowcraft_node_executions",
            "Node activations ended on this worker, by outcome",
            ["blueprint", "node", "outcome"],
            registry=reg,
        )
        self.node_retries = Counter(
            "flowcraft_node_retries",
            "Failed node attempts that were retried",
            ["blueprint", "node"],
            registry=reg,
        )
        self.node_duration = Histogram(
            "flowcraft_node_duration_seconds",
            "Node activation run time, from its start to its end",
            ["blueprint", "node"],
            buckets=DURATION_BUCKETS,
            registry=reg,
        )
        self.runs_started = Counter(
            "flowcraft_runs_started",
            "Runs whose first entry activation ran on this worker",
            ["blueprint"],
            registry=reg,
        )
        self.runs_finished = Counter(
            "flowcraft_runs_finished",
            "Runs this worker finished, by status",
            ["blueprint", "status"],
            registry=reg,
        )
        self.queue_jobs = Gauge(
            "flowcraft_queue_jobs",
            "BullMQ jobs of the queue by state, read when scraped",
            ["queue", "state"],
            registry=reg,
        )
        self.reconciler_passes = Counter(
            "flowcraft_reconciler_passes",
            "Reconcile scheduler ticks this worker ran",
            ["queue"],
            registry=reg,
        )
        self.runs_resumed = Counter(
            "flowcraft_reconciler_runs_resumed",
            "Stalled runs whose lost work the reconcile passes re-enqueued",
            ["queue"],
            registry=reg,
        )
        self.resumes = Counter(
            "flowcraft_resumes",
            "Resume jobs (resume_with_action) run on this worker",
            ["blueprint"],
            registry=reg,
        )
        self._blueprints: Mapping[str, Blueprint] = {}
        self._first_entry: dict[str, tuple[str, tuple[int, ...]] | None] = {}
        self._started_at: OrderedDict[tuple[str, str, tuple[int, ...]], float] = OrderedDict()
        #: run id -> blueprint id, from the worker's loads (a finished run names its blueprint)
        self._run_blueprints: OrderedDict[str, str] = OrderedDict()

    def use_blueprints(self, blueprints: Mapping[str, Blueprint]) -> None:
        """The worker's blueprints, to know each one's first entry activation."""
        self._blueprints = blueprints
        self._first_entry.clear()

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    # ----------------------------------------------------------------- event bus
    def emit(self, event: FlowEvent) -> None:
        if isinstance(event, NodeStart):
            key = (event.run_id, event.node_id, event.iteration)
            self._started_at[key] = event.timestamp.timestamp()
            while len(self._started_at) > _MAX_OPEN:
                self._started_at.popitem(last=False)
            if self._first_entry_of(event.blueprint_id) == (event.node_id, event.iteration):
                self.runs_started.labels(event.blueprint_id).inc()
        elif isinstance(event, NodeFinish):
            self._ended(event, "succeeded", event.duration_ms / 1000)
        elif isinstance(event, NodeError):
            self._ended(event, "failed")
        elif isinstance(event, NodeAwaiting):
            self._ended(event, "waiting")
        elif isinstance(event, NodeSkipped):
            self.node_executions.labels(event.blueprint_id, event.node_id, "skipped").inc()
        elif isinstance(event, NodeRetry):
            self.node_retries.labels(event.blueprint_id, event.node_id).inc()

    def _ended(
        self,
        event: NodeFinish | NodeError | NodeAwaiting,
        outcome: str,
        duration_s: float | None = None,
    ) -> None:
        started = self._started_at.pop((event.run_id, event.node_id, event.iteration), None)
        self.node_executions.labels(event.blueprint_id, event.node_id, outcome).inc()
        if duration_s is None and started is not None:
            duration_s = max(0.0, event.timestamp.timestamp() - started)
        if duration_s is not None:
            self.node_duration.labels(event.blueprint_id, event.node_id).observe(duration_s)

    def _first_entry_of(self, blueprint_id: str) -> tuple[str, tuple[int, ...]] | None:
        if blueprint_id not in self._first_entry:
            bp = self._blueprints.get(blueprint_id)
            first = None
            if bp is not None:
                entries, _ = transitions.entries(get_plan(bp))
                if entries:
                    first = (entries[0].node_id, entries[0].iteration)
            self._first_entry[blueprint_id] = first
        return self._first_entry[blueprint_id]

    # ----------------------------------------------------------------- runs
    def run_loaded(self, run_id: str, blueprint_id: str) -> None:
        if not blueprint_id:
            return
        runs = self._run_blueprints
        runs[run_id] = blueprint_id
        runs.move_to_end(run_id)
        while len(runs) > _MAX_OPEN:
            runs.popitem(last=False)

    def blueprint_of(self, run_id: str) -> str:
        """The blueprint of a run this worker loaded recently ("" if none)."""
        return self._run_blueprints.get(run_id, "")

    def run_finished(self, run_id: str, status: str) -> None:
        self.runs_finished.labels(self._run_blueprints.get(run_id, ""), status).inc()

    async def refresh_queue(self, queue: Any, name: str | None = None) -> None:
        """Read the queue's job counts into the gauge (on scrape), labelled `name` (default
        `queue_name`)."""
        counts = await queue.getJobCounts(*QUEUE_STATES)
        for state in QUEUE_STATES:
            label = name or self.queue_name
            self.queue_jobs.labels(label, state).set(int(counts.get(state) or 0))


class _MeteredStore(RedisCoordinationStore):
    """The Redis store, counting the runs it finishes."""

    def __init__(self, client: redis.Redis, *, metrics: WorkerMetrics, **options: Any) -> None:
        super().__init__(client, **options)
        self.metrics = metrics

    async def load(self, run_id: str, akey: str, keys: Any) -> Loaded:
        loaded = await super().load(run_id, akey, keys)
        self.metrics.run_loaded(run_id, loaded.blueprint_id)
        return loaded

    async def complete(self, run_id: str, transition: Transition) -> Applied:
        applied = await super().complete(run_id, transition)
        # `compensating` is not an end: the run is counted when its compensation ends it.
        if applied.finished is not None and not applied.replay and not applied.ignored:
            if applied.finished != COMPENSATING:
                self.metrics.run_finished(run_id, applied.finished)
        return applied

    async def end_compensation(self, run_id: str) -> bool:
        ended = await super().end_compensation(run_id)
        if ended:
            self.metrics.run_finished(run_id, "failed")
        return ended

    async def cancel(self, run_id: str) -> bool:
        cancelled = await super().cancel(run_id)
        if cancelled:
            self.metrics.run_finished(run_id, "cancelled")
        return cancelled

    async def fail_run(self, run_id: str, error: dict[str, Any]) -> None:
        await super().fail_run(run_id, error)
        self.metrics.run_finished(run_id, "failed")


class MeteredAdapter(BullMQAdapter):
    """A `BullMQAdapter` that feeds `metrics` (its event bus gets the node events too)."""

    def __init__(self, *, metrics: WorkerMetrics, event_bus: Any = None, **options: Any) -> None:
        from flowcraft_core.fanout import FanOutBus

        super().__init__(event_bus=FanOutBus(metrics, event_bus), **options)
        self.metrics = metrics
        metrics.use_blueprints(self.blueprints)

    def _make_store(self, client: redis.Redis) -> RedisCoordinationStore:
        return _MeteredStore(
            client, metrics=self.metrics, prefix=self.prefix, state_ttl_s=self.state_ttl_s
        )

    async def _process(self, job: Any, token: str) -> Any:
        outcome = await super()._process(job, token)
        if job.name == RECONCILE_JOB_NAME:
            self.metrics.reconciler_passes.labels(self.queue_name).inc()
            if isinstance(outcome, Mapping):
                resumed = int(outcome.get("reconciled_runs") or 0)
                self.metrics.runs_resumed.labels(self.queue_name).inc(resumed)
        elif isinstance(job.data, Mapping) and job.data.get("kind") == RESUME:
            self.metrics.resumes.labels(self.metrics.blueprint_of(str(job.data.get("runId")))).inc()
        return outcome

    async def refresh_metrics(self) -> None:
        """Update the gauges read from Redis (the job counts of every queue consumed)."""
        if self._queue is not None:
            for name in self.queues:
                await self.metrics.refresh_queue(self.bullmq_queue(name), name)


__all__ = ["DURATION_BUCKETS", "QUEUE_STATES", "MeteredAdapter", "WorkerMetrics"]
