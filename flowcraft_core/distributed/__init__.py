"""The technology-neutral distributed protocol (no Redis here): job payloads, transitions,
the coordination-store and queue ports with in-memory twins, and the job handler.

`flowcraft_bullmq` implements the ports on Redis and BullMQ; `LocalCluster` runs the same
protocol in one process for tests.
"""

from .local import LocalCluster
from .memory import InMemoryCoordinationStore, InMemoryJobQueue
from .protocol import (
    Applied,
    CoordinationStore,
    Job,
    JobQueue,
    Loaded,
    Route,
    Transition,
    akey,
)
from .worker import DistributedWorker, StoreContext

__all__ = [
    "Applied",
    "CoordinationStore",
    "DistributedWorker",
    "InMemoryCoordinationStore",
    "InMemoryJobQueue",
    "Job",
    "JobQueue",
    "Loaded",
    "LocalCluster",
    "Route",
    "StoreContext",
    "Transition",
    "akey",
]
