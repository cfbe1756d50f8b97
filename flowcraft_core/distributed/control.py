"""Retrying a failed distributed run from its failed nodes (docs/run-control.md).

`retry_run(run_id, from_failed=True)` keeps the **same run id** and moves it back to
`running`: every activation that succeeded keeps its recorded completion (its output and
context writes are in the context; it never runs again), and the failed activations, with
everything their failure blocked, are *rewound*:

* a failed activation is recorded ready again (owed: its job runs the node afresh);
* an activation its failure blocked becomes undecided again: its join record loses the
  blocked or failed predecessors' resolutions and gets back the resolutions of other
  predecessors that arrived after it was blocked (stores keep those aside, `late`), so the
  join decides again exactly as if the failure had not happened.

`plan_rewind` computes this from the recorded state only (the run's error records and the
`Applied` record of each rewound activation), so a store applies it atomically. Run-level
failures and failures inside loops are refused: restart the run instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..blueprint.model import Blueprint
from ..reserved import SUBFLOW
from ..runtime.state import FAILED_RES
from .protocol import Applied, Followup, akey


@dataclass(slots=True)
class Rewind:
    """What `retry` changes in a failed run's recorded state."""

    #: The failed activations, run again.
    roots: list[Followup] = field(default_factory=list)
    #: Activations their failure blocked (undecided again), in propagation order.
    blocked: list[str] = field(default_factory=list)
    #: The node ids of every rewound activation (their resolutions leave the join records).
    nodes: set[str] = field(default_factory=set)


def plan_rewind(
    errors: Sequence[Mapping[str, Any]], recorded: Callable[[str], Applied | None]
) -> Rewind:
    """The rewind of a failed run from its error records and its recorded completions
    (`recorded(akey)`). ValueError when the run cannot be retried from its failed nodes."""
    rewind = Rewind()
    if not errors:
        raise ValueError("the run has no failed node to retry")
    seen: set[str] = set()
    for error in errors:
        node_id = error.get("nodeId")
        if node_id is None:
            raise ValueError(
                f"the run failed as a whole ({error.get('type')}: {error.get('message')}): "
                "restart it instead"
            )
        iteration = tuple(int(i) for i in error.get("iteration") or ())
        key = akey(str(node_id), iteration)
        if key not in seen:
            seen.add(key)
            rewind.roots.append(Followup(key, str(node_id), iteration))
    todo = [root.akey for root in rewind.roots]
    while todo:
        current = todo.pop(0)
        applied = recorded(current)
        if applied is None:
            continue
        if applied.loop_ends or any(f.iteration for f in applied.skipped):
            raise ValueError("a failure inside a loop cannot be retried yet: restart the run")
        for f in applied.skipped:
            if f.status == FAILED_RES and f.akey not in seen:
                seen.add(f.akey)
                rewind.blocked.append(f.akey)
                todo.append(f.akey)
    for root in rewind.roots:
        if root.iteration:
            raise ValueError("a failure inside a loop cannot be retried yet: restart the run")
    rewind.nodes = {key.rpartition("@")[0] for key in seen}
    return rewind


def check_retryable(bp: Blueprint, errors: Sequence[Mapping[str, Any]]) -> None:
    """ValueError if a failed node is a subflow: its child run failed and is not rewound (a
    retried subflow activation would park on the same failed child again)."""
    uses = {node.id: node.uses for node in bp.nodes}
    for error in errors:
        node_id = error.get("nodeId")
        if node_id is not None and uses.get(str(node_id)) == SUBFLOW:
            raise ValueError(
                f"node {node_id!r} is a subflow: retrying it would not run its failed child "
                "again; restart the run instead"
            )


def rewound_join(
    record: Mapping[str, Any], late: Mapping[str, Any], nodes: set[str]
) -> dict[str, Any]:
    """A blocked activation's join record after the rewind: without the rewound
    predecessors' resolutions, with the late ones of the others."""
    out = {pred: value for pred, value in record.items() if pred not in nodes}
    for pred, value in late.items():
        if pred not in nodes:
            out.setdefault(pred, value)
    return out


__all__ = ["Rewind", "check_retryable", "plan_rewind", "rewound_join"]
