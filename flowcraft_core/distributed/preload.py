"""Which context keys a job must load before running its node (SPEC 9.4 step 1).

The node's `inputs` references (every key reference resolution may consult; a subflow's
`params.inputs` too), its entry
input, and the names its outgoing expressions and loop condition read. An expression that
uses `context[...]` (or a custom evaluator that does not say which names it reads) needs the
whole context. Node code reads anything else on demand, one round trip each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..reserved import INPUTS_PREFIX, OUTPUTS_PREFIX, SUBFLOW
from ..runtime.plan import ExecutionPlan, NodePlan

_RESERVED_NAMES = frozenset({"result", "input", "iteration"})


def reference_keys(ref: str) -> list[str]:
    """Every key SPEC 2.7 reference resolution may look at for `ref`."""
    if ref.startswith("_"):
        return [ref]
    keys = [OUTPUTS_PREFIX + ref, ref]
    head, dot, _ = ref.partition(".")
    if dot:
        keys += [OUTPUTS_PREFIX + head, head]
    return keys


def _refs(inputs: str | Mapping[str, str] | None) -> Iterable[str]:
    if inputs is None:
        return ()
    return (inputs,) if isinstance(inputs, str) else inputs.values()


def _compute(plan: ExecutionPlan, node: NodePlan) -> tuple[str, ...] | None:
    keys: list[str] = [INPUTS_PREFIX + node.id]
    for ref in _refs(node.definition.inputs):
        keys += reference_keys(ref)
    if node.uses == SUBFLOW and isinstance(mapping := node.params.get("inputs"), Mapping):
        for ref in mapping.values():  # the child's initial context (SPEC 5.6)
            keys += reference_keys(str(ref))
    if node.fallback_node is not None:
        for ref in _refs(plan.nodes[node.fallback_node].definition.inputs):
            keys += reference_keys(ref)
    compiled = [e.condition for e in node.out_edges] + [e.transform for e in node.out_edges]
    compiled.append(node.loop_condition)
    for expression in compiled:
        if expression is None:
            continue
        names = getattr(expression, "names", None)
        if names is None or "context" in names:
            return None
        for name in names:
            if name not in _RESERVED_NAMES:
                keys += [name, OUTPUTS_PREFIX + name]
    return tuple(dict.fromkeys(keys))


def preload_keys(plan: ExecutionPlan, node: NodePlan) -> tuple[str, ...] | None:
    """The keys to load for an activation of `node` (None = the whole context); cached."""
    cache: dict[int, tuple[str, ...] | None] = plan.extra.setdefault("preload", {})
    if node.index not in cache:
        cache[node.index] = _compute(plan, node)
    return cache[node.index]


__all__ = ["preload_keys", "reference_keys"]
