"""`loop-controller`: answers `continue` or `break` and guards runaway loops (SPEC 5.2)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ExpressionError, LoopLimitError
from ..expressions import truthy
from ..results import NodeResult
from ..runtime.executor import FAILED, SUCCEEDED, AttemptSpec, Outcome
from ..runtime.routing import ContextReader, evaluate

if TYPE_CHECKING:
    from ..runtime.engine import Engine
    from ..runtime.plan import NodePlan


def decide(node: NodePlan, spec: AttemptSpec, reader: ContextReader) -> NodeResult:
    """Evaluate the condition for this iteration; raise LoopLimitError past maxIterations."""
    index = spec.iteration[-1] if spec.iteration else 0
    assert node.loop_condition is not None
    try:
        value = evaluate(node.loop_condition, reader, {"input": spec.input, "iteration": index})
    except Exception as exc:
        reason = exc.reason if isinstance(exc, ExpressionError) else f"{type(exc).__name__}: {exc}"
        raise ExpressionError(
            reason, expression=node.params.get("condition"), node_id=node.id, role="condition"
        ) from exc
    if truthy(value):
        limit = node.params.get("maxIterations")
        if isinstance(limit, int) and index >= limit:
            raise LoopLimitError(node.id, limit)
        return NodeResult(output=spec.input, action="continue")
    return NodeResult(output=spec.input, action="break")


async def loop_controller(engine: Engine, node: NodePlan, spec: AttemptSpec) -> Outcome:
    try:
        result = decide(node, spec, ContextReader(engine.data))
    except (ExpressionError, LoopLimitError) as exc:
        return Outcome(FAILED, error=exc, attempts=1)
    return Outcome(SUCCEEDED, result=result, attempts=1)


__all__: list[Any] = ["decide", "loop_controller"]
