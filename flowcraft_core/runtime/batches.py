"""Batch bookkeeping for `batch-scatter` / `batch-gather` (SPEC 5.1).

Items are activations `<scatterId>[<i>]` of the worker implementation, at most `chunkSize` in
flight. The gather fires only when its join is satisfied *and* every item has ended; a failed
item (without `collectErrors`) stops new items and blocks the gather.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..ids import activation_id
from .executor import SUCCEEDED, AttemptSpec, Implementation

if TYPE_CHECKING:
    from .engine import Engine
    from .plan import NodePlan
    from .state import Act


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
    worker_config: dict[str, Any] = field(default_factory=dict)

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
        params = scatter.params
        chunk = params.get("chunkSize")
        config = params.get("workerConfig")
        batch = Batch(
            scatter=scatter,
            iteration=iteration,
            items=items,
            results=[None] * len(items),
            chunk=chunk if isinstance(chunk, int) else None,
            collect=bool(params.get("collectErrors", False)),
            worker_config=dict(config) if isinstance(config, dict) else {},
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
        node_id = f"{scatter.id}[{index}]"
        config = batch.worker_config
        worker_params = scatter.params.get("workerParams")
        spec = AttemptSpec(
            node_id=node_id,
            params=MappingProxyType(dict(worker_params) if isinstance(worker_params, dict) else {}),
            input=act.value,
            iteration=act.iteration,
            activation_id=activation_id(engine.run_id, node_id, act.iteration),
            max_attempts=int(config.get("maxRetries", 1)),
            retry_delay_ms=float(config.get("retryDelay", 0)),
            exponential=config.get("backoff") == "exponential",
            timeout_ms=float(config["timeout"]) if "timeout" in config else None,
        )
        engine.node_started(node_id, act.iteration, act.value)
        started = time.perf_counter()
        impl: Implementation = engine.fallback_impls[scatter.params["workerUsesKey"]]
        run = engine.executor.run_class if impl.is_class else engine.executor.run_function
        if engine.chain is None:
            outcome = await run(impl, spec)
        else:
            outcome = await engine.through_middleware(spec, functools.partial(run, impl, spec))
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
                batch.results[index] = {"error": {"type": record.type, "message": record.message}}
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


__all__ = ["Batch", "Batches"]
