"""Named events (docs/events.md): a `wait` node with `params.event` waits for that event, and
sending the event resumes it with the payload as its output.

`params.event` is the wait built-in's own parameter (checked with its other params, in its JSON
Schema); `config.event`, the spelling issue 8 uses, means the same and is accepted on `wait`
nodes too (the loader refuses it elsewhere, or when it differs from `params.event`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import RunNotAwaitingError
from ..reserved import AWAITING_NODE_IDS, WAIT

if TYPE_CHECKING:
    from ..blueprint.model import Blueprint, NodeConfig
    from ..results import WorkflowResult
    from .runtime import FlowRuntime


def wait_event(params: Mapping[str, Any] | None, config: NodeConfig) -> str | None:
    """The named event a wait node waits for: `params.event`, or `config.event` (the same
    thing, in the spelling of issue 8; the loader refuses the two differing)."""
    event = (params or {}).get("event")
    return str(event) if event is not None else config.event


def event_nodes(bp: Blueprint, name: str) -> list[str]:
    """The wait nodes waiting on event `name`, in blueprint order; ValueError if none."""
    found = [n.id for n in bp.nodes if n.uses == WAIT and wait_event(n.params, n.config) == name]
    if not found:
        raise ValueError(f"no wait node of blueprint {bp.id!r} waits on event {name!r}")
    return found


def pick(nodes: Sequence[str], waiting: Sequence[str]) -> str:
    """The node an event goes to: the first one waiting now, else the first in blueprint order
    (a distributed run keeps the event for it until it waits)."""
    return next((node for node in nodes if node in waiting), nodes[0])


async def send_event(
    runtime: FlowRuntime,
    blueprint: Blueprint | Mapping[str, Any] | str,
    serialized_context: Mapping[str, Any] | str | bytes,
    name: str,
    payload: Any = None,
) -> WorkflowResult:
    """`FlowRuntime.send_event`: resume the awaiting run's node waiting on `name`.

    An in-process run has no store to keep an early event in: if no node waits on `name` now,
    this raises RunNotAwaitingError (send it again once the run awaits that event)."""
    bp = runtime.resolve_blueprint(blueprint)
    nodes = event_nodes(bp, name)
    if isinstance(serialized_context, (str, bytes)):
        data = runtime.serializer.deserialize(serialized_context)
    else:
        data = serialized_context
    awaiting = data.get(AWAITING_NODE_IDS) if isinstance(data, Mapping) else None
    waiting = [n for n in nodes if isinstance(awaiting, list) and n in awaiting]
    if not waiting:
        raise RunNotAwaitingError(
            f"no node is waiting on event {name!r} (waiting: {awaiting or []})",
            waiting=[str(n) for n in awaiting or []],
        )
    return await runtime.resume(bp, serialized_context, node_id=waiting[0], output=payload)


__all__ = ["event_nodes", "pick", "send_event"]
