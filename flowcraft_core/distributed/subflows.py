"""Subflows in distributed mode (SPEC 5.6, 9.7, 9.8), technology-neutral.

* **Park.** A subflow activation's node job resolves the child's initial context (the pure
  rules of `nodes/subflow.py`) and records it with a `parked` transition: the activation stays
  in flight, so the parent stays `running`, but holds no worker. The same job then starts the
  child, a separate run whose id is the parent's activation id. Starting is idempotent: the
  child's meta records the parent link, and a second start finds the run and does nothing.
* **Sync.** Whenever the child reaches `awaiting` or a final status, the worker that applied
  that transition adds the parent's `<activation id>-~child<seq>` job, with `seq = 2·episode`
  for awaiting and `2·episode + 1` for a final status (a run's *episode* counts how often it
  went from awaiting back to running, so every notification gets a fresh job id). That job,
  like the node job delivered again (a redelivery, or the reconciler re-adding it because the
  notification was lost), *syncs* the parent activation with the child's current state:
  a final child completes the activation through 5.6 (`subflow_outcome`, fallback and
  middleware included); an awaiting child makes it wait with the in-process details, as the
  transition `<akey>~wait~<episode>` (once per child episode); a running child changes
  nothing. Every step is idempotent, so duplicate and stale notifications are harmless.
* **Resume.** A resume naming a waiting subflow node (or a path through subflow nodes) is
  forwarded to the child. Once a resume claims an activation of a run that had been awaiting,
  its ancestors' waiting subflow activations are re-armed (`CoordinationStore.rearm`: in
  flight again, so the parent is `running` while the child runs).
* **Cancel.** Cancelling a run cancels its live children, recursively.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from ..errors import RunNotAwaitingError, RunNotFoundError
from ..ids import activation_id
from ..nodes.subflow import child_blueprint, child_context, subflow_outcome
from ..reserved import SUBFLOW
from ..results import RunStatus
from ..runtime.executor import AttemptSpec, Outcome
from ..runtime.plan import ExecutionPlan, NodePlan, get_plan
from . import transitions
from .frontier import READY
from .protocol import (
    CHILD,
    FINISHED_STATUSES,
    RUNNING,
    WAITING,
    CoordinationStore,
    Job,
    Loaded,
    Transition,
    akey,
    split_akey,
)

if TYPE_CHECKING:
    from .worker import DistributedWorker, _JobHost

logger = logging.getLogger("flowcraft_core.distributed")


def parking(
    worker: DistributedWorker,
    host: _JobHost,
    node: NodePlan,
    iteration: tuple[int, ...],
    value: Any,
    delivered: tuple[bool, Any],
) -> Transition:
    """The `parked` transition of a subflow activation: its child's id, blueprint, initial
    context (5.6) and the node's input (for a fallback, once the child has failed)."""
    runtime = worker.runtime
    child = child_blueprint(runtime, node)
    record = {
        "runId": activation_id(host.run_id, node.id, iteration),
        "blueprintId": child.id,
        "context": runtime.initial_data(child_context(host, node, value, child)),
        "input": value,
    }
    return transitions.parked(node, iteration, record, delivered)


def notification(loaded: Loaded, status: str) -> Job | None:
    """The parent's `-~child<seq>` job once the run `loaded` describes reached `status`
    (None if it is no child, or the status needs no notification)."""
    if loaded.parent is None:
        return None
    final = status in FINISHED_STATUSES
    if not final and status != RunStatus.AWAITING:
        return None
    parent_run, node_id, iteration = loaded.parent
    seq = 2 * loaded.episode + (1 if final else 0)
    # The parent run's queue and priority, which the child inherited (docs/scheduling.md).
    return loaded.route.job(None, parent_run, node_id, tuple(iteration), kind=CHILD, seq=seq)


async def notify_ended(worker: DistributedWorker, run_id: str) -> None:
    """Tell a child run's parent that the run ended outside a `complete` (cancel, a run-level
    failure)."""
    await _notify_parent(worker, await worker.store.load(run_id, "", ()))


async def _notify_parent(worker: DistributedWorker, loaded: Loaded) -> None:
    job = notification(loaded, loaded.status)
    if job is not None:
        await worker.queue.add_bulk([job])


async def sync(worker: DistributedWorker, plan: ExecutionPlan, job: Job, loaded: Loaded) -> None:
    """Bring a parked (or waiting) subflow activation in line with its child run."""
    run_id, iteration = job.run_id, job.iteration
    node = plan.nodes[plan.by_id[job.node_id]]
    record = loaded.child
    if record is None:
        logger.warning(
            "job %s: activation %r is not parked on a child run: acknowledged",
            job.job_id,
            node.id,
            extra={"run_id": run_id, "node_id": node.id},
        )
        return
    store = worker.store
    bp = child_blueprint(worker.runtime, node)
    child_id = str(record["runId"])
    try:
        child = await store.load(child_id, "", ())
    except RunNotFoundError:
        link = (run_id, node.id, iteration)
        # The child runs with its parent's queue and priority (docs/scheduling.md).
        route = loaded.route
        entries = await worker.create_run(
            bp, dict(record["context"]), child_id, parent=link, route=route
        )
        if entries is not None:  # else another job started it
            await worker.launch(bp, child_id, entries, parent=link, route=route)
        if await store.status(run_id) in FINISHED_STATUSES:  # cancelled meanwhile (9.8)
            await cancel(worker, child_id)
            return
        child = await store.load(child_id, "", ())
    if child.status == RUNNING:
        if loaded.waiting:  # the child was resumed: the activation is in flight again
            await store.rearm(run_id, akey(node.id, iteration), child.episode)
            await rearm_ancestors(worker, run_id)
        return
    result = await worker.result(child_id)

    async def settled(engine: Any, node: NodePlan, spec: AttemptSpec) -> Outcome:
        return subflow_outcome(engine, node, bp, result)

    # Through the middleware and config.fallback, as the whole in-process activation is.
    host = worker._host(plan, run_id, loaded.values)
    host.impls = list(host.impls)
    host.impls[node.index] = settled
    started = time.perf_counter()
    outcome = await host.execute(node, host.attempt_spec(node, iteration, record.get("input")))
    transition = worker.outcome_transition(
        host, plan, node, iteration, outcome, (False, None), started
    )
    transition.episode = child.episode
    if transition.outcome == WAITING:  # once per child episode
        transition.akey = f"{akey(node.id, iteration)}~wait~{child.episode}"
    await host.flush()  # before `complete`, which may make successors ready (SPEC 7.1)
    applied = await store.complete(run_id, transition)
    await worker.follow(plan, run_id, applied, notify=loaded)


async def reconciled(store: CoordinationStore, job: Job) -> Job | None:
    """What a reconciler re-enqueues for an owed activation's `job` (SPEC 9.10): the job
    itself, unless the activation is a subflow parked on its child: then nothing while the
    child runs (the parent only looks stalled), else the child's `-~child` notification (it
    was lost). A child that was never created keeps the node job, which creates it."""
    loaded = await store.load(job.run_id, akey(job.node_id, job.iteration), ())
    if loaded.child is None or loaded.done is not None:
        return job
    try:
        child = await store.load(str(loaded.child["runId"]), "", ())
    except RunNotFoundError:
        return job
    if child.status == RUNNING:
        return None
    return notification(child, child.status) or job


async def child_episode(store: CoordinationStore, child_id: str) -> int:
    """The child's episode (0 if it was never started): a transition driven by it."""
    try:
        return (await store.load(child_id, "", ())).episode
    except RunNotFoundError:
        return 0


async def cancel_if_started(worker: DistributedWorker, child_id: str) -> None:
    """Cancel a child whose parent activation ended without it (a lost job, SPEC 9.4)."""
    try:
        await cancel(worker, child_id)
    except RunNotFoundError:
        pass


# ----------------------------------------------------------------- resume
async def forward(
    worker: DistributedWorker,
    details: dict[str, Any],
    path: list[str],
    output: Any,
    action: str | None,
) -> str:
    """Forward a resume of a waiting subflow activation to its child (`path`: the rest of
    the node path, SPEC 3.11); the child's answer."""
    from .durable import resume  # durable forwards here: imported late

    child_id = str(details.get("childRunId"))
    if path:
        _status, _ctx, _errors, waiting = await worker.store.result(child_id)
        names = list(dict.fromkeys(split_akey(key)[0] for key in waiting))
        if path[0] not in names:
            raise RunNotAwaitingError(
                f"node {path[0]!r} is not waiting; waiting nodes: {names}", waiting=names
            )
    return await resume(worker, child_id, node_id=path or None, output=output, action=action)


async def rearm_ancestors(worker: DistributedWorker, run_id: str) -> None:
    """A resume claimed an activation of `run_id`: each ancestor whose subflow activation
    waited on the (now running) child is in flight again, up the chain. Each step is a no-op
    unless that ancestor waits since an older episode of its child, so the whole chain is
    walked (another job may have re-armed a link already)."""
    store = worker.store
    loaded = await store.load(run_id, "", ())
    while loaded.parent is not None:
        parent_run, node_id, iteration = loaded.parent
        await store.rearm(parent_run, akey(node_id, tuple(iteration)), loaded.episode)
        loaded = await store.load(parent_run, "", ())


# ----------------------------------------------------------------- cancel
async def cancel(worker: DistributedWorker, run_id: str) -> bool:
    """Cancel a running or awaiting run and its live children (SPEC 9.8): True; False if it
    had finished. A cancelled child's parent is notified (it fails with SubflowError)."""
    store = worker.store
    if not await store.cancel(run_id):
        return False
    loaded = await store.load(run_id, "", ())
    await _notify_parent(worker, loaded)
    bp = worker.runtime.blueprints.get(loaded.blueprint_id)
    if bp is None:
        return True
    plan = get_plan(bp, worker.runtime.evaluator)
    subflow_ids = {node.id for node in plan.nodes if node.uses == SUBFLOW}
    if not subflow_ids:
        return True
    _status, _ctx, _errors, waiting = await store.result(run_id)
    live = {entry.akey for entry in await store.frontier(run_id) if entry.kind == READY}
    for key in sorted(live | set(waiting)):
        node_id, iteration = split_akey(key)
        if node_id in subflow_ids:
            try:
                await cancel(worker, activation_id(run_id, node_id, iteration))
            except RunNotFoundError:  # not started yet
                pass
    return True


__all__ = [
    "cancel",
    "cancel_if_started",
    "child_episode",
    "forward",
    "notification",
    "notify_ended",
    "parking",
    "rearm_ancestors",
    "reconciled",
    "sync",
]
