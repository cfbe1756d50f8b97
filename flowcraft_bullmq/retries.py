"""`retry_mode="queue"` (SPEC 9.5): BullMQ, not the job, runs a node's retries.

Each node job gets `attempts = maxRetries` and `backoff = {"type": backoff, "delay":
retryDelay}` (entry jobs too; a batch item job those of its scatter's `workerConfig`);
BullMQ's `fixed` and `exponential` backoffs are SPEC 4.1's delays. The k-th BullMQ attempt
of a job runs node attempt k (`job.attemptsMade + 1`; a stalled job is not a failed
attempt). A retryable failure before the last attempt emits `node:retry` and raises
`NodeAttemptFailed`, so BullMQ retries after the backoff; the last attempt (or a
non-retryable error) runs the fallback and completes the activation as in-process. Attempt
numbers, events, timeouts and outcomes are those of `retry_mode="in_process"`.

Differences a user can see: a class node's `prep` runs again in every attempt's job; an
infrastructure error (Redis) inside a node job uses up one of the node's attempts (there is no
separate infrastructure retry for node jobs); wake and resume jobs keep the default options.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from flowcraft_core.distributed.protocol import NODE, Job
from flowcraft_core.runtime.batches import item_of, item_spec
from flowcraft_core.runtime.plan import ExecutionPlan, get_plan
from flowcraft_core.versioning import blueprint_pin

if TYPE_CHECKING:
    from .adapter import BullMQAdapter

logger = logging.getLogger("flowcraft_bullmq.adapter")

RETRY_MODES: Final = frozenset({"in_process", "queue"})

#: Plans of recently seen runs, for the job options of their activations.
_CACHE: Final = 10_000


class NodeAttemptFailed(Exception):
    """Raised to BullMQ for a node attempt that failed and will be retried by the queue."""


def check_retry_mode(mode: str) -> str:
    if mode not in RETRY_MODES:
        raise ValueError(f"retry_mode must be 'in_process' or 'queue', not {mode!r}")
    return mode


def queue_attempt(job: Any, data: Job) -> int:
    """The node attempt a BullMQ job runs: failed attempts so far, plus one."""
    return int(job.attemptsMade or 0) + 1 if data.kind == NODE else 1


def _options(attempts: int, backoff: str, delay_ms: float) -> dict[str, Any]:
    return {"attempts": attempts, "backoff": {"type": backoff, "delay": int(delay_ms)}}


class QueueRetryOptions:
    """Per-job BullMQ options (`attempts`, `backoff`) from the node's config, for
    `BullMQJobQueue(retry_options=...)`. Plans come from the consuming worker's recent runs, a
    cache, or else one read of the run's blueprint id."""

    def __init__(self, adapter: BullMQAdapter) -> None:
        self.adapter = adapter
        self._plans: OrderedDict[str, ExecutionPlan | None] = OrderedDict()

    async def __call__(self, jobs: Sequence[Job]) -> list[dict[str, Any] | None]:
        out: list[dict[str, Any] | None] = []
        for job in jobs:
            plan = await self._plan(job.run_id) if job.kind == NODE else None
            item = item_of(plan, job.node_id) if plan is not None else None
            if item is not None:  # a batch item: the scatter's workerConfig
                spec = item_spec(job.run_id, item[0], job.iteration, item[1], None)
                backoff = "exponential" if spec.exponential else "fixed"
                out.append(_options(spec.max_attempts, backoff, spec.retry_delay_ms))
                continue
            if plan is None or job.node_id not in plan.by_id:
                out.append(None)  # the default options (infrastructure retries)
                continue
            config = plan.nodes[plan.by_id[job.node_id]].config
            out.append(_options(config.max_retries, config.backoff, config.retry_delay))
        return out

    async def _plan(self, run_id: str) -> ExecutionPlan | None:
        worker = self.adapter._worker
        known = worker._known_plans.get(run_id) if worker is not None else None
        if known is not None:
            return known
        if run_id in self._plans:
            self._plans.move_to_end(run_id)
            return self._plans[run_id]
        store, client_worker, _ = await self.adapter._ready()
        loaded = await store.load(run_id, "", ())
        runtime = client_worker.runtime
        bp = runtime.blueprints.get(loaded.blueprint_id)
        plan = None
        if bp is not None and blueprint_pin(bp) == loaded.pin:
            plan = get_plan(bp, runtime.evaluator)
        else:  # the worker that runs the job fails the run (SPEC 9.9)
            logger.warning("run %s: no matching blueprint for its job options", run_id)
        self._plans[run_id] = plan
        while len(self._plans) > _CACHE:
            self._plans.popitem(last=False)
        return plan


__all__ = [
    "RETRY_MODES",
    "NodeAttemptFailed",
    "QueueRetryOptions",
    "check_retry_mode",
    "queue_attempt",
]
