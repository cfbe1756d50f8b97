"""Compensation of a failed distributed run (docs/compensation.md, "Distributed runs").

The store records every completion of a node naming `config.compensate` atomically with the
completion itself (in completion order, with the output). When the run would end `failed` with
such completions (and did not opt out), the store sets it `compensating` instead of `failed`:
a live status, so `wait_for_result` keeps waiting, and no node job runs. The worker whose
completion ended the run enqueues one compensation job (`<runId>-~compensate`); that job runs
the compensations newest first, recording each one done **atomically with its context writes**
(`record_compensation`), then moves the run to `failed` (`end_compensation`).

A worker that dies mid-way leaves the job to BullMQ's stalled-job redelivery (or the
reconciler): the next attempt skips the compensations recorded done and runs the others, so
none is skipped and none whose record was written runs twice; only the one in flight when the
worker died may run again (at-least-once, like a node: use `ctx.activation_id`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ..context import DELETED
from ..results import ErrorRecord
from ..runtime.compensation import (
    CompensationReport,
    Completed,
    compensate_one,
    failure_record,
)
from ..runtime.executor import SUCCEEDED
from ..runtime.plan import ExecutionPlan
from . import subflows
from .protocol import COMPENSATE, COMPENSATING, DEFAULT_ROUTE, Job, Route

if TYPE_CHECKING:
    from .worker import DistributedWorker

logger = logging.getLogger("flowcraft_core.distributed")


class CompensationStore(Protocol):
    """What a coordination store adds for compensation (both stores implement it)."""

    async def compensation_items(self, run_id: str) -> tuple[list[Any], dict[int, Any]]: ...

    async def record_compensation(
        self,
        run_id: str,
        index: int,
        node_id: str,
        ops: Sequence[tuple[str, Any, bool]],
        error: dict[str, Any] | None,
    ) -> bool: ...

    async def end_compensation(self, run_id: str) -> bool: ...


def compensation_job(run_id: str, route: Route = DEFAULT_ROUTE) -> Job:
    """The run's one compensation job (its id is `<runId>-~compensate`), on the run's queue
    with its priority (docs/scheduling.md)."""
    return Job(run_id, "", (), kind=COMPENSATE, queue=route.queue, priority=route.priority)


def report_of(done: Mapping[int, Any]) -> CompensationReport:
    """The result's `compensated` / `compensation_failed`, in the order the compensations ran
    (newest completion first, as in-process)."""
    report = CompensationReport([], [])
    for index in sorted(done, reverse=True):
        node_id, error = done[index]
        if error is None:
            report.compensated.append(str(node_id))
        else:
            report.failed.append(ErrorRecord.from_json(error))
    return report


async def compensate_run(worker: DistributedWorker, plan: ExecutionPlan, run_id: str) -> None:
    """Run the compensations not recorded done yet, newest first; then end the run `failed`."""
    store: Any = worker.store
    items, done = await store.compensation_items(run_id)
    host = worker._host(plan, run_id, {})
    for index in range(len(items), 0, -1):
        if index in done:
            continue
        item = Completed.from_json(items[index - 1])
        outcome = await compensate_one(host, plan, item)
        if outcome.kind == SUCCEEDED:
            ops = [
                (k, None, True) if v is DELETED else (k, v, False) for k, v in outcome.ops.items()
            ]
            error = None
        else:
            ops, error = [], failure_record(item, outcome).to_json()
        if not await store.record_compensation(run_id, index, item.node_id, ops, error):
            logger.info(
                "run %s: compensation %d of %r was recorded by another worker (or the run "
                "left compensating)",
                run_id,
                index,
                item.node_id,
                extra={"run_id": run_id, "node_id": item.node_id},
            )
            if await store.status(run_id) != COMPENSATING:
                return
    await host.flush()
    if await store.end_compensation(run_id):
        await subflows.notify_ended(worker, run_id)  # a subflow child's parent


__all__ = ["CompensationStore", "compensate_run", "compensation_job", "report_of"]
