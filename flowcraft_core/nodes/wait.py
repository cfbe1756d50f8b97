"""`wait` and `webhook`: activations held open until a resume completes them (SPEC 5.4, 5.5)."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from ..runtime.executor import WAITING, AttemptSpec, Outcome
from ..runtime.named_events import wait_event

if TYPE_CHECKING:
    from ..runtime.engine import Engine
    from ..runtime.plan import NodePlan


async def wait_node(engine: Engine, node: NodePlan, spec: AttemptSpec) -> Outcome:
    event = wait_event(node.params, node.config)  # a named event (docs/events.md)
    if event is not None:
        return Outcome(WAITING, details={"reason": "event", "event": event}, attempts=1)
    return Outcome(WAITING, details={"reason": "external_event"}, attempts=1)


async def webhook_details(registrar: Any, run_id: str, node_id: str) -> dict[str, Any]:
    """Ask the registrar (sync or async) for `{url, event}`; defaults without one."""
    url: Any = None
    event = f"webhook:{run_id}:{node_id}"
    if registrar is not None:
        info = registrar(run_id, node_id)
        if inspect.isawaitable(info):
            info = await info
        if isinstance(info, dict):
            url = info.get("url", url)
            event = info.get("event", event)
        elif isinstance(info, str):
            url = info
    return {"reason": "webhook", "url": url, "event": event}


async def webhook_node(engine: Engine, node: NodePlan, spec: AttemptSpec) -> Outcome:
    registrar = getattr(engine.runtime, "webhook_registrar", None)
    details = await webhook_details(registrar, engine.run_id, node.id)
    return Outcome(WAITING, details=details, attempts=1)


__all__ = ["wait_node", "webhook_details", "webhook_node"]
