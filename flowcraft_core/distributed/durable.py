"""Durable sleeps and resumes on the worker side (SPEC 5.3, 9.7), technology-neutral.

* **Sleep.** A `sleep` activation whose wake time is in the future does not hold a worker: the
  job records it with a `sleeping` transition (its input and wakeAt; it stays in flight, so the
  run stays `running`) and adds a delayed wake job, `<activation id>-~wake`. The wake job
  completes the activation with its input as output and normal routing. A wake of a finished
  or cancelled run, or of an activation already completed, changes nothing. A node job
  delivered again for a sleeping activation only re-adds its wake job (deduplicated by id).
* **Resume.** `resume` claims the first matching waiting activation (once; the claim records
  the output and action) and adds a `-~resume0` job that completes it with normal routing, so
  a client needs no node code. When nothing matches, the request is buffered in FIFO order
  (`CoordinationStore.buffer_resume`); a wait activation that starts later takes the oldest
  one naming it, else the oldest naming no node, inside its own `complete` (atomically), and
  the worker completes it at once (`Applied.taken`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from ..blueprint.model import Blueprint
from ..errors import BlueprintError, Problem, RunNotAwaitingError
from ..nodes.sleep import wake_at_ms
from ..reserved import SLEEP, SUBFLOW, WAITING_KEYS
from ..results import NodeResult
from ..runtime.executor import SUCCEEDED as OUT_SUCCEEDED
from ..runtime.executor import AttemptSpec, Outcome
from ..runtime.plan import ExecutionPlan, NodePlan, get_plan
from . import transitions
from .protocol import (
    DEFAULT_ROUTE,
    FINISHED_STATUSES,
    NODE,
    RESUME,
    WAKE,
    Applied,
    Job,
    Loaded,
    Route,
    Transition,
    split_akey,
)

if TYPE_CHECKING:
    from .worker import DistributedWorker, _JobHost

logger = logging.getLogger("flowcraft_core.distributed")

#: `resume` tries to claim or buffer this many times; it retries only when an activation it
#: matches started waiting between its read and its buffering (a race, so this is plenty).
_RESUME_TRIES: Final = 20

#: Results of `resume`.
RESUMED: Final = "resumed"
BUFFERED: Final = "buffered"


def now_ms() -> float:
    return time.time() * 1000.0


def wake_job(
    run_id: str,
    node_id: str,
    iteration: tuple[int, ...],
    wake_at: float,
    route: Route = DEFAULT_ROUTE,
    plan: ExecutionPlan | None = None,
) -> Job:
    """The delayed job that ends a sleep at `wake_at` (epoch ms), where the node's jobs go."""
    delay = max(0, math.ceil(wake_at - now_ms()))
    return route.job(plan, run_id, node_id, iteration, kind=WAKE, delay_ms=delay)


class NotDue(Exception):
    """A wake job arrived before its sleep's recorded wakeAt (another worker's clock, or a
    reconciler re-add): the queue must deliver the same job again after `delay_ms`."""

    def __init__(self, delay_ms: int) -> None:
        super().__init__(f"wake job {delay_ms} ms early")
        self.delay_ms = delay_ms


# ----------------------------------------------------------------- sleep
def sleeping(
    node: NodePlan, iteration: tuple[int, ...], value: Any, delivered: tuple[bool, Any]
) -> Transition | None:
    """The `sleeping` transition of a sleep activation that must wait, else None (a sleep of
    zero or in the past runs in its job like any node and completes at once)."""
    if node.uses != SLEEP:
        return None
    wake_at = wake_at_ms(node.params, now_ms())
    if wake_at <= now_ms():
        return None
    return transitions.sleeping(node, iteration, wake_at, value, delivered)


async def after_complete(
    worker: DistributedWorker,
    host: _JobHost,
    plan: ExecutionPlan,
    node: NodePlan,
    iteration: tuple[int, ...],
    transition: Transition,
    applied: Applied,
) -> Applied:
    """What a node job does after its `complete`: a sleep adds its wake job; a wait that took a
    buffered resume is completed at once (the answer to follow up is then that completion's)."""
    if applied.ignored:
        return applied
    run_id = host.run_id
    if transition.sleep is not None:
        wake_at = transition.sleep[0]
        await worker.queue.add_bulk(
            [wake_job(run_id, node.id, iteration, wake_at, host.route, plan)]
        )
        return applied
    if applied.taken is None:
        return applied
    # Its node:awaiting stays: in-process, a wait that a resume completes emits node:start,
    # node:awaiting, then node:finish (SPEC 7), as a wait resumed after it started does here.
    output, action = applied.taken
    return await _complete_with(worker, host, plan, node, iteration, output, action)


async def _complete_with(
    worker: DistributedWorker,
    host: _JobHost,
    plan: ExecutionPlan,
    node: NodePlan,
    iteration: tuple[int, ...],
    output: Any,
    action: str | None,
) -> Applied:
    outcome = Outcome(OUT_SUCCEEDED, result=NodeResult(output=output, action=action), attempts=1)
    transition = worker.outcome_transition(
        host, plan, node, iteration, outcome, (False, None), time.perf_counter()
    )
    await host.flush()  # before `complete`, which may make successors ready (SPEC 7.1)
    return await worker.store.complete(host.run_id, transition)


async def _woken(engine: Any, node: NodePlan, spec: AttemptSpec) -> Outcome:
    """The sleep built-in once its time has come: the input passes through."""
    return Outcome(OUT_SUCCEEDED, result=NodeResult(output=spec.input), attempts=1)


async def handle_parked(
    worker: DistributedWorker, plan: ExecutionPlan, job: Job, loaded: Loaded
) -> None:
    """A wake or resume job, or the node job again (a redelivery, or the reconciler) of an
    activation that sleeps or was claimed by a resume, and is not completed."""
    run_id = job.run_id
    node = plan.nodes[plan.by_id[job.node_id]]
    iteration = job.iteration
    if job.kind == NODE and loaded.sleeping is not None:
        # It went to sleep already: (re-)add its wake job (deduplicated), nothing else.
        wake_at = loaded.sleeping[0]
        await worker.queue.add_bulk(
            [wake_job(run_id, node.id, iteration, wake_at, loaded.route, plan)]
        )
        return
    if job.kind == WAKE and loaded.sleeping is not None:
        early = math.ceil(loaded.sleeping[0] - now_ms())
        if early > 0:  # never end a sleep before its time (SPEC 9.7)
            raise NotDue(early)
    host = worker._host(plan, run_id, loaded.values)
    host.route = loaded.route
    started = time.perf_counter()
    if job.kind == WAKE and loaded.sleeping is not None:
        # Through the middleware, as the sleep node's whole activation is in-process.
        host.impls = list(host.impls)
        host.impls[node.index] = _woken
        spec = host.attempt_spec(node, iteration, loaded.sleeping[1])
        outcome = await host.execute(node, spec)
        transition = worker.outcome_transition(
            host, plan, node, iteration, outcome, (False, None), started
        )
        await host.flush()  # before `complete`, which may make successors ready (SPEC 7.1)
        applied = await worker.store.complete(run_id, transition)
    elif job.kind in (RESUME, NODE) and loaded.claimed is not None:
        # A resume claimed it: its resume job, or its node job (if that job was lost).
        output, action = loaded.claimed
        applied = await _complete_with(worker, host, plan, node, iteration, output, action)
    else:
        logger.warning(
            "job %s: activation %r has nothing to complete (kind %r): acknowledged",
            job.job_id,
            node.id,
            job.kind,
            extra={"run_id": run_id, "node_id": node.id},
        )
        return
    await worker.follow(plan, run_id, applied, notify=loaded)


# ----------------------------------------------------------------- resume
def check_resume_target(bp: Blueprint, node_id: str) -> None:
    """ValueError unless `node_id` names a wait, webhook or subflow node of `bp`."""
    node = next((n for n in bp.nodes if n.id == node_id), None)
    if node is None:
        raise ValueError(f"blueprint {bp.id!r} has no node {node_id!r}")
    if node.uses not in WAITING_KEYS and node.uses != SUBFLOW:
        raise ValueError(
            f"node {node_id!r} uses {node.uses!r}: only wait, webhook and subflow nodes "
            "can be resumed"
        )


def _not_awaiting(run_id: str, node_id: str | None, status: str) -> RunNotAwaitingError:
    where = f"node {node_id!r} of run {run_id!r}" if node_id else f"run {run_id!r}"
    return RunNotAwaitingError(f"{where} is not waiting (run status: {status})")


async def run_blueprint(worker: DistributedWorker, run_id: str) -> Blueprint:
    """The run's blueprint in this process; BlueprintError if it has none with that id."""
    return known_blueprint(worker, (await worker.store.load(run_id, "", ())).blueprint_id)


def known_blueprint(worker: DistributedWorker, blueprint_id: str) -> Blueprint:
    """The blueprint with this id in this process; BlueprintError if there is none."""
    bp = worker.runtime.blueprints.get(blueprint_id)
    if bp is None:
        raise BlueprintError(
            blueprint_id,
            [Problem("$", "UNKNOWN_BLUEPRINT", "this process has no blueprint with this id")],
        )
    return bp


async def resume(
    worker: DistributedWorker,
    run_id: str,
    *,
    node_id: str | Sequence[str] | None,
    output: Any,
    action: str | None,
) -> str:
    """SPEC 9.7: `"resumed"` (a matching waiting activation was claimed and its resume job
    added) or `"buffered"`. A finished or cancelled run raises RunNotAwaitingError; an unknown
    run RunNotFoundError; a `node_id` that is not a wait, webhook or subflow node ValueError.
    A waiting subflow node forwards the resume to its child (`node_id` may be a path through
    subflow nodes, SPEC 3.11); one that is not waiting raises RunNotAwaitingError."""
    from . import subflows  # it imports this module

    path = [node_id] if isinstance(node_id, str) else list(node_id or [])
    node_id = path[0] if path else None
    store = worker.store
    loaded = await store.load(run_id, "", ())
    bp = known_blueprint(worker, loaded.blueprint_id)
    if node_id is not None:
        check_resume_target(bp, node_id)
    plan = get_plan(bp, worker.runtime.evaluator)
    order = plan.by_id
    for _ in range(_RESUME_TRIES):
        status, _ctx, _errors, waiting = await store.result(run_id)
        if status in FINISHED_STATUSES:
            raise _not_awaiting(run_id, node_id, status)
        keys = sorted(waiting, key=lambda k: (order.get(split_akey(k)[0], len(order)), k))
        if node_id is not None:
            keys = [k for k in keys if split_akey(k)[0] == node_id]
        for key in keys:  # a claimed one (resumed already) answers False
            name, iteration = split_akey(key)
            if name in order and plan.nodes[order[name]].uses == SUBFLOW:
                return await subflows.forward(worker, waiting[key], path[1:], output, action)
            if await store.resume_waiting(run_id, key, output, action):
                job = loaded.route.job(plan, run_id, name, iteration, kind=RESUME)
                await worker.queue.add_bulk([job])
                await subflows.rearm_ancestors(worker, run_id)
                return RESUMED
        if node_id is not None and plan.nodes[order[node_id]].uses == SUBFLOW:
            raise _not_awaiting(run_id, node_id, status)  # only a waiting child takes resumes
        answer = await store.buffer_resume(run_id, node_id, output, action)
        if answer == BUFFERED:
            return BUFFERED
        if answer == "finished":
            raise _not_awaiting(run_id, node_id, await store.status(run_id))
        # "retry": an activation it matches started waiting meanwhile; claim that one.
    raise RuntimeError(f"could not resume or buffer a resume of run {run_id!r}")


__all__ = [
    "BUFFERED",
    "RESUMED",
    "NotDue",
    "after_complete",
    "check_resume_target",
    "handle_parked",
    "resume",
    "sleeping",
    "wake_job",
]
