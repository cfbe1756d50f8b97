"""The registry the worker subprocesses load (`--registry reconcile_nodes:registry`): the parity
suite's implementations plus `nap`, each call traced.

With `FLOWCRAFT_TEST_TRACE=<file>` every node call appends `<pid> <activation id>` to the file,
so a test can tell which process ran which activation, and how often.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Callable
from typing import Any

from distributed.test_memory_parity import make_registry

from flowcraft_core import NodeRegistry


def _trace(activation_id: str) -> None:
    path = os.environ.get("FLOWCRAFT_TEST_TRACE")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()} {activation_id}\n")


def _traced(impl: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(impl):

        async def traced_async(ctx: Any) -> Any:
            _trace(ctx.activation_id)
            return await impl(ctx)

        return traced_async

    def traced(ctx: Any) -> Any:
        _trace(ctx.activation_id)
        return impl(ctx)

    return traced


async def _nap(ctx: Any) -> dict[str, Any]:
    """Sleeps `params.seconds`, then adds 100 to its input (a slow node to kill a worker in)."""
    await asyncio.sleep(float(ctx.params.get("seconds", 1.0)))
    return {"output": (ctx.input if isinstance(ctx.input, int) else 0) + 100}


registry = NodeRegistry()
for _name, _impl in [*make_registry().items(), ("nap", _nap)]:
    registry.register(_name, _traced(_impl))
