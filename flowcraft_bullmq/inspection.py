"""Read-only views of distributed runs for operators: `BullMQAdapter.list_runs` and
`BullMQAdapter.inspect_run` (the run inspector and `flowcraft status` use them).

Everything here is read from state the protocol already keeps (keys.py); nothing is written and
the hot path pays nothing. A run's activations come from its ``acts`` hash (completed, with
``~wait``/``~wake``/``~claim`` marks; a batch item by its slot ``~out``), ``waiting`` hash and
``frontier`` (owed, not completed); their times and attempts from the activation's BullMQ job
hash (a resumed wait ends when its resume job finished), which exists until BullMQ's retention
removes it (``removeOnComplete``/``removeOnFail``, 1,000 jobs by default).

How an activation's state is derived (there is no per-activation status field):

* ``failed``: completed and the run has an error record for its node and iteration;
* ``done``: completed and ``_outputs.<node>`` is in the context; ``skipped`` otherwise (a skip
  or block writes no output), and also when the run's other jobs are kept but this activation
  has none (a skip never has a job: this tells a skipped loop iteration of a node that ran in
  another iteration; once BullMQ removed the jobs, such an iteration reads as done);
* a fallback node that stood in for a failed node ran inside that node's activation and job:
  it is ``done`` at the node's iteration when its output is the node's (with the blueprint);
* ``waiting``: in the waiting hash; ``sleeping``: a durable sleep not yet woken;
* ``running``/``queued``: owed and not completed, by its job (started or not); ``skipped`` for
  an owed skip whose propagation is pending; ``cancelled`` for owed work of a finished run.

Recent runs are found by SCANning the meta keys (no index is written at `start_run`), at most
`max_scanned` of them; SCAN order is arbitrary, so beyond that bound the list is a sample.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from bullmq.queue_keys import QueueKeys

from flowcraft_core.blueprint import Blueprint
from flowcraft_core.distributed.frontier import READY, SKIP
from flowcraft_core.distributed.protocol import (
    FINISHED_STATUSES,
    RESUME,
    Job,
    node_queue,
    split_akey,
)
from flowcraft_core.distributed.protocol import akey as make_akey
from flowcraft_core.errors import RunNotFoundError
from flowcraft_core.ids import activation_id
from flowcraft_core.reserved import OUTPUTS_PREFIX
from flowcraft_core.runtime.plan import get_plan

from . import codec
from .keys import RunKeys, meta_pattern, run_id_of_meta_key

if TYPE_CHECKING:
    from .adapter import BullMQAdapter

#: Activation states, from worst to mildest: a node with several activations shows the first
#: state of this order that one of them has (a failed iteration makes the node failed).
STATES: Final = (
    "failed",
    "running",
    "queued",
    "waiting",
    "sleeping",
    "cancelled",
    "done",
    "skipped",
)
#: A node with no activation (not reached, or its activations expired).
NOT_REACHED: Final = "pending"
_META_FIELDS: Final = ("blueprintId", "status", "createdAt", "finishedAt", "progressAt", "inFlight")
_JOB_FIELDS: Final = ("timestamp", "processedOn", "finishedOn", "ats", "atm", "failedReason")
_PAGE: Final = 500
#: acts marks of batches (complete.lua) that are not activation states: a batch's record, an
#: item's item or a gather's results. A completed item is done by its slot (`~out`), or failed
#: (`~fail`, also when its error was collected or discarded: it is not in the run's errors).
_BATCH_MARKS: Final = frozenset({"bat", "in"})


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One run's meta hash: what the run list shows. Times are epoch seconds (Redis clock)."""

    run_id: str
    blueprint_id: str
    status: str
    created_at: float | None
    finished_at: float | None
    progress_at: float | None
    in_flight: int

    def duration_s(self, now: float | None = None) -> float | None:
        """Finished runs: start to end; others: start to `now` (default: this clock)."""
        if self.created_at is None:
            return None
        end = self.finished_at if self.finished_at is not None else now
        return max(0.0, (end if end is not None else time.time()) - self.created_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "runId": self.run_id,
            "blueprintId": self.blueprint_id,
            "status": self.status,
            "createdAt": self.created_at,
            "finishedAt": self.finished_at,
            "progressAt": self.progress_at,
            "inFlight": self.in_flight,
            "durationS": self.duration_s(),
        }


@dataclass(frozen=True, slots=True)
class Activation:
    """One activation of a node (one iteration), with its BullMQ job's times when kept."""

    akey: str
    node_id: str
    iteration: tuple[int, ...]
    state: str
    job_id: str | None = None
    enqueued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    #: Attempts known: BullMQ's attempts started (retry_mode="queue"), or a failure's record.
    attempts: int = 0
    error: dict[str, Any] | None = None
    #: A job's failure as BullMQ recorded it (infrastructure errors, queue-mode retries).
    job_failure: str | None = None

    @property
    def ran_s(self) -> float | None:
        """Seconds its (last) job ran, when BullMQ recorded both ends."""
        if self.finished_at is None or self.started_at is None:
            return None
        return self.finished_at - self.started_at

    @property
    def problem(self) -> str:
        """Its error record as ``Type: message``, else BullMQ's failure reason, else ''."""
        if self.error is not None:
            return f"{self.error.get('type')}: {self.error.get('message')}"
        return self.job_failure or ""

    def to_json(self) -> dict[str, Any]:
        return {
            "akey": self.akey,
            "nodeId": self.node_id,
            "iteration": list(self.iteration),
            "state": self.state,
            "jobId": self.job_id,
            "enqueuedAt": self.enqueued_at,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "attempts": self.attempts,
            "error": self.error,
            "jobFailure": self.job_failure,
        }


@dataclass(frozen=True, slots=True)
class RunInspection:
    """Everything the inspector shows about one run, read at one moment."""

    summary: RunSummary
    pin: str
    context: dict[str, Any]
    errors: list[dict[str, Any]]
    #: Waiting activations by akey -> their details (reason, iteration, ...).
    waiting: dict[str, Any]
    activations: list[Activation]
    #: Resumes buffered for a wait that has not started yet.
    buffered_resumes: int = 0
    #: Seconds until the run's keys expire (finished runs), else None.
    expires_in_s: float | None = None
    node_states: dict[str, str] = field(default_factory=dict)

    @property
    def outputs(self) -> dict[str, Any]:
        n = len(OUTPUTS_PREFIX)
        return {k[n:]: v for k, v in self.context.items() if k.startswith(OUTPUTS_PREFIX)}

    def node_state(self, node_id: str) -> str:
        return self.node_states.get(node_id, NOT_REACHED)

    @property
    def fingerprint(self) -> str:
        """Changes whenever the run moves (a page polls it to know when to reload)."""
        s = self.summary
        return (
            f"{s.status}|{s.progress_at}|{s.in_flight}|{len(self.activations)}|{len(self.errors)}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            **self.summary.to_json(),
            "blueprintVersion": self.pin,
            "context": self.context,
            "errors": self.errors,
            "waiting": self.waiting,
            "activations": [a.to_json() for a in self.activations],
            "nodes": self.node_states,
            "bufferedResumes": self.buffered_resumes,
            "expiresInS": self.expires_in_s,
            "fingerprint": self.fingerprint,
        }


def _float(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _summary(run_id: str, values: Sequence[Any]) -> RunSummary:
    blueprint_id, status, created, finished, progress, in_flight = values
    return RunSummary(
        run_id=run_id,
        blueprint_id=str(blueprint_id or ""),
        status=str(status or "unknown"),
        created_at=_float(created),
        finished_at=_float(finished),
        progress_at=_float(progress),
        in_flight=int(_float(in_flight) or 0),
    )


async def list_runs(
    adapter: BullMQAdapter,
    *,
    limit: int = 100,
    status: str | None = None,
    blueprint_id: str | None = None,
    max_scanned: int = 10_000,
) -> list[RunSummary]:
    """`BullMQAdapter.list_runs`: the newest runs first (by start time)."""
    if limit < 1 or max_scanned < 1:
        raise ValueError("limit and max_scanned must be >= 1")
    _, _, client = await adapter._ready()
    prefix = adapter.prefix
    run_ids: list[str] = []
    cursor: int = 0
    while len(run_ids) < max_scanned:
        cursor, page = await client.scan(cursor=cursor, match=meta_pattern(prefix), count=1000)
        for key in page:
            run_id = run_id_of_meta_key(prefix, key if isinstance(key, str) else key.decode())
            if run_id is not None:
                run_ids.append(run_id)
        if int(cursor) == 0:
            break
    del run_ids[max_scanned:]
    runs: list[RunSummary] = []
    for start in range(0, len(run_ids), _PAGE):
        chunk = run_ids[start : start + _PAGE]
        async with client.pipeline(transaction=False) as pipe:
            for run_id in chunk:
                pipe.hmget(RunKeys.of(prefix, run_id).meta, list(_META_FIELDS))
            replies = await pipe.execute()
        for run_id, values in zip(chunk, replies, strict=True):
            if values[1] is None:  # expired between SCAN and HMGET
                continue
            summary = _summary(run_id, values)
            if status and summary.status != status:
                continue
            if blueprint_id and summary.blueprint_id != blueprint_id:
                continue
            runs.append(summary)
    runs.sort(key=lambda r: (r.created_at or 0.0, r.run_id), reverse=True)
    return runs[:limit]


def _parse_field(name: str) -> tuple[str, tuple[int, ...], str] | None:
    """(node id, iteration, mark) of an acts field ``<node>@<i.j>[~mark]``; None for loop ends."""
    if name.startswith("~end:"):
        return None
    node_id, at, rest = name.rpartition("@")
    if not at:
        return None
    text, _, mark = rest.partition("~")
    try:
        iteration = tuple(int(i) for i in text.split(".")) if text else ()
    except ValueError:
        return None
    return node_id, iteration, mark


def _job_keys(
    adapter: BullMQAdapter, blueprint_id: str, run_queue: str | None
) -> Callable[[str, str], str]:
    """(node id, job id) -> the BullMQ job hash key, on the node's queue else the run's."""
    plan = None
    bp = adapter.blueprints.get(blueprint_id)
    if bp is not None:
        plan = get_plan(bp)
    default = run_queue or adapter.queue_name
    keys = QueueKeys(adapter.prefix)

    def key(node_id: str, job_id: str) -> str:
        return str(keys.toKey(node_queue(plan, node_id) or default, job_id))

    return key


async def inspect_run(adapter: BullMQAdapter, run_id: str) -> RunInspection:
    """`BullMQAdapter.inspect_run`: one consistent read of the run's hashes (MULTI), then one
    pipeline of its activations' job hashes. RunNotFoundError if unknown or expired."""
    _, _, client = await adapter._ready()
    keys = RunKeys.of(adapter.prefix, run_id)
    async with client.pipeline(transaction=True) as pipe:
        pipe.hmget(keys.meta, [*_META_FIELDS, "queue", "blueprintVersion"])
        pipe.hgetall(keys.ctx)
        pipe.lrange(keys.errors, 0, -1)
        pipe.hkeys(keys.base + "acts")
        pipe.hgetall(keys.waiting)
        pipe.hgetall(keys.frontier)
        pipe.llen(keys.resume)
        pipe.pttl(keys.meta)
        meta, ctx, raw_errors, acts, raw_waiting, frontier, buffered, pttl = await pipe.execute()
    if meta[1] is None:
        raise RunNotFoundError(run_id)
    summary = _summary(run_id, meta[:-2])
    # A job is on its node's queue, else on the run's (docs/scheduling.md).
    job_key = _job_keys(adapter, summary.blueprint_id, meta[-2])
    context = {k: codec.decode(v) for k, v in ctx.items()}
    errors = [codec.decode(e) for e in raw_errors]
    waiting = {k: codec.decode(v) for k, v in raw_waiting.items()}
    finished = summary.status in FINISHED_STATUSES

    failures: dict[str, dict[str, Any]] = {}
    for error in errors:
        if isinstance(error, dict) and error.get("nodeId") is not None:
            failures.setdefault(make_akey(error["nodeId"], error.get("iteration") or ()), error)

    found: dict[str, tuple[str, tuple[int, ...], str]] = {}  # akey -> node, iteration, state
    marks: dict[str, set[str]] = {}
    for name in acts:
        parsed = _parse_field(name)
        if parsed is None or parsed[2] in _BATCH_MARKS:
            continue
        node_id, iteration, mark = parsed
        key = make_akey(node_id, iteration)
        found.setdefault(key, (node_id, iteration, ""))
        marks.setdefault(key, set()).add(mark)
    for akey, (node_id, iteration, _) in list(found.items()):
        seen = marks[akey]
        if "" in seen:
            if akey in failures or "fail" in seen:  # a batch item's failure may be collected
                state = "failed"
            elif OUTPUTS_PREFIX + node_id in context or "out" in seen:
                state = "done"
            else:
                state = "skipped"
        elif akey in waiting:
            state = "waiting"
        elif "claim" in seen:
            state = "cancelled" if finished else "queued"  # the resume job completes it
        elif "wake" in seen:
            state = "cancelled" if finished else "sleeping"
        else:
            state = "cancelled" if finished else "running"
        found[akey] = (node_id, iteration, state)
    for key in waiting:
        if key not in found:
            found[key] = (*split_akey(key), "waiting")
    for akey, text in frontier.items():
        if akey in found and found[akey][2] != "running":
            continue
        try:
            entry = codec.unpack_frontier(akey, text)
        except ValueError:
            continue
        if entry.kind not in (READY, SKIP):
            continue
        ready = entry.kind == READY
        state = ("cancelled" if finished else "queued") if ready else "skipped"
        found[akey] = (entry.node_id, tuple(entry.iteration), state)

    # A fallback node that stood in for a failed one ran inside that node's activation (and
    # job): it has no activation of its own, only its output (the same as the node's).
    ran_in = _stand_ins(adapter.blueprints.get(summary.blueprint_id), found, context)
    for akey, (fallback, owner) in ran_in.items():
        found[akey] = (fallback, found[owner][1], "done")

    # The activations' BullMQ jobs (skips never had one).
    with_job = [a for a, (_, _, state) in found.items() if state != "skipped"]
    # A resumed wait ends when its resume job (`-~resume0`) completes it.
    resumed = [a for a in with_job if "claim" in marks.get(a, ())]
    jobs: dict[str, list[Any]] = {}
    resumed_at: dict[str, float | None] = {}
    if with_job and adapter._queue is not None:
        job_of = {a: ran_in[a][1] if a in ran_in else a for a in with_job}
        ids = {a: activation_id(run_id, found[job_of[a]][0], found[a][1]) for a in with_job}
        async with client.pipeline(transaction=False) as pipe:
            for akey in with_job:
                pipe.hmget(job_key(found[akey][0], ids[akey]), list(_JOB_FIELDS))
            for akey in resumed:
                resume = Job(run_id, found[akey][0], found[akey][1], kind=RESUME)
                pipe.hget(job_key(found[akey][0], resume.job_id), "finishedOn")
            replies = await pipe.execute()
        jobs = {akey: [ids[akey], *reply] for akey, reply in zip(with_job, replies, strict=False)}
        resumed_at = {
            akey: _ms(reply) for akey, reply in zip(resumed, replies[len(with_job) :], strict=True)
        }

    # A skipped or blocked activation never had a job: once this run's jobs are known to be
    # kept, a completed activation without one was skipped (in a loop, the output key alone
    # cannot tell a skipped iteration from one that ran).
    jobs_kept = any(reply[1] is not None for reply in jobs.values())
    activations: list[Activation] = []
    for akey, (node_id, iteration, state) in found.items():
        job = jobs.get(akey)
        if state == "done" and jobs_kept and (job is None or job[1] is None):
            state = "skipped"
        error = failures.get(akey)
        attempts = int(error.get("attempts") or 0) if error else 0
        enqueued = started = ended = None
        job_id = failure = None
        if job is not None and job[1] is not None:
            job_id = job[0]
            enqueued, started, ended = (_ms(v) for v in job[1:4])
            ended = resumed_at.get(akey) or ended
            attempts = max(attempts, int(_float(job[4]) or 0), int(_float(job[5]) or 0))
            failure = job[6]
            if state == "queued" and started is not None and ended is None:
                state = "running"
        if attempts == 0 and state in ("done", "failed", "running"):
            attempts = 1
        activations.append(
            Activation(
                akey=akey,
                node_id=node_id,
                iteration=iteration,
                state=state,
                job_id=job_id,
                enqueued_at=enqueued,
                started_at=started,
                finished_at=ended,
                attempts=attempts,
                error=error,
                job_failure=failure,
            )
        )
    activations.sort(
        key=lambda a: (a.enqueued_at if a.enqueued_at is not None else float("inf"), a.akey)
    )
    return RunInspection(
        summary=summary,
        pin=str(meta[-1] or ""),
        context=context,
        errors=errors,
        waiting=waiting,
        activations=activations,
        buffered_resumes=int(buffered or 0),
        expires_in_s=pttl / 1000.0 if isinstance(pttl, int) and pttl >= 0 else None,
        node_states=node_states(activations),
    )


def _stand_ins(
    bp: Blueprint | None,
    found: Mapping[str, tuple[str, tuple[int, ...], str]],
    context: Mapping[str, Any],
) -> dict[str, tuple[str, str]]:
    """akey -> (fallback node, the akey of the node it stood in for), for fallback nodes
    (`config.fallback` naming a node) that ran in a done activation and have none of their
    own. Needs the blueprint; without it such a node reads as not reached."""
    if bp is None:
        return {}
    fallbacks = {n.id: n.config.fallback for n in bp.nodes if n.config.fallback is not None}
    ids = {n.id for n in bp.nodes}
    seen = {node_id for node_id, _, _ in found.values()}
    stood: dict[str, tuple[str, str]] = {}
    for akey, (node_id, iteration, state) in found.items():
        fallback = fallbacks.get(node_id)
        if state != "done" or fallback not in ids or fallback in seen:
            continue
        assert fallback is not None
        output = context.get(OUTPUTS_PREFIX + fallback, _ABSENT)
        if output is not _ABSENT and output == context.get(OUTPUTS_PREFIX + node_id, _ABSENT):
            stood[make_akey(fallback, iteration)] = (fallback, akey)
    return stood


_ABSENT: Final = object()


def _ms(value: Any) -> float | None:
    number = _float(value)
    return number / 1000.0 if number else None


def node_states(activations: Iterable[Activation]) -> dict[str, str]:
    """Each node's worst activation state (`STATES` order)."""
    rank = {state: i for i, state in enumerate(STATES)}
    states: dict[str, str] = {}
    for activation in activations:
        current = states.get(activation.node_id)
        if current is None or rank.get(activation.state, 99) < rank.get(current, 99):
            states[activation.node_id] = activation.state
    return states


def waiting_nodes(inspection: RunInspection) -> list[str]:
    """Node ids with a waiting activation, without repeats, in activation order."""
    seen: dict[str, None] = {}
    for activation in inspection.activations:
        if activation.state == "waiting":
            seen.setdefault(activation.node_id, None)
    return list(seen)


def context_without_outputs(context: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in context.items() if not k.startswith(OUTPUTS_PREFIX)}


__all__ = [
    "NOT_REACHED",
    "STATES",
    "Activation",
    "RunInspection",
    "RunSummary",
    "context_without_outputs",
    "inspect_run",
    "list_runs",
    "node_states",
    "waiting_nodes",
]
