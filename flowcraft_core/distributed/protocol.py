"""The technology-neutral protocol between workers and a coordination store.

Python computes every transition (routing, iteration arithmetic) with the code the in-process
engine uses; a store applies it atomically and idempotently (see docs/distributed-design.md).
Everything here is JSON data so a Lua script can apply it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..ids import activation_id

if TYPE_CHECKING:
    from ..runtime.plan import ExecutionPlan
    from .frontier import FrontierEntry

# Job kinds.
NODE = "node"
RESUME = "resume"
#: A durable sleep's delayed job (`<activation id>-~wake`, SPEC 9.3, 9.7).
WAKE = "wake"
#: A subflow child reached awaiting or a final status: `<activation id>-~child<seq>` tells the
#: parent activation (SPEC 9.7; `subflows.py`).
CHILD = "child"
#: A failed run's compensation job (`<runId>-~compensate`, docs/compensation.md).
COMPENSATE = "compensate"

# Activation outcomes a transition reports.
SUCCEEDED = "succeeded"
FAILED = "failed"
WAITING = "waiting"
#: A sleep node parked until its wake job (stays in flight; SPEC 9.7).
SLEEPING = "sleeping"
#: A subflow node parked on its child run (stays in flight; SPEC 9.7).
PARKED = "parked"
SKIPPED = "skipped"
BLOCKED = "blocked"
LOOP_END = "loopend"

# Run statuses in the store.
RUNNING = "running"
#: A failed run whose compensations have not all run yet: live, but runs no node.
COMPENSATING = "compensating"
#: A paused run (docs/run-control.md): in-flight nodes finish, nothing new starts.
PAUSED = "paused"
FINISHED_STATUSES = frozenset({"completed", "failed", "cancelled", "stalled"})


def iteration_text(iteration: Sequence[int]) -> str:
    return ".".join(map(str, iteration)) if iteration else ""


def akey(node_id: str, iteration: Sequence[int]) -> str:
    """Activation key `<nodeId>@<i.j>`; unique per (node, iteration), readable from the right."""
    return f"{node_id}@{iteration_text(iteration)}"


def split_akey(key: str) -> tuple[str, tuple[int, ...]]:
    """(node id, iteration) of an akey `<nodeId>@<i.j>`: the inverse of `akey`."""
    node_id, _, text = key.rpartition("@")
    return node_id, tuple(int(i) for i in text.split(".")) if text else ()


def waiting_base(key: str) -> str:
    """The activation akey of a waiting transition's akey (`<akey>~wait`, or
    `<akey>~wait~<episode>` for a subflow node waiting on its child)."""
    head, mark, tail = key.rpartition("~wait")
    if mark and (not tail or (tail[:1] == "~" and tail[1:].isdigit())):
        return head
    return key


def loop_instance_key(header_id: str, prefix: Sequence[int]) -> str:
    """One entry of a loop (its exits are resolved when it ends)."""
    return f"{header_id}#{iteration_text(prefix)}"


#: Tracing's hook (flowcraft_core.tracing), None while tracing is off: called with each new
#: job's run id and the trace context it was read with; returns the context the job carries,
#: so every job of a traced run carries the run's trace across processes (SPEC 9, issue 9).
job_trace_hook: Callable[[str, Mapping[str, str] | None], Mapping[str, str] | None] | None = None


@dataclass(frozen=True, slots=True)
class Job:
    """One queue job: an activation to run (or a resume to apply)."""

    run_id: str
    node_id: str
    iteration: tuple[int, ...]
    kind: str = NODE
    seq: int = 0
    #: Run no earlier than this many ms after it is added (a wake job); not part of the data.
    delay_ms: int = 0
    #: The run's W3C trace context (`traceparent`), only while tracing is on.
    trace: Mapping[str, str] | None = field(default=None, compare=False)
    #: Where and in which order it is taken (scheduling.Route.job): the queue (None: the
    #: default one) and the run's priority (0: none). Not part of the data.
    queue: str | None = field(default=None, compare=False)
    priority: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if job_trace_hook is not None:
            object.__setattr__(self, "trace", job_trace_hook(self.run_id, self.trace))

    @property
    def job_id(self) -> str:
        if self.kind == COMPENSATE:  # one per run: not an activation
            return f"{self.run_id}-~{COMPENSATE}"
        base = activation_id(self.run_id, self.node_id, self.iteration)
        if self.kind == NODE:
            return base
        return f"{base}-~{self.kind}" if self.kind == WAKE else f"{base}-~{self.kind}{self.seq}"

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "runId": self.run_id,
            "nodeId": self.node_id,
            "iteration": list(self.iteration),
            "kind": self.kind,
            "seq": self.seq,
        }
        if self.trace:
            data["trace"] = dict(self.trace)
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Job:
        return cls(
            run_id=str(data["runId"]),
            node_id=str(data["nodeId"]),
            iteration=tuple(int(i) for i in data.get("iteration") or ()),
            kind=str(data.get("kind", NODE)),
            seq=int(data.get("seq", 0)),
            trace=_trace(data.get("trace")),
        )


@dataclass(frozen=True, slots=True)
class Route:
    """A run's scheduling, recorded when it starts (docs/scheduling.md): its default queue
    (None: the adapter's) and its priority (0: none; else 1 is the highest)."""

    queue: str | None = None
    priority: int = 0
    #: Some node of the run's blueprint has its own queue: re-enqueueing its jobs needs the
    #: blueprint (the reconciler refuses to guess).
    routed: bool = False

    def job(
        self,
        plan: ExecutionPlan | None,
        run_id: str,
        node_id: str,
        iteration: tuple[int, ...],
        *,
        kind: str = NODE,
        seq: int = 0,
        delay_ms: int = 0,
    ) -> Job:
        """A job of this run for `node_id`: on the node's `config.queue`, else the run's."""
        return Job(
            run_id,
            node_id,
            iteration,
            kind=kind,
            seq=seq,
            delay_ms=delay_ms,
            queue=node_queue(plan, node_id) or self.queue,
            priority=self.priority,
        )


#: A run started without scheduling options (and runs recorded before they existed).
DEFAULT_ROUTE = Route()


def node_queue(plan: ExecutionPlan | None, node_id: str) -> str | None:
    """The node's `config.queue` (None without a plan, or for a node the plan lacks); a batch
    item (`<scatterId>[<i>]`) goes where its scatter node's jobs go."""
    if plan is None:
        return None
    index = plan.by_id.get(node_id)
    if index is None and node_id.endswith("]"):
        index = plan.by_id.get(node_id.rpartition("[")[0])
    return None if index is None else plan.nodes[index].config.queue


def _trace(value: Any) -> dict[str, str] | None:
    """A job's trace context, if it is a flat string mapping (anything else is dropped)."""
    if value is None or not isinstance(value, Mapping):  # None: every job while tracing is off
        return None
    return {str(k): v for k, v in value.items() if isinstance(v, str)} or None


@dataclass(slots=True)
class Resolution:
    """One predecessor's resolution recorded in a target activation's join."""

    target: str  # akey of the target activation
    node_id: str
    iteration: tuple[int, ...]
    pred: str
    status: int  # TAKEN / DEAD / FAILED_RES
    value: Any
    #: Number of distinct forward predecessors; 0 = untracked (decided by this resolution).
    expected: int
    join_any: bool
    #: Unreachable predecessors that count as dead from the start.
    dead: tuple[str, ...] = ()
    #: Loop counters the target opens when first seen.
    open: tuple[str, ...] = ()
    #: A gather: the akey of its scatter, whose batch must end before it is ready (SPEC 5.1).
    gate: str | None = None


@dataclass(slots=True)
class NextIteration:
    back_key: str  # the iteration whose back edge was taken (once per iteration)
    target: str
    pred: str
    node_id: str
    iteration: tuple[int, ...]
    value: Any
    open: tuple[str, ...] = ()


@dataclass(slots=True)
class Close:
    counter: str
    header_id: str
    prefix: tuple[int, ...]


@dataclass(slots=True)
class BatchOpen:
    """A scatter's batch, recorded with the scatter's completion (SPEC 5.1, 9.7): the store
    keeps its items and counts, and starts the first `chunk` items (all when None)."""

    key: str  # the scatter's akey
    scatter_id: str
    iteration: tuple[int, ...]
    items: list[Any]
    chunk: int | None
    #: Where the gather's job reads the results: akey(gather id, the scatter's iteration).
    gather: str


@dataclass(slots=True)
class ItemEnd:
    """An item activation `<scatter>[<i>]` ended; its transition's `output` is its slot and an
    `error` fails the batch (the store counts only the first one in the run's errors)."""

    key: str  # the scatter's akey
    index: int
    #: It failed (collected or not): operators see it failed (flowcraft_bullmq.inspection).
    failed: bool = False


@dataclass(slots=True)
class Transition:
    """What one activation's end changes; applied atomically, at most once per `akey`."""

    akey: str
    node_id: str
    iteration: tuple[int, ...]
    outcome: str
    output: Any = None
    output_keys: tuple[str, ...] = ()
    ops: list[tuple[str, Any, bool]] = field(default_factory=list)  # (key, value, deleted)
    error: dict[str, Any] | None = None
    waiting: dict[str, Any] | None = None
    resolutions: list[Resolution] = field(default_factory=list)
    next: list[NextIteration] = field(default_factory=list)
    exits: list[tuple[str, int]] = field(default_factory=list)
    close: list[Close] = field(default_factory=list)
    #: A sleeping activation: (wakeAt in epoch ms, its input); it stays in flight.
    sleep: tuple[float, Any] | None = None
    #: A scatter that opens its batch; an item that ends (SPEC 5.1).
    batch: BatchOpen | None = None
    item: ItemEnd | None = None
    #: A subflow activation parks on its child run (`subflows.py`): the child record
    #: {"runId", "blueprintId", "context"}; it stays in flight.
    child: dict[str, Any] | None = None
    #: A subflow activation's transition driven by its child at this child episode: a wait
    #: (ignored once the activation completed, or waits at this episode or a later one;
    #: replaces an older wait) or the completion of an activation that may wait (not in
    #: flight then: the run becomes running again).
    episode: int | None = None
    #: A completion of a node naming `config.compensate`: the store records it (in completion
    #: order, with the output) so a failed run can be compensated.
    compensable: bool = False


@dataclass(slots=True)
class Followup:
    akey: str
    node_id: str
    iteration: tuple[int, ...]
    status: int = 0  # for skipped entries: DEAD (skipped) or FAILED_RES (blocked)


@dataclass(slots=True)
class LoopEnd:
    header_id: str
    prefix: tuple[int, ...]
    delivered: tuple[int, ...]  # exit edge indices taken or failed in this loop entry
    #: Outer counters the ending activation had not released yet: the loop-end transition
    #: releases them after its dead exits are recorded (RunState.close's order).
    rest: tuple[Close, ...] = ()


@dataclass(slots=True)
class Applied:
    """The store's answer to a transition; recorded so redelivery replays it."""

    ready: list[Followup] = field(default_factory=list)
    skipped: list[Followup] = field(default_factory=list)
    loop_ends: list[LoopEnd] = field(default_factory=list)
    finished: str | None = None
    replay: bool = False
    ignored: bool = False  # the run had already finished (e.g. cancelled)
    #: A waiting transition took a buffered resume: (output, action) completes it at once.
    taken: tuple[Any, str | None] | None = None


@dataclass(slots=True)
class Loaded:
    """What a worker needs before running an activation (one round trip)."""

    status: str
    blueprint_id: str
    pin: str
    done: Applied | None
    #: pred node id -> (status, value) for this activation's join; "~fired" names an any-join's
    #: firing predecessor.
    join: dict[str, tuple[int, Any]]
    fired: str | None
    values: dict[str, Any]
    waiting: bool = False
    #: The activation sleeps: (wakeAt in epoch ms, its input).
    sleeping: tuple[float, Any] | None = None
    #: The activation was claimed by a resume: (output, action) for its resume job.
    claimed: tuple[Any, str | None] | None = None
    #: A batch item: (its item,); a gather: (the item results in order,); else None.
    batch_input: tuple[Any] | None = None
    #: A subflow activation parked on its child run: the child record (Transition.child).
    child: dict[str, Any] | None = None
    #: The run is a subflow child: (parent run id, node id, iteration).
    parent: tuple[str, str, tuple[int, ...]] | None = None
    #: How many times the run went from awaiting back to running (child notifications).
    episode: int = 0
    #: The run's default queue and priority, recorded at its start (scheduling.Route).
    route: Route = DEFAULT_ROUTE


class CoordinationStore(Protocol):
    """Per-run state shared by workers: context, joins, counters, status."""

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
        """`route` is recorded for `load`; `start_at` (epoch s, a delayed start) is the run's
        wakeAt, so the reconciler does not think it stalled before its entry jobs run."""

    async def load(self, run_id: str, akey: str, keys: Sequence[str] | None) -> Loaded: ...

    async def complete(self, run_id: str, transition: Transition) -> Applied: ...

    async def get(self, run_id: str, key: str) -> Any: ...

    async def snapshot(self, run_id: str) -> dict[str, Any]: ...

    async def commit(self, run_id: str, ops: Sequence[tuple[str, Any, bool]]) -> None: ...

    async def status(self, run_id: str) -> str: ...

    async def result(
        self, run_id: str
    ) -> tuple[str, dict[str, Any], list[dict[str, Any]], dict[str, dict[str, Any]]]: ...

    async def resume_waiting(
        self, run_id: str, akey: str, output: Any = None, action: str | None = None
    ) -> bool: ...

    async def buffer_resume(
        self, run_id: str, node_id: str | None, output: Any, action: str | None
    ) -> str: ...

    async def rearm(self, run_id: str, akey: str, episode: int) -> bool: ...

    async def frontier(self, run_id: str) -> list[FrontierEntry]: ...

    async def cancel(self, run_id: str) -> bool: ...

    async def fail_run(self, run_id: str, error: dict[str, Any]) -> None: ...


class JobQueue(Protocol):
    """Where ready activations go; deduplicates by job id."""

    async def add_bulk(self, jobs: Sequence[Job]) -> None: ...


__all__ = [
    "BLOCKED",
    "CHILD",
    "COMPENSATE",
    "COMPENSATING",
    "DEFAULT_ROUTE",
    "FAILED",
    "LOOP_END",
    "NODE",
    "PARKED",
    "PAUSED",
    "RESUME",
    "RUNNING",
    "SKIPPED",
    "SLEEPING",
    "SUCCEEDED",
    "WAITING",
    "WAKE",
    "Applied",
    "BatchOpen",
    "Close",
    "CoordinationStore",
    "Followup",
    "ItemEnd",
    "Job",
    "JobQueue",
    "Loaded",
    "LoopEnd",
    "NextIteration",
    "Resolution",
    "Route",
    "Transition",
    "akey",
    "loop_instance_key",
    "node_queue",
    "split_akey",
    "waiting_base",
]
