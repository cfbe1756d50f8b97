"""The registry the worker subprocesses load (`--registry worker_nodes:registry`): the parity
suite's implementations, so in-process and distributed results are comparable, plus `nap`.

With `FLOWCRAFT_TEST_TRACE=<file>` every node call appends this process's pid to the file, so a
test can tell that both workers took part.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Callable
from typing import Any

from distributed.test_memory_parity import make_registry

from flowcraft_core import NodeRegistry


def _trace() -> None:
    path = os.environ.get("FLOWCRAFT_TEST_TRACE")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()}\n")


def _traced(impl: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(impl):

        async def traced_async(ctx: Any) -> Any:
            _trace()
            return await impl(ctx)

        return traced_async

    def traced(ctx: Any) -> Any:
        _trace()
        return impl(ctx)

    return traced


registry = NodeRegistry()
for _name, _impl in make_registry().items():
    registry.register(_name, _traced(_impl))


@registry.node("nap")
async def nap(ctx: Any) -> dict[str, Any]:
    """Sleeps `params.seconds` (an activation still in flight when a worker is told to stop)."""
    await asyncio.sleep(float(ctx.params.get("seconds", 1.0)))
    return {"output": "rested"}
