"""Where and in which order a distributed run's jobs are taken (docs/scheduling.md).

A run is started with a default queue and a priority, recorded with the run (so every worker,
the reconciler and a client resuming it put its jobs in the same place); a node's
`config.queue` overrides the queue for that node's jobs (its node, wake and resume jobs). None
of this changes what a run computes: in-process, queues and priorities have no effect.
"""

from __future__ import annotations

import math
from typing import Any, Final

from ..runtime.plan import ExecutionPlan
from .protocol import DEFAULT_ROUTE, Route, node_queue

#: BullMQ's priority range: 1 is the highest, 2**21 the lowest; 0 means "no priority", and
#: jobs without one are taken before every prioritized job.
MAX_PRIORITY: Final = 2_097_152
#: Ten years: BullMQ keeps a delayed job's due time in a sorted-set score that must stay exact.
MAX_DELAY_S: Final = 315_360_000


def check_priority(priority: Any) -> int:
    """`priority` as an int in [0, MAX_PRIORITY], else ValueError (bools are not numbers)."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ValueError(f"priority must be an int, not {priority!r}")
    if not 0 <= priority <= MAX_PRIORITY:
        raise ValueError(
            f"priority must be between 0 (none) and {MAX_PRIORITY} (lowest), not {priority}"
        )
    return priority


def check_delay(delay: Any) -> int:
    """A start delay in seconds as whole milliseconds (0 to MAX_DELAY_S), else ValueError."""
    if isinstance(delay, bool) or not isinstance(delay, int | float):
        raise ValueError(f"delay must be a number of seconds, not {delay!r}")
    if not (math.isfinite(delay) and 0 <= delay <= MAX_DELAY_S):
        raise ValueError(f"delay must be between 0 and {MAX_DELAY_S} seconds, not {delay!r}")
    return math.ceil(delay * 1000)


def check_queue_name(name: Any) -> str:
    """A queue name: non-empty, at most 200 characters, no ':' and no control characters."""
    if (
        not isinstance(name, str)
        or not 0 < len(name) <= 200
        or ":" in name
        or any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in name)
    ):
        raise ValueError(
            f"invalid queue name {name!r}: 1-200 characters, without ':' or control characters"
        )
    return name


def routed(plan: ExecutionPlan) -> bool:
    """Whether any node of the plan names its own queue (the reconciler then needs the plan)."""
    return any(node.config.queue is not None for node in plan.nodes)


__all__ = [
    "DEFAULT_ROUTE",
    "MAX_DELAY_S",
    "MAX_PRIORITY",
    "Route",
    "check_delay",
    "check_priority",
    "check_queue_name",
    "node_queue",
    "routed",
]
