"""`batch-scatter` and `batch-gather` (SPEC 5.1); the item bookkeeping is in runtime.batches."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import NonRetryableError
from ..events import BatchFinish, BatchStart
from ..results import NodeResult
from ..runtime.executor import FAILED, SUCCEEDED, AttemptSpec, Outcome

if TYPE_CHECKING:
    from ..runtime.engine import Engine
    from ..runtime.plan import NodePlan


async def scatter_node(engine: Engine, node: NodePlan, spec: AttemptSpec) -> Outcome:
    items = spec.input
    if not isinstance(items, list):
        error = NonRetryableError(
            f"batch-scatter {node.id!r}: input must be a list, got {type(items).__name__}"
        )
        return Outcome(FAILED, error=error, attempts=1)
    gather_id = str(node.params["gatherNodeId"])
    engine.batches.register(node, spec.iteration, items)
    if engine.events is not None:
        engine.events.append(
            BatchStart(
                run_id=engine.run_id,
                blueprint_id=engine.blueprint_id,
                batch_id=node.id,
                scatter_node_id=node.id,
                gather_node_id=gather_id,
                item_count=len(items),
            )
        )
    output = {"gatherNodeId": gather_id, "itemCount": len(items)}
    return Outcome(SUCCEEDED, result=NodeResult(output=output), attempts=1)


async def gather_node(engine: Engine, node: NodePlan, spec: AttemptSpec) -> Outcome:
    results, batch = engine.batches.take_results(node, spec.iteration)
    key = node.params.get("outputKey")
    if not isinstance(key, str) and batch is not None:
        key = batch.scatter.params.get("outputKey")
    if not isinstance(key, str):
        key = node.id
    if engine.events is not None:
        engine.events.append(
            BatchFinish(
                run_id=engine.run_id,
                blueprint_id=engine.blueprint_id,
                batch_id=batch.scatter.id if batch is not None else node.id,
                gather_node_id=node.id,
                results=list(results),
            )
        )
    return Outcome(SUCCEEDED, result=NodeResult(output=results), ops={key: results}, attempts=1)


__all__ = ["gather_node", "scatter_node"]
