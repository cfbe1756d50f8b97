"""Join, skip and loop bookkeeping of one run (SPEC 3.2-3.7): synchronous and iterative.

`RunState` decides which activations become ready, skipped or blocked as edges resolve; it
never runs node code. The engine feeds it completions and drains `ready`; skips and blocks are
queued in `work` and propagated by `drain()` without recursion.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import LoopLimitError
from .plan import BACK, EdgePlan, NodePlan
from .routing import DEAD, TAKEN

FAILED_RES = 2

Key = tuple[int, tuple[int, ...]]


def forward_iteration(edge: EdgePlan, iteration: tuple[int, ...]) -> tuple[int, ...]:
    """The target's iteration for a forward edge: keep the shared loops, enter at index 0."""
    if not iteration and not edge.enter:
        return iteration
    return iteration[: edge.common] + (0,) * edge.enter


def next_iteration(header: NodePlan, iteration: tuple[int, ...]) -> tuple[int, ...]:
    """The header's next iteration after a back edge taken in `iteration`."""
    depth = len(header.loops)
    return iteration[: depth - 1] + (iteration[depth - 1] + 1,)


def merge_parallel(
    decisions: Iterable[tuple[EdgePlan, int, Any]],
) -> list[tuple[EdgePlan, int, Any]]:
    """One resolution per (target, edge kind): taken if any parallel edge is, and the first
    taken edge in declaration order supplies the value (SPEC 3.4, 3.6)."""
    merged: dict[tuple[int, int], tuple[EdgePlan, int, Any]] = {}
    for edge, status, value in decisions:
        key = (edge.target, edge.kind)
        seen = merged.get(key)
        if seen is None or (seen[1] != TAKEN and status == TAKEN):
            merged[key] = (edge, status, value)
    return list(merged.values())


class Act:
    """A ready activation waiting for a worker."""

    __slots__ = ("entry", "item", "iteration", "node", "value")

    def __init__(
        self,
        node: NodePlan,
        iteration: tuple[int, ...],
        value: Any,
        entry: bool,
        item: int = -1,
    ) -> None:
        self.node = node
        self.iteration = iteration
        self.value = value
        self.entry = entry
        #: Batch item index (the node is then the scatter), or -1.
        self.item = item


class JoinState:
    __slots__ = ("res", "values")

    def __init__(self) -> None:
        self.res: dict[int, int] = {}
        self.values: dict[int, Any] = {}


class RunState:
    """Per-run join state, loop counters and the ready/skip queues."""

    def __init__(
        self,
        nodes: tuple[NodePlan, ...],
        *,
        has_loops: bool,
        max_loop_iterations: int,
        on_skip: Callable[[NodePlan, tuple[int, ...], int], None] | None = None,
        on_loop_limit: Callable[[NodePlan, tuple[int, ...], BaseException], None] | None = None,
        gate: Callable[[NodePlan, tuple[int, ...], Any], bool] | None = None,
    ) -> None:
        self.nodes = nodes
        self.max_loop_iterations = max_loop_iterations
        self.on_skip = on_skip
        self.on_loop_limit = on_loop_limit
        self.gate = gate
        self.ready: deque[Act] = deque()
        self.work: deque[tuple[NodePlan, tuple[int, ...], int]] = deque()
        self.joins: dict[Key, JoinState] = {}
        self.ended: set[Key] = set()
        # Loop bookkeeping: live activations per (header, iteration prefix incl. own index).
        self.live: dict[Key, int] = {}
        self.back_taken: set[Key] = set()
        self.exits_delivered: dict[Key, set[int]] = {}
        self._has_loops = has_loops
        self._unreachable_preds: dict[int, tuple[int, ...]] = {}

    def seed(self, entries: tuple[int, ...]) -> None:
        for index in entries:
            node = self.nodes[index]
            iteration = (0,) * len(node.loops)
            self.open(node, iteration)
            self.ready.append(Act(node, iteration, None, True))

    def resolve_all(self, node: NodePlan, iteration: tuple[int, ...], status: int) -> None:
        """Resolve every out-edge with one status (failure, skip) and end the activation."""
        for edge in node.distinct_out:
            self.resolve_edge(edge, status, None, iteration)
        self.close(node, iteration)

    def resolve_decisions(
        self, decisions: list[tuple[EdgePlan, int, Any]], iteration: tuple[int, ...]
    ) -> None:
        """Apply a routing decision; parallel edges to one target merge (first taken wins)."""
        if len(decisions) == 1:
            edge, status, value = decisions[0]
            self.resolve_edge(edge, status, value, iteration)
            return
        for edge, status, value in merge_parallel(decisions):
            self.resolve_edge(edge, status, value, iteration)

    def resolve_edge(
        self, edge: EdgePlan, status: int, value: Any, iteration: tuple[int, ...]
    ) -> None:
        if edge.kind == BACK:
            if status == TAKEN:
                self._next_iteration(edge, value, iteration)
            return
        target_iteration = (
            iteration if not iteration and not edge.enter else forward_iteration(edge, iteration)
        )
        if edge.exit_header is not None:
            if status == DEAD:
                return  # deferred to the end of the loop
            depth = len(self.nodes[edge.exit_header].loops)
            instance = (edge.exit_header, iteration[: depth - 1])
            self.exits_delivered.setdefault(instance, set()).add(edge.index)
        self.deliver(self.nodes[edge.target], target_iteration, edge.source, status, value)

    def deliver(
        self, node: NodePlan, iteration: tuple[int, ...], pred: int, status: int, value: Any
    ) -> None:
        if not node.tracked:
            if node.loops:  # open() does nothing outside loops
                self.open(node, iteration)
            if status == TAKEN:
                self.ready.append(Act(node, iteration, value, False))
            else:
                self.work.append((node, iteration, status))
            return
        key = (node.index, iteration)
        js = self.joins.get(key)
        if js is None:
            if key in self.ended:
                return
            js = self.joins[key] = JoinState()
            self.open(node, iteration)
            for dead in self._dead_preds(node):
                js.res[dead] = DEAD
        if pred in js.res:
            return
        js.res[pred] = status
        if status == TAKEN:
            js.values[pred] = value
            if node.join_any:
                self._fire(node, iteration, key, value)
                return
        elif status == FAILED_RES:
            self._end_join(key)
            self.work.append((node, iteration, FAILED_RES))
            return
        if len(js.res) == len(node.preds):
            if js.values:
                if len(js.values) == 1:
                    delivered = next(iter(js.values.values()))
                else:
                    delivered = {
                        self.nodes[p].id: js.values[p] for p in node.preds if p in js.values
                    }
                self._fire(node, iteration, key, delivered)
            else:
                self._end_join(key)
                self.work.append((node, iteration, DEAD))

    def _dead_preds(self, node: NodePlan) -> tuple[int, ...]:
        dead = self._unreachable_preds.get(node.index)
        if dead is None:
            dead = tuple(p for p in node.preds if not self.nodes[p].reachable)
            self._unreachable_preds[node.index] = dead
        return dead

    def _end_join(self, key: tuple[int, tuple[int, ...]]) -> None:
        del self.joins[key]
        self.ended.add(key)

    def _fire(
        self,
        node: NodePlan,
        iteration: tuple[int, ...],
        key: tuple[int, tuple[int, ...]],
        value: Any,
    ) -> None:
        self._end_join(key)
        if self.gate is not None and node.is_gather and not self.gate(node, iteration, value):
            return
        self.ready.append(Act(node, iteration, value, False))

    def block(self, node: NodePlan, iteration: tuple[int, ...]) -> None:
        """Mark an activation blocked (upstream failure); propagated by the next drain."""
        self.work.append((node, iteration, FAILED_RES))

    def drain(self) -> None:
        """Propagate skips and blocks iteratively (a million-node dead chain is fine)."""
        work = self.work
        while work:
            node, iteration, status = work.popleft()
            if self.on_skip is not None:
                self.on_skip(node, iteration, status)
            for edge in node.distinct_out:
                self.resolve_edge(edge, status, None, iteration)
            self.close(node, iteration)

    # ----------------------------------------------------------------- loops
    def open(self, node: NodePlan, iteration: tuple[int, ...]) -> None:
        if not self._has_loops or not node.loops:
            return
        live = self.live
        for depth, header in enumerate(node.loops):
            key = (header, iteration[: depth + 1])
            live[key] = live.get(key, 0) + 1

    def close(self, node: NodePlan, iteration: tuple[int, ...]) -> None:
        if not self._has_loops or not node.loops:
            return
        live = self.live
        for depth in range(len(node.loops) - 1, -1, -1):
            header = node.loops[depth]
            key = (header, iteration[: depth + 1])
            left = live[key] - 1
            if left:
                live[key] = left
                continue
            del live[key]
            if key in self.back_taken:
                self.back_taken.discard(key)
            else:
                self._loop_end(header, iteration[:depth])

    def _next_iteration(self, edge: EdgePlan, value: Any, iteration: tuple[int, ...]) -> None:
        header = self.nodes[edge.target]
        depth = len(header.loops)
        key = (header.index, iteration[:depth])
        if key in self.back_taken:
            return
        self.back_taken.add(key)
        nxt = next_iteration(header, iteration)
        self.open(header, nxt)
        if nxt[-1] > self.max_loop_iterations:
            error = LoopLimitError(header.id, self.max_loop_iterations, kind="max_loop_iterations")
            if self.on_loop_limit is not None:
                self.on_loop_limit(header, nxt, error)
            else:
                self.resolve_all(header, nxt, FAILED_RES)
            return
        self.ready.append(Act(header, nxt, value, False))

    def _loop_end(self, header_index: int, prefix: tuple[int, ...]) -> None:
        header = self.nodes[header_index]
        delivered = self.exits_delivered.pop((header_index, prefix), set())
        for edge in header.exit_edges:
            if edge.index not in delivered:
                target_iteration = forward_iteration(edge, prefix)
                self.deliver(self.nodes[edge.target], target_iteration, edge.source, DEAD, None)

    def pending(self) -> list[str]:
        """Activations with partial join state (only non-empty for a stalled run)."""
        return [self.nodes[index].id + (f"@{list(it)}" if it else "") for (index, it) in self.joins]


__all__ = [
    "DEAD",
    "FAILED_RES",
    "TAKEN",
    "Act",
    "JoinState",
    "RunState",
    "forward_iteration",
    "merge_parallel",
    "next_iteration",
]
