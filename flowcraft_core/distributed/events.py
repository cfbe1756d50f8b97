"""Named events in a distributed run (docs/events.md): `send_event` resumes the run's wait
node that waits on the event, or keeps the event in the run's buffered resumes (SPEC 9.7) for
that node, which takes it when it starts waiting."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..runtime.named_events import event_nodes, pick
from . import durable
from .protocol import split_akey

if TYPE_CHECKING:
    from .worker import DistributedWorker


async def send_event(worker: DistributedWorker, run_id: str, name: str, payload: Any) -> str:
    """`"resumed"` or `"buffered"`; RunNotAwaitingError for a finished run, ValueError when no
    wait node of the run's blueprint waits on `name`."""
    store = worker.store
    bp = await durable.run_blueprint(worker, run_id)
    nodes = event_nodes(bp, name)
    _, _, _, waiting = await store.result(run_id)
    target = pick(nodes, [split_akey(key)[0] for key in waiting])
    return await durable.resume(worker, run_id, node_id=target, output=payload, action=None)


__all__ = ["send_event"]
