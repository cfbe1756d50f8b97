"""`sleep`: pass the input through after a duration or at a time (SPEC 5.3).

In-process the run awaits the sleep (cancellable) and stays running; `wake_at_ms` is what the
distributed adapter records so no worker is held while a run sleeps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..blueprint.builtin_params import parse_duration_ms, parse_until
from ..results import NodeResult
from ..runtime.executor import SUCCEEDED, AttemptSpec, Outcome

if TYPE_CHECKING:
    from ..runtime.engine import Engine
    from ..runtime.plan import NodePlan


def wake_at_ms(params: Mapping[str, Any], now_ms: float) -> float:
    """Epoch milliseconds at which the sleep ends."""
    if "until" in params:
        return parse_until(params["until"]).timestamp() * 1000.0
    return now_ms + parse_duration_ms(params.get("duration", 0))


async def sleep_node(engine: Engine, node: NodePlan, spec: AttemptSpec) -> Outcome:
    remaining_ms = wake_at_ms(node.params, time.time() * 1000.0) - time.time() * 1000.0
    if remaining_ms > 0:
        await asyncio.sleep(remaining_ms / 1000.0)
    return Outcome(SUCCEEDED, result=NodeResult(output=spec.input), attempts=1)


__all__ = ["sleep_node", "wake_at_ms"]
