"""Batch bookkeeping for `batch-scatter` / `batch-gather` (SPEC 5.1).

Items are activations `<scatterId>[<i>]` of the worker implementation, at most `chunkSize` in
flight. The gather fires only when its join is satisfied *and* every item has ended; a failed
item (without `collectErrors`) stops new items and blocks the gather.
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from ..ids import activation_id
from ..results import ErrorRecord
from .executor import SUCCEEDED, AttemptSpec, Implementation, Outcome

if TYPE_CHECKING:
    from .activation import ActivationRunner
    from .engine import Engine
    from .plan import ExecutionPlan, NodePlan
    from .state import Act

_ITEM_ID: Final = re.compile(r"(.+)\[([0-9]+)\]", re.ASCII)


def item_node_id(scatter_id: str, index: int) -> str:
    """The node id of item `index` of a scatter's batch (reserved by validation)."""
    return f"{scatter_id}[{index}]"


def item_of(plan: ExecutionPlan, node_id: str) -> tuple[NodePlan, int] | None:
    """(scatter, item index) if `node_id` names a batch item of `plan`, else None."""
    if not node_id.endswith("]"):
        return None
    match = _ITEM_ID.fullmatch(node_id)
    if match is None:
        return None
    index = plan.by_id.get(match.group(1))
    if index is None or not plan.nodes[index].is_scatter:
        return None
    return plan.nodes[index], int(match.group(2))


def chunk_size(scatter: NodePlan) -> int | None:
    """The scatter's in-flight cap (None: unlimited)."""
    chunk = scatter.params.get("chunkSize")
    return chunk if isinstance(chunk, int) else None


def collects_errors(scatter: NodePlan) -> bool:
    return bool(scatter.params.get("collectErrors", False))


def item_spec(
    run_id: str, scatter: NodePlan, iteration: tuple[int, ...], index: int, value: Any
) -> AttemptSpec:
    """The attempt settings of one item: `workerParams`, and `workerConfig` (default one
    attempt), under the item's own node id and activation id."""
    config = scatter.params.get("workerConfig")
    config = config if isinstance(config, dict) else {}
    worker_params = scatter.params.get("workerParams")
    node_id = item_node_id(scatter.id, index)
    return AttemptSpec(
        node_id=node_id,
        params=MappingProxyType(dict(worker_params) if isinstance(worker_params, dict) else {}),
        input=value,
        iteration=iteration,
        activation_id=activation_id(run_id, node_id, iteration),
        max_attempts=int(config.get("maxRetries", 1)),
        retry_delay_ms=float(config.get("retryDelay", 0)),
        exponential=config.get("backoff") == "exponential",
        timeout_ms=float(config["timeout"]) if "timeout" in config else None,
    )


async def run_item_attempts(
    host: ActivationRunner, scatter: NodePlan, spec: AttemptSpec
) -> Outcome:
    """Run one item's `workerUsesKey` implementation, through the middleware chain."""
    impl: Implementation = host.fallback_impls[scatter.params["workerUsesKey"]]
    run = host.executor.run_class if impl.is_class else host.executor.run_function
    if host.chain is None:
        return await run(impl, spec)
    return await host.through_middleware(spec, functools.partial(run, impl, spec))


def error_slot(record: ErrorRecord) -> dict[str, Any]:
    """A failed item's slot in the results with `collectErrors` (SPEC 5.1)."""
    return {"error": {"type": record.type, "message": record.message}}


@dataclass(slots=True, eq=False)
class Batch:
    scatter: NodePlan
    iteration: tuple[int, ...]
    items: list[Any]
    results: list[Any]
    chunk: int | None
    collect: bool
    next: int = 0
    in_flight: int = 0
    ended: int = 0
    failed: bool = False
    parked: bool = False
    parked_value: Any = None
    gather: NodePlan | None = None

    @property
    def complete(self) -> bool:
        if self.failed:
            return self.in_flight == 0
        return self.ended == len(self.items)


class Batches:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.open: dict[tuple[int, tuple[int, ...]], Batch] = {}

    def register(self, scatter: NodePlan, iteration: tuple[int, ...], items: list[Any]) -> Batch:
        batch = Batch(
            scatter=scatter,
            iteration=iteration,
            items=items,
            results=[None] * len(items),
            chunk=chunk_size(scatter),
            collect=collects_errors(scatter),
        )
        self.open[(scatter.index, iteration)] = batch
        return batch

    def launch(self, scatter: NodePlan, iteration: tuple[int, ...]) -> None:
        """Queue items up to the in-flight cap."""
        from .state import Act

        batch = self.open.get((scatter.index, iteration))
        if batch is None:
            return
        ready = self.engine.ready
        while (
            not batch.failed
            and batch.next < len(batch.items)
            and (batch.chunk is None or batch.in_flight < batch.chunk)
        ):
            index = batch.next
            batch.next += 1
            batch.in_flight += 1
            ready.append(Act(scatter, iteration, batch.items[index], False, index))

    def gather_ready(self, gather: NodePlan, iteration: tuple[int, ...], value: Any) -> bool:
        """True if the gather may start now; otherwise it is parked (or blocked)."""
        if gather.scatter_of_gather is None:
            return True
        batch = self.open.get((gather.scatter_of_gather, iteration))
        if batch is None:
            return True
        batch.gather = gather
        if not batch.complete:
            batch.parked = True
            batch.parked_value = value
            return False
        if batch.failed:
            self.engine.block(gather, iteration)
            return False
        return True

    def take_results(
        self, gather: NodePlan, iteration: tuple[int, ...]
    ) -> tuple[list[Any], Batch | None]:
        if gather.scatter_of_gather is None:
            return [], None
        batch = self.open.pop((gather.scatter_of_gather, iteration), None)
        return (batch.results if batch is not None else []), batch

    async def run_item(self, act: Act) -> None:
        engine = self.engine
        scatter = act.node
        batch = self.open[(scatter.index, act.iteration)]
        index = act.item
        spec = item_spec(engine.run_id, scatter, act.iteration, index, act.value)
        node_id = spec.node_id
        engine.node_started(node_id, act.iteration, act.value)
        started = time.perf_counter()
        outcome = await run_item_attempts(engine, scatter, spec)
        batch.in_flight -= 1
        batch.ended += 1
        if outcome.kind == SUCCEEDED:
            assert outcome.result is not None
            batch.results[index] = outcome.result.output
            engine.node_finished(node_id, act.iteration, outcome.result, started)
        else:
            error = outcome.error
            assert error is not None
            record = engine.node_failed(node_id, act.iteration, error, outcome.attempts)
            if batch.collect:
                batch.results[index] = error_slot(record)
            elif not batch.failed:
                batch.failed = True
                engine.errors.append(record)
        self.launch(scatter, act.iteration)
        if batch.complete and batch.parked:
            batch.parked = False
            gather = batch.gather
            assert gather is not None
            if batch.failed:
                engine.block(gather, act.iteration)
            else:
                from .state import Act

                engine.ready.append(Act(gather, act.iteration, batch.parked_value, False))


__all__ = [
    "Batch",
    "Batches",
    "chunk_size",
    "collects_errors",
    "error_slot",
    "item_node_id",
    "item_of",
    "item_spec",
    "run_item_attempts",
]
