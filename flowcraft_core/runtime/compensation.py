"""Saga compensation: when a run fails, undo what its completed nodes did, newest first.

A node opts in with `config.compensate: "<registered name>"`. Every completion of such a node is
remembered (node, iteration, output); if the run ends `failed`, each remembered completion's
compensation runs once, in reverse completion order, with the node's output as its input and
the node's params and retry settings. A failing compensation is recorded and the next one still
runs: stopping half-way would leave more undone than one failure does.

Shared by the in-process engine and the distributed worker, which records progress per item so
a crashed worker neither skips nor re-applies a finished compensation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..ids import activation_id
from ..results import ErrorRecord
from .executor import SUCCEEDED, AttemptSpec, Implementation, Outcome

if TYPE_CHECKING:
    from .activation import ActivationRunner
    from .plan import ExecutionPlan

logger = logging.getLogger("flowcraft_core.engine")

#: Suffix of a compensation's activation id (what node code may use for idempotency).
SUFFIX = "-~compensate"


@dataclass(frozen=True, slots=True)
class Completed:
    """One completion of a node that names a compensation."""

    node_id: str
    iteration: tuple[int, ...]
    output: Any

    def to_json(self) -> list[Any]:
        return [self.node_id, list(self.iteration), self.output]

    @classmethod
    def from_json(cls, raw: Sequence[Any]) -> Completed:
        return cls(str(raw[0]), tuple(int(i) for i in raw[1]), raw[2])


def has_compensation(plan: ExecutionPlan) -> bool:
    """Whether any node names a compensation (cached: the engine checks it per run)."""
    cached = plan.extra.get("compensates")
    if cached is None:
        cached = plan.extra["compensates"] = any(
            n.config.compensate is not None for n in plan.nodes
        )
    return bool(cached)


async def compensate_one(runner: ActivationRunner, plan: ExecutionPlan, item: Completed) -> Outcome:
    """Run one compensation (with the node's retries and timeout); its writes are in `ops`."""
    node = plan.nodes[plan.by_id[item.node_id]]
    key = node.config.compensate
    assert key is not None
    impl: Implementation = runner.fallback_impls[key]
    config = node.config
    spec = AttemptSpec(
        node_id=node.id,
        params=node.params,
        input=item.output,
        iteration=item.iteration,
        activation_id=activation_id(runner.run_id, node.id, item.iteration) + SUFFIX,
        max_attempts=config.max_retries,
        retry_delay_ms=config.retry_delay,
        exponential=config.backoff == "exponential",
        timeout_ms=config.timeout,
    )
    started = time.perf_counter()
    if impl.is_class:
        outcome = await runner.executor.run_class(impl, spec)
    else:
        outcome = await runner.executor.run_function(impl, spec)
    extra = {"run_id": runner.run_id, "node_id": node.id}
    if outcome.kind == SUCCEEDED:
        logger.info(
            "compensated node %r (%s) in %.1f ms",
            node.id,
            key,
            (time.perf_counter() - started) * 1000.0,
            extra=extra,
        )
    else:
        logger.error(
            "compensation of node %r (%s) failed: %s", node.id, key, outcome.error, extra=extra
        )
    return outcome


def failure_record(item: Completed, outcome: Outcome) -> ErrorRecord:
    assert outcome.error is not None
    return ErrorRecord.from_exception(
        outcome.error, node_id=item.node_id, iteration=item.iteration, attempts=outcome.attempts
    )


@dataclass(slots=True)
class CompensationReport:
    """What a failed run's compensation did: node ids compensated (in the order they ran) and
    the compensations that failed."""

    compensated: list[str]
    failed: list[ErrorRecord]

    def to_json(self) -> dict[str, Any]:
        return {"compensated": self.compensated, "failed": [e.to_json() for e in self.failed]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CompensationReport:
        return cls(
            [str(n) for n in data.get("compensated", [])],
            [ErrorRecord.from_json(e) for e in data.get("failed", [])],
        )


__all__ = [
    "SUFFIX",
    "CompensationReport",
    "Completed",
    "compensate_one",
    "failure_record",
    "has_compensation",
]
