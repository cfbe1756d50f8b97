"""The frontier of a run: what a reconciler needs to find lost work without re-deriving routing.

A coordination store keeps, per run, every entry that is *owed* a completion:

* ``ready``: an activation recorded ready (its job queued or running) and not completed yet;
* ``skip``: a successor that `complete` reported skipped or blocked, whose propagation (the
  pseudo-activation's own `complete`) has not been applied yet;
* ``loopend``: a loop entry that `complete` reported ended, whose loop-end transition has not
  been applied yet.

Each entry is keyed by the akey of the transition that settles it (the activation's akey, the
skipped node's akey, ``~end:<header>#<prefix>``), so one rule maintains it: `complete` removes
its own akey (the base akey for ``~wait``) and adds every follow-up it returns; `create_run`
adds the entry activations. A worker that dies after `complete` but before its follow-ups
leaves them here; `split` turns the frontier back into jobs to (re)enqueue and an `Applied` to
pass to `DistributedWorker.follow`, from the recorded state only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ..runtime.state import TAKEN
from .protocol import DEFAULT_ROUTE, Applied, Followup, Job, LoopEnd, Route, loop_instance_key

if TYPE_CHECKING:
    from ..runtime.plan import ExecutionPlan

#: Entry kinds.
READY: Final = "ready"
SKIP: Final = "skip"
LOOP_END: Final = "loopend"
KINDS: Final = frozenset({READY, SKIP, LOOP_END})


def loop_end_akey(header_id: str, prefix: Sequence[int]) -> str:
    """The akey of a loop end's transition (`transitions.loop_end`)."""
    return "~end:" + loop_instance_key(header_id, prefix)


@dataclass(frozen=True, slots=True)
class FrontierEntry:
    """One thing a run is owed. For a loop end, `node_id` is the header and `iteration` the
    loop entry's prefix."""

    kind: str
    akey: str
    node_id: str
    iteration: tuple[int, ...]
    #: skip entries: DEAD (skipped) or FAILED_RES (blocked); TAKEN otherwise.
    status: int = TAKEN
    loop_end: LoopEnd | None = None

    def followup(self) -> Followup:
        return Followup(self.akey, self.node_id, self.iteration, self.status)


def ready_entry(f: Followup) -> FrontierEntry:
    return FrontierEntry(READY, f.akey, f.node_id, tuple(f.iteration))


def entries_of(applied: Applied) -> list[FrontierEntry]:
    """The entries a freshly applied transition adds (its ready, skipped and loop-end
    follow-ups)."""
    out = [ready_entry(f) for f in applied.ready]
    out.extend(
        FrontierEntry(SKIP, f.akey, f.node_id, tuple(f.iteration), f.status)
        for f in applied.skipped
    )
    out.extend(
        FrontierEntry(
            LOOP_END,
            loop_end_akey(end.header_id, end.prefix),
            end.header_id,
            tuple(end.prefix),
            loop_end=end,
        )
        for end in applied.loop_ends
    )
    return out


def split(
    run_id: str,
    entries: Iterable[FrontierEntry],
    route: Route = DEFAULT_ROUTE,
    plan: ExecutionPlan | None = None,
) -> tuple[list[Job], Applied]:
    """(the jobs of the activations recorded ready, on their queues with the run's priority
    (`route`, node queues from `plan`), the propagations still to apply)."""
    jobs: list[Job] = []
    pending = Applied()
    for entry in entries:
        if entry.kind == READY:
            jobs.append(route.job(plan, run_id, entry.node_id, entry.iteration))
        elif entry.kind == SKIP:
            pending.skipped.append(entry.followup())
        elif entry.kind == LOOP_END and entry.loop_end is not None:
            pending.loop_ends.append(entry.loop_end)
        else:
            raise ValueError(f"malformed frontier entry {entry!r}")
    return jobs, pending


__all__ = [
    "KINDS",
    "LOOP_END",
    "READY",
    "SKIP",
    "FrontierEntry",
    "entries_of",
    "loop_end_akey",
    "ready_entry",
    "split",
]
