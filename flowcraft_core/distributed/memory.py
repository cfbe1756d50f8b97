"""In-memory coordination store and job queue: the reference semantics of the protocol.

`InMemoryCoordinationStore.complete` is what the Redis Lua script must do, step for step;
the protocol tests run against this twin first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..context import MISSING
from ..errors import RunNotFoundError
from ..runtime.batches import item_node_id
from ..runtime.state import DEAD, FAILED_RES, TAKEN
from .control import Rewind, plan_rewind, rewound_join
from .frontier import FrontierEntry, entries_of, ready_entry
from .protocol import (
    COMPENSATING,
    DEFAULT_ROUTE,
    FINISHED_STATUSES,
    PAUSED,
    RUNNING,
    Applied,
    BatchOpen,
    Followup,
    Job,
    Loaded,
    LoopEnd,
    Resolution,
    Route,
    Transition,
    akey,
    loop_instance_key,
    split_akey,
    waiting_base,
)


@dataclass(slots=True)
class _Batch:
    """One scatter's batch (SPEC 5.1): which items started and ended, and a parked gather."""

    scatter_id: str
    iteration: tuple[int, ...]
    results: list[Any]
    chunk: int | None
    gather: str
    next: int = 0
    running: int = 0
    ended: int = 0
    failed: bool = False
    #: The gather, once its join fired, while items are still in flight.
    parked: Followup | None = None

    @property
    def done(self) -> bool:
        return self.running == 0 if self.failed else self.ended == len(self.results)


@dataclass(slots=True)
class _Run:
    blueprint_id: str
    pin: str
    context: dict[str, Any]
    status: str = RUNNING
    in_flight: int = 0
    progress_at: float = 0.0
    errors: list[dict[str, Any]] = field(default_factory=list)
    acts: dict[str, Applied] = field(default_factory=dict)
    joins: dict[str, dict[str, tuple[int, Any]]] = field(default_factory=dict)
    fired: dict[str, str] = field(default_factory=dict)
    decided: set[str] = field(default_factory=set)
    live: dict[str, int] = field(default_factory=dict)
    back_taken: set[str] = field(default_factory=set)
    exits: dict[str, set[int]] = field(default_factory=dict)
    waiting: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Waiting activations claimed by a resume -> (output, action) for the resume job.
    claimed: dict[str, tuple[Any, str | None]] = field(default_factory=dict)
    #: Sleeping activations -> (wakeAt in epoch ms, input); kept after the wake.
    sleeping: dict[str, tuple[float, Any]] = field(default_factory=dict)
    wake_at: float = 0.0  # the latest wakeAt, epoch seconds (meta `wakeAt`)
    #: Buffered resumes, oldest first: (node id or None, output, action); dropped at the end.
    buffered: list[tuple[str | None, Any, str | None]] = field(default_factory=list)
    #: akey -> what the run is owed (flowcraft_core.distributed.frontier).
    frontier: dict[str, FrontierEntry] = field(default_factory=dict)
    #: Batches by their scatter's akey; an item's item and a gather's results by akey.
    batches: dict[str, _Batch] = field(default_factory=dict)
    batch_input: dict[str, tuple[Any]] = field(default_factory=dict)
    #: A subflow child: (parent run id, node id, iteration).
    parent: tuple[str, str, tuple[int, ...]] | None = None
    #: How many times the run went from awaiting back to running.
    episode: int = 0
    #: Subflow activations parked on a child -> the child record; kept after they end.
    children: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Subflow activations -> the child episode of their latest wait.
    wait_episode: dict[str, int] = field(default_factory=dict)
    #: The run's default queue and priority (meta `queue`, `priority`).
    route: Route = DEFAULT_ROUTE
    #: Completions of nodes naming a compensation, in order: [node id, iteration, output].
    completions: list[Any] = field(default_factory=list)
    #: Compensations done, by completion number (1-based): None (done) or the error record.
    compensated: dict[int, Any] = field(default_factory=dict)
    #: Run options and links (meta fields): noCompensate, initialContext, restartedFrom...
    options: dict[str, str] = field(default_factory=dict)
    #: Resolutions that reached an already decided join: target -> pred -> (status, value).
    late: dict[str, dict[str, tuple[int, Any]]] = field(default_factory=dict)


def decide(
    record: Mapping[str, tuple[int, Any]], expected: int, join_any: bool, new_status: int
) -> int | None:
    """The join rule of SPEC 3.4 after `new_status` was added: TAKEN (ready), DEAD (skipped),
    FAILED_RES (blocked) or None (still pending)."""
    if join_any and new_status == TAKEN:
        return TAKEN
    if new_status == FAILED_RES:
        return FAILED_RES
    if len(record) < expected:
        return None
    if any(status == TAKEN for status, _ in record.values()):
        return TAKEN
    return DEAD


class InMemoryCoordinationStore:
    def __init__(self) -> None:
        self.runs: dict[str, _Run] = {}

    def _run(self, run_id: str) -> _Run:
        try:
            return self.runs[run_id]
        except KeyError:
            raise RunNotFoundError(run_id) from None

    async def create_run(
        self,
        run_id: str,
        *,
        blueprint_id: str,
        pin: str,
        context: Mapping[str, Any],
        entries: Sequence[Followup],
        counters: Sequence[str] = (),
        parent: tuple[str, str, tuple[int, ...]] | None = None,
        route: Route = DEFAULT_ROUTE,
        start_at: float | None = None,
    ) -> None:
        if run_id in self.runs:
            raise ValueError(f"run {run_id!r} already exists")
        run = _Run(
            blueprint_id=blueprint_id, pin=pin, context=dict(context), parent=parent, route=route
        )
        run.in_flight = len(entries)
        run.progress_at = time.time()
        if start_at is not None:  # a delayed start is not a stall
            run.wake_at = start_at
        run.frontier = {e.akey: ready_entry(e) for e in entries}
        self._open(run, counters)
        self.runs[run_id] = run
        if not entries:
            run.status = "completed"

    async def load(self, run_id: str, akey: str, keys: Sequence[str] | None) -> Loaded:
        run = self._run(run_id)
        ctx = run.context
        values = dict(ctx) if keys is None else {k: ctx[k] for k in keys if k in ctx}
        return Loaded(
            status=run.status,
            blueprint_id=run.blueprint_id,
            pin=run.pin,
            done=run.acts.get(akey),
            join=dict(run.joins.get(akey, {})),
            fired=run.fired.get(akey),
            values=values,
            waiting=akey in run.waiting,
            sleeping=run.sleeping.get(akey),
            claimed=run.claimed.get(akey),
            batch_input=run.batch_input.get(akey),
            child=run.children.get(akey),
            parent=run.parent,
            episode=run.episode,
            route=run.route,
        )

    async def complete(self, run_id: str, t: Transition) -> Applied:
        run = self._run(run_id)
        if run.status in FINISHED_STATUSES or run.status == COMPENSATING:
            return Applied(ignored=True, finished=run.status)
        recorded = run.acts.get(t.akey)
        if recorded is not None:
            return Applied(
                ready=recorded.ready,
                skipped=recorded.skipped,
                loop_ends=recorded.loop_ends,
                finished=recorded.finished,
                replay=True,
                taken=recorded.taken,
            )
        base = waiting_base(t.akey)
        # A subflow activation driven by its child: it may wait (not in flight) already.
        was_waiting = t.episode is not None and base in run.waiting
        if t.episode is not None and t.waiting is not None:
            if base in run.acts or (was_waiting and run.wait_episode[base] >= t.episode):
                # Completed, or waiting at this episode already.
                return Applied(ignored=True, finished=run.status)
            run.wait_episode[base] = t.episode
        ctx = run.context
        for key, value, deleted in t.ops:
            if deleted:
                ctx.pop(key, None)
            else:
                ctx[key] = value
        for key in t.output_keys:
            ctx[key] = t.output
        if t.error is not None and t.item is None:
            run.errors.append(t.error)
        if t.compensable:
            run.completions.append([t.node_id, list(t.iteration), t.output])
        # A wait that starts takes a buffered resume, if one matches, instead of waiting
        # (a subflow's wait does not: resumes naming it go to its child).
        taken = (
            self._take_buffered(run, t.node_id)
            if t.waiting is not None and t.episode is None
            else None
        )
        if t.waiting is not None and taken is None:
            run.waiting[base] = t.waiting
        else:
            run.waiting.pop(base, None)
        if t.sleep is not None:
            run.sleeping[base.removesuffix("~sleep")] = t.sleep
            run.wake_at = max(run.wake_at, t.sleep[0] / 1000.0)
        if t.child is not None:
            run.children[base.removesuffix("~child")] = t.child
        if was_waiting and t.waiting is None:  # a waiting subflow completes: running again
            self._wake(run)
        applied = Applied(taken=taken)
        if t.batch is not None:
            self._open_batch(run, t.batch, applied)
        if t.item is not None:
            self._end_item(run, t, applied)
        for r in t.resolutions:
            record = run.joins.get(r.target)
            if r.expected == 0:
                # One predecessor: this resolution decides the activation.
                if r.target in run.decided:
                    continue
                run.decided.add(r.target)
                self._open(run, r.open)
                run.joins[r.target] = {r.pred: (r.status, r.value)}
                outcome: int = r.status
            else:
                if r.target in run.decided:  # kept aside for retry (control.plan_rewind)
                    run.late.setdefault(r.target, {}).setdefault(r.pred, (r.status, r.value))
                    continue
                if record is None:
                    record = run.joins[r.target] = dict.fromkeys(r.dead, (DEAD, None))
                    self._open(run, r.open)
                if r.pred in record:
                    continue
                record[r.pred] = (r.status, r.value)
                decision = decide(record, r.expected, r.join_any, r.status)
                if decision is None:
                    continue
                outcome = decision
                run.decided.add(r.target)
                if outcome == TAKEN and r.join_any:
                    run.fired[r.target] = r.pred
            if outcome == TAKEN and r.gate is not None:
                gated = self._gate(run, r)
                if gated is None:
                    continue  # parked until its batch ends
                outcome = gated
            entry = Followup(r.target, r.node_id, r.iteration, outcome)
            (applied.ready if outcome == TAKEN else applied.skipped).append(entry)
        for n in t.next:
            if n.back_key in run.back_taken:
                continue
            run.back_taken.add(n.back_key)
            self._open(run, n.open)
            run.joins[n.target] = {n.pred: (TAKEN, n.value)}
            run.decided.add(n.target)
            applied.ready.append(Followup(n.target, n.node_id, n.iteration, TAKEN))
        for instance, edge_index in t.exits:
            run.exits.setdefault(instance, set()).add(edge_index)
        for position, c in enumerate(t.close):
            left = run.live[c.counter] - 1
            if left:
                run.live[c.counter] = left
                continue
            del run.live[c.counter]
            if c.counter in run.back_taken:
                run.back_taken.discard(c.counter)
                continue
            instance = loop_instance_key(c.header_id, c.prefix)
            delivered = tuple(sorted(run.exits.pop(instance, set())))
            rest = tuple(t.close[position + 1 :])
            applied.loop_ends.append(LoopEnd(c.header_id, c.prefix, delivered, rest))
            break
        if taken is None:  # a wait that took a buffered resume is still owed its completion
            run.frontier.pop(base, None)
        run.frontier.update((entry.akey, entry) for entry in entries_of(applied))
        # A sleeping or parked activation, or a wait that took a buffered resume, stays in
        # flight; a subflow activation that waited was not in flight.
        stays = t.sleep is not None or t.child is not None or taken is not None
        ended = 0 if stays or was_waiting else 1
        run.in_flight += len(applied.ready) + len(applied.skipped) + len(applied.loop_ends) - ended
        run.progress_at = time.time()
        if run.in_flight == 0:
            final = self._final_status(run)
            if final == "failed" and run.completions and "noCompensate" not in run.options:
                final = COMPENSATING  # the run fails once its compensations have run
            over = final in FINISHED_STATUSES or final == COMPENSATING
            if over or run.status != PAUSED:  # a paused run that awaits stays paused
                run.status = final
                applied.finished = final
            if over:
                run.buffered.clear()
        run.acts[t.akey] = applied
        return applied

    # ----------------------------------------------------------------- batches (SPEC 5.1)
    @classmethod
    def _open_batch(cls, run: _Run, b: BatchOpen, applied: Applied) -> None:
        batch = _Batch(b.scatter_id, b.iteration, [None] * len(b.items), b.chunk, b.gather)
        run.batches[b.key] = batch
        for index, item in enumerate(b.items):
            run.batch_input[akey(item_node_id(b.scatter_id, index), b.iteration)] = (item,)
        cls._start_items(batch, applied)
        cls._settle(run, batch, applied)

    @classmethod
    def _end_item(cls, run: _Run, t: Transition, applied: Applied) -> None:
        assert t.item is not None
        batch = run.batches[t.item.key]
        batch.running -= 1
        batch.ended += 1
        if t.error is None:
            batch.results[t.item.index] = t.output
        elif not batch.failed:  # the first failure fails the batch and the run
            batch.failed = True
            run.errors.append(t.error)
        cls._start_items(batch, applied)
        cls._settle(run, batch, applied)

    @staticmethod
    def _start_items(batch: _Batch, applied: Applied) -> None:
        """Start items up to the in-flight cap (none once the batch failed)."""
        while (
            not batch.failed
            and batch.next < len(batch.results)
            and (batch.chunk is None or batch.running < batch.chunk)
        ):
            node_id = item_node_id(batch.scatter_id, batch.next)
            iteration = batch.iteration
            applied.ready.append(Followup(akey(node_id, iteration), node_id, iteration))
            batch.next += 1
            batch.running += 1

    @staticmethod
    def _settle(run: _Run, batch: _Batch, applied: Applied) -> None:
        """A batch that ended: its results for the gather, and its parked gather released
        (ready, or blocked if an item failed)."""
        if not batch.done:
            return
        if not batch.failed:
            run.batch_input[batch.gather] = (list(batch.results),)
        parked, batch.parked = batch.parked, None
        if parked is None:
            return
        if batch.failed:
            parked.status = FAILED_RES
            applied.skipped.append(parked)
        else:
            applied.ready.append(parked)

    @staticmethod
    def _gate(run: _Run, r: Resolution) -> int | None:
        """A gather whose join fired: TAKEN (its batch ended, or it has none), FAILED_RES (the
        batch failed) or None (parked until the batch ends)."""
        batch = run.batches.get(r.gate or "")
        if batch is None:
            return TAKEN
        if not batch.done:
            batch.parked = Followup(r.target, r.node_id, r.iteration, TAKEN)
            return None
        return FAILED_RES if batch.failed else TAKEN

    @staticmethod
    def _owed(run: _Run, akey: str) -> None:
        """A waiting activation is owed its completion again (in the frontier)."""
        run.frontier[akey] = ready_entry(Followup(akey, *split_akey(akey)))

    @staticmethod
    def _wake(run: _Run) -> None:
        """The run has work in flight again: `running`, a new episode if it was awaiting. A
        paused run stays paused (its resume job runs on unpause)."""
        if run.status == "awaiting":
            run.episode += 1
        if run.status != PAUSED:
            run.status = RUNNING

    @staticmethod
    def _open(run: _Run, counters: Sequence[str]) -> None:
        for counter in counters:
            run.live[counter] = run.live.get(counter, 0) + 1

    @staticmethod
    def _take_buffered(run: _Run, node_id: str) -> tuple[Any, str | None] | None:
        """Remove and return the oldest buffered resume naming `node_id`, else the oldest
        naming no node (SPEC 9.7)."""
        chosen = next((i for i, b in enumerate(run.buffered) if b[0] == node_id), None)
        if chosen is None:
            chosen = next((i for i, b in enumerate(run.buffered) if b[0] is None), None)
        if chosen is None:
            return None
        _, output, action = run.buffered.pop(chosen)
        return output, action

    @staticmethod
    def _final_status(run: _Run) -> str:
        if run.errors:
            return "failed"
        if run.waiting:
            return "awaiting"
        if any(key not in run.decided for key in run.joins):
            return "stalled"
        return "completed"

    async def get(self, run_id: str, key: str) -> Any:
        return self._run(run_id).context.get(key, MISSING)

    async def snapshot(self, run_id: str) -> dict[str, Any]:
        return dict(self._run(run_id).context)

    async def commit(self, run_id: str, ops: Sequence[tuple[str, Any, bool]]) -> None:
        ctx = self._run(run_id).context
        for key, value, deleted in ops:
            if deleted:
                ctx.pop(key, None)
            else:
                ctx[key] = value

    async def status(self, run_id: str) -> str:
        return self._run(run_id).status

    async def result(
        self, run_id: str
    ) -> tuple[str, dict[str, Any], list[dict[str, Any]], dict[str, dict[str, Any]]]:
        """(status, context, errors, waiting activations by akey)."""
        run = self._run(run_id)
        return run.status, dict(run.context), list(run.errors), dict(run.waiting)

    async def cancel(self, run_id: str) -> bool:
        run = self._run(run_id)
        if run.status in FINISHED_STATUSES or run.status == COMPENSATING:
            return False
        run.status = "cancelled"
        run.buffered.clear()
        return True

    async def fail_run(self, run_id: str, error: dict[str, Any]) -> None:
        run = self._run(run_id)
        if run.status in FINISHED_STATUSES or run.status == COMPENSATING:
            return
        run.errors.append(error)
        run.status = "failed"
        run.buffered.clear()

    async def frontier(self, run_id: str) -> list[FrontierEntry]:
        """What the run is owed, by akey (flowcraft_core.distributed.frontier)."""
        return sorted(self._run(run_id).frontier.values(), key=lambda entry: entry.akey)

    async def resume_waiting(
        self, run_id: str, akey: str, output: Any = None, action: str | None = None
    ) -> bool:
        """Claim a waiting activation for a resume job (once), recording (output, action)."""
        run = self._run(run_id)
        if akey not in run.waiting or run.status in FINISHED_STATUSES or akey in run.claimed:
            return False
        if run.status == COMPENSATING:
            return False
        run.claimed[akey] = (output, action)  # a second resume of the same activation: False
        run.in_flight += 1
        self._wake(run)
        self._owed(run, akey)  # until its resume job completes it (a lost job is re-enqueued)
        return True

    async def rearm(self, run_id: str, akey: str, episode: int) -> bool:
        """A subflow activation that waits on its child since an episode before `episode`
        (the child's, now running) is in flight again; False if it does not wait (so, or
        since a later episode) or the run has finished."""
        run = self._run(run_id)
        if (
            run.status in FINISHED_STATUSES
            or run.status == COMPENSATING
            or akey not in run.waiting
            or run.wait_episode.get(akey, episode) >= episode
        ):
            return False
        del run.waiting[akey]
        run.in_flight += 1
        self._wake(run)
        self._owed(run, akey)
        return True

    async def buffer_resume(
        self, run_id: str, node_id: str | None, output: Any, action: str | None
    ) -> str:
        """Buffer a resume that matches no waiting activation (SPEC 9.7): "buffered";
        "finished" if the run has ended; "retry" if an unclaimed activation it matches is
        waiting now (claim that one instead)."""
        run = self._run(run_id)
        if run.status in FINISHED_STATUSES or run.status == COMPENSATING:
            return "finished"
        for key in run.waiting:
            if key not in run.claimed and (node_id is None or key.rpartition("@")[0] == node_id):
                return "retry"
        run.buffered.append((node_id, output, action))
        return "buffered"

    # ----------------------------------------------------------------- compensation
    async def compensation_items(self, run_id: str) -> tuple[list[Any], dict[int, Any]]:
        """(completions to compensate, oldest first: [node id, iteration, output]; the
        compensations done, by completion number from 1: [node id, error record or None])."""
        run = self._run(run_id)
        return list(run.completions), dict(run.compensated)

    async def record_compensation(
        self,
        run_id: str,
        index: int,
        node_id: str,
        ops: Sequence[tuple[str, Any, bool]],
        error: dict[str, Any] | None,
    ) -> bool:
        """Record compensation `index` done, with its context writes, at most once (False if
        it was recorded already or the run is not compensating)."""
        run = self._run(run_id)
        if run.status != COMPENSATING or index in run.compensated:
            return False
        self._apply(run, ops)
        run.compensated[index] = [node_id, error]
        run.progress_at = time.time()
        return True

    async def end_compensation(self, run_id: str) -> bool:
        """`compensating` -> `failed` (the run's final status); False if not compensating."""
        run = self._run(run_id)
        if run.status != COMPENSATING:
            return False
        run.status = "failed"
        return True

    # ----------------------------------------------------------------- run control
    async def set_options(self, run_id: str, options: Mapping[str, str]) -> None:
        """Run options and links kept with the run (meta fields in Redis)."""
        self._run(run_id).options.update(options)

    async def options(self, run_id: str) -> dict[str, str]:
        return dict(self._run(run_id).options)

    async def pause(self, run_id: str) -> bool:
        """`running` or `awaiting` -> `paused`; False otherwise."""
        run = self._run(run_id)
        if run.status not in (RUNNING, "awaiting"):
            return False
        run.status = PAUSED
        return True

    async def unpause(self, run_id: str) -> bool:
        """`paused` -> `running` (or `awaiting` if nothing is in flight and a node waits)."""
        run = self._run(run_id)
        if run.status != PAUSED:
            return False
        run.status = "awaiting" if run.in_flight == 0 and run.waiting else RUNNING
        run.progress_at = time.time()
        return True

    async def retry(self, run_id: str) -> Rewind:
        """Move a failed run back to `running` from its failed activations
        (flowcraft_core.distributed.control); ValueError if it cannot be retried."""
        run = self._run(run_id)
        if run.status != "failed":
            raise ValueError(f"run {run_id!r} is {run.status}: only a failed run can be retried")
        if run.compensated:
            raise ValueError(f"run {run_id!r} was compensated: restart it instead")
        rewind = plan_rewind(run.errors, run.acts.get)
        for root in rewind.roots:
            run.acts.pop(root.akey, None)
            run.frontier[root.akey] = ready_entry(root)
        for key in rewind.blocked:
            run.acts.pop(key, None)
            run.decided.discard(key)
            run.fired.pop(key, None)
            record = rewound_join(run.joins.get(key, {}), run.late.pop(key, {}), rewind.nodes)
            if record:
                run.joins[key] = record
            else:
                run.joins.pop(key, None)
        run.errors.clear()
        run.in_flight += len(rewind.roots)
        run.status = RUNNING
        run.progress_at = time.time()
        return rewind

    @staticmethod
    def _apply(run: _Run, ops: Sequence[tuple[str, Any, bool]]) -> None:
        for key, value, deleted in ops:
            if deleted:
                run.context.pop(key, None)
            else:
                run.context[key] = value


class InMemoryJobQueue:
    """An asyncio queue that deduplicates by job id, like BullMQ with custom job ids."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Job] = asyncio.Queue()
        self.seen: set[str] = set()
        self.added = 0
        self.delayed = 0  # delayed jobs not yet due

    async def add_bulk(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            if job.job_id in self.seen:
                continue
            self.seen.add(job.job_id)
            self.added += 1
            if job.delay_ms > 0:
                self.delayed += 1
                asyncio.get_running_loop().call_later(job.delay_ms / 1000.0, self._due, job)
            else:
                self.queue.put_nowait(job)

    def later(self, job: Job, delay_ms: int) -> None:
        """Deliver a job taken already once more, after `delay_ms` (a wake that came early)."""
        self.delayed += 1
        asyncio.get_running_loop().call_later(delay_ms / 1000.0, self._due, job)

    def _due(self, job: Job) -> None:
        self.delayed -= 1
        self.queue.put_nowait(job)


__all__ = ["InMemoryCoordinationStore", "InMemoryJobQueue", "decide"]
