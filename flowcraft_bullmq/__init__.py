"""flowcraft_bullmq: run flowcraft blueprints across worker processes on BullMQ and Redis.

The adapter's names are imported on first use (module `__getattr__`), so importing
`flowcraft_bullmq.cli` for `flowcraft --help` does not load BullMQ.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .adapter import BullMQAdapter
    from .connection import RedisSettings
    from .context import RedisContext
    from .event_stream import RemoteError
    from .health import WorkerHealth
    from .inspection import Activation, RunInspection, RunSummary
    from .metrics import MeteredAdapter, WorkerMetrics
    from .queue import BullMQJobQueue
    from .reconciler import ReconcileStats, create_reconciler
    from .scheduling import Schedule
    from .store import RedisCoordinationStore

# Libraries add no handlers (SPEC 7.4).
logging.getLogger("flowcraft_bullmq").addHandler(logging.NullHandler())

_LAZY = {
    "Activation": ".inspection",
    "RunInspection": ".inspection",
    "RunSummary": ".inspection",
    "BullMQAdapter": ".adapter",
    "BullMQJobQueue": ".queue",
    "MeteredAdapter": ".metrics",
    "WorkerHealth": ".health",
    "WorkerMetrics": ".metrics",
    "RedisSettings": ".connection",
    "RedisContext": ".context",
    "RedisCoordinationStore": ".store",
    "ReconcileStats": ".reconciler",
    "RemoteError": ".event_stream",
    "create_reconciler": ".reconciler",
    "Schedule": ".scheduling",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__: list[str] = [
    "Activation",
    "BullMQAdapter",
    "BullMQJobQueue",
    "MeteredAdapter",
    "ReconcileStats",
    "RedisContext",
    "RedisCoordinationStore",
    "RedisSettings",
    "RemoteError",
    "RunInspection",
    "RunSummary",
    "Schedule",
    "WorkerHealth",
    "WorkerMetrics",
    "create_reconciler",
]
