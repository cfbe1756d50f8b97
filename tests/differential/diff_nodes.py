"""Every node implementation the differential strategy can draw, in one registry.

The in-process runs and the `flowcraft worker` subprocesses (`--registry diff_nodes:registry`)
load this same module, so both modes run the same code. With `FLOWCRAFT_TEST_TRACE=<file>` (set
for the worker processes) every call appends this process's pid to the file, so the test can
tell that the runs were spread over several processes.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from typing import Any

from runtime.test_random_dags import Workload

from flowcraft_core import NodeRegistry


async def tick(ctx: Any) -> dict[str, Any]:
    """A loop body: counts its passes in `count_<loop>` and outputs the count."""
    key = f"count_{ctx.params['loop']}"
    count = int(await ctx.context.get(key, 0)) + 1
    await ctx.context.set(key, count)
    return {"output": {"v": count}}


def _pid_traced(impl: Callable[..., Any]) -> Callable[..., Any]:
    path = os.environ.get("FLOWCRAFT_TEST_TRACE")
    if not path:
        return impl

    def trace() -> None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()}\n")

    if inspect.iscoroutinefunction(impl):

        @functools.wraps(impl)
        async def traced_async(ctx: Any) -> Any:
            trace()
            return await impl(ctx)

        return traced_async

    @functools.wraps(impl)
    def traced(ctx: Any) -> Any:
        trace()
        return impl(ctx)

    return traced


def make_registry() -> NodeRegistry:
    reg = NodeRegistry()
    for name, impl in [*Workload().registry().items(), ("tick", tick)]:
        reg.register(name, _pid_traced(impl))
    return reg


registry = make_registry()

__all__ = ["make_registry", "registry", "tick"]
