"""Every node implementation the differential strategy can draw, in one registry.

The in-process runs and the `flowcraft worker` subprocesses (`--registry diff_nodes:registry`)
load this same module, so both modes run the same code.
"""

from __future__ import annotations

from typing import Any

from runtime.test_random_dags import Workload

from flowcraft_core import NodeRegistry


async def tick(ctx: Any) -> dict[str, Any]:
    """A loop body: counts its passes in `count_<loop>` and outputs the count."""
    key = f"count_{ctx.params['loop']}"
    count = int(await ctx.context.get(key, 0)) + 1
    await ctx.context.set(key, count)
    return {"output": {"v": count}}


def make_registry() -> NodeRegistry:
    reg = Workload().registry()
    reg.register("tick", tick)
    return reg


registry = make_registry()

__all__ = ["make_registry", "registry", "tick"]
