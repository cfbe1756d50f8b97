"""Batches on the worker side (SPEC 5.1, 9.7), technology-neutral.

* **Scatter.** The `batch-scatter` built-in runs in its job as in-process; what it registers
  (`JobBatches.register`) rides on its `succeeded` transition as a `BatchOpen`. The store
  records the items and, in the same atomic `complete`, returns the first `chunkSize` item
  activations `<scatterId>[<i>]` (all of them without a cap) as ready follow-ups.
* **Item.** An item job loads its item (`Loaded.batch_input`), runs `workerUsesKey` with the
  in-process runtime's item settings and middleware (`runtime.batches`), and completes with an
  `ItemEnd`: the store records the slot, counts the item ended, and returns the next item to
  start and, once every item ended, the parked gather (ready, or blocked after a failure).
  Item outputs are not written to the context.
* **Gather.** Its join carries a `gate` (its scatter's akey): the store parks it until the
  batch ended. Its job loads the ordered results and runs the `batch-gather` built-in.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..runtime.batches import (
    Batch,
    chunk_size,
    collects_errors,
    error_slot,
    item_spec,
    run_item_attempts,
)
from ..runtime.executor import FAILED as OUT_FAILED
from ..runtime.executor import SUCCEEDED as OUT_SUCCEEDED
from ..runtime.executor import Outcome, RetryLater
from ..runtime.plan import ExecutionPlan, NodePlan
from .protocol import FAILED, SUCCEEDED, BatchOpen, ItemEnd, Job, Loaded, Transition, akey

if TYPE_CHECKING:
    from .worker import DistributedWorker, _JobHost


class JobBatches:
    """What the batch built-ins ask of their host (`Engine.batches` in-process), for one job."""

    def __init__(self, plan: ExecutionPlan, loaded: tuple[Any] | None = None) -> None:
        self.plan = plan
        self.loaded = loaded
        #: The scatter's items, once it registered them.
        self.items: list[Any] | None = None

    def register(self, scatter: NodePlan, iteration: tuple[int, ...], items: list[Any]) -> None:
        self.items = items

    def take_results(
        self, gather: NodePlan, iteration: tuple[int, ...]
    ) -> tuple[list[Any], Batch | None]:
        """The results the store kept for this gather, in item order ([] without a batch)."""
        if gather.scatter_of_gather is None or self.loaded is None:
            return [], None
        scatter = self.plan.nodes[gather.scatter_of_gather]
        results = list(self.loaded[0])
        batch = Batch(scatter, iteration, [], results, chunk_size(scatter), False)
        return results, batch


def open_batch(
    host: _JobHost, node: NodePlan, iteration: tuple[int, ...], transition: Transition
) -> None:
    """Attach the batch a scatter registered to its `succeeded` transition."""
    items = host.batches.items
    if not node.is_scatter or items is None:
        return
    transition.batch = BatchOpen(
        key=akey(node.id, iteration),
        scatter_id=node.id,
        iteration=iteration,
        items=items,
        chunk=chunk_size(node),
        gather=akey(str(node.params["gatherNodeId"]), iteration),
    )


async def run_item(
    worker: DistributedWorker,
    plan: ExecutionPlan,
    job: Job,
    loaded: Loaded,
    item: tuple[NodePlan, int],
    *,
    attempt: int | None = None,
    lost: BaseException | None = None,
) -> None:
    """One item job: run the item (or fail it with `lost`, its job stalled too often),
    complete it, and start what the store answers. `attempt` (retry_mode="queue"): the item
    attempt this job runs; a retryable failure before the last one raises RetryLater."""
    scatter, index = item
    run_id, iteration = job.run_id, job.iteration
    value = loaded.batch_input[0] if loaded.batch_input is not None else None
    host = worker._host(plan, run_id, loaded.values)
    spec = item_spec(run_id, scatter, iteration, index, value)
    started = time.perf_counter()
    if lost is not None:
        outcome = Outcome(OUT_FAILED, error=lost, attempts=0)
    else:
        if (attempt or 1) == 1:  # node:start once per item
            host.node_started(spec.node_id, iteration, value)
        if attempt is not None:  # this job is attempt k; the queue retries
            spec.first_attempt, spec.defer_retries = attempt, True
        try:
            outcome = await run_item_attempts(host, scatter, spec)
        except RetryLater:
            await host.flush()  # node:retry; the queue runs the next attempt
            raise
    transition = Transition(
        akey=akey(spec.node_id, iteration),
        node_id=spec.node_id,
        iteration=iteration,
        outcome=SUCCEEDED if outcome.kind == OUT_SUCCEEDED else FAILED,
        item=ItemEnd(akey(scatter.id, iteration), index),
    )
    if outcome.kind == OUT_SUCCEEDED:
        assert outcome.result is not None
        host.node_finished(spec.node_id, iteration, outcome.result, started)
        transition.output = outcome.result.output
    else:
        assert outcome.error is not None and transition.item is not None
        transition.item.failed = True
        record = host.node_failed(spec.node_id, iteration, outcome.error, outcome.attempts)
        if collects_errors(scatter):
            transition.output = error_slot(record)
        else:
            transition.error = record.to_json()
    await host.flush()  # before `complete`, which may make the gather ready (SPEC 7.1)
    applied = await worker.store.complete(run_id, transition)
    await worker.follow(plan, run_id, applied, notify=loaded)


__all__ = ["JobBatches", "open_batch", "run_item"]
