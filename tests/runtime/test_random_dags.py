"""Property test: random acyclic workflows (tests/strategies.py) against run invariants and a
small reference model of SPEC 3.3-3.6, 4.1-4.4 and 2.5.

Invariants checked on every run:

* every node ends exactly once (finish, error or skipped) and starts at most once;
* skipped nodes never run, and `all` joins start only after all their predecessors ended;
* the run never ends `stalled`; it is `completed` exactly when `errors` is empty;
* attempts never exceed `maxRetries`;
* the writes of failed attempts never reach the context.

Where timing cannot change the outcome, the model also predicts each node's status, output,
input, attempts, error type and fallback error. Only an `any` join that sees both a taken and a
failed predecessor is timing dependent; it and everything downstream are left unpredicted.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from hypothesis import event as record_event
from hypothesis import given, settings
from strategies import DagSpec, NodeSpec, weight, workflow_dags

from flowcraft_core import (
    FatalNodeError,
    FlowRuntime,
    InMemoryEventBus,
    NodeRegistry,
    NonRetryableError,
    WorkflowResult,
)

_NO_INPUT: Any = object()


# --------------------------------------------------------------------------- implementations


class Workload:
    """The implementations of one run, recording (node_id, activation_id, attempt, input)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int, Any]] = []

    def _decide(self, ctx: Any) -> dict[str, Any]:
        params = ctx.params
        self.calls.append((ctx.node_id, ctx.activation_id, ctx.attempt, ctx.input))
        mode = params["fail"]
        if mode == "nonretryable":
            raise NonRetryableError(f"nonretryable {ctx.node_id}")
        if mode == "fatal":
            raise FatalNodeError(f"fatal {ctx.node_id}")
        if (
            mode == "always"
            or (mode == "flaky" and ctx.attempt == 1)
            or (mode == "input" and weight(ctx.input) % 2 == 1)
        ):
            raise ValueError(f"{mode} {ctx.node_id}")
        return {"output": {"v": params["v"]}, "action": params["action"]}

    async def gen(self, ctx: Any) -> dict[str, Any]:
        await ctx.context.set(f"w_{ctx.node_id}", ctx.params["v"])
        if ctx.params["delayMs"]:
            await asyncio.sleep(ctx.params["delayMs"] / 1000)
        else:
            await asyncio.sleep(0)
        return self._decide(ctx)

    def gen_sync(self, ctx: Any) -> dict[str, Any]:
        ctx.context.sync.set(f"w_{ctx.node_id}", ctx.params["v"])
        if ctx.params["delayMs"]:
            time.sleep(ctx.params["delayMs"] / 1000)
        return self._decide(ctx)

    async def fb_impl(self, ctx: Any) -> dict[str, Any]:
        self.calls.append(("fb_impl", ctx.activation_id, ctx.attempt, ctx.input))
        await ctx.context.set(f"fbw_{ctx.node_id}", 1)
        if ctx.params["fbFail"]:
            raise RuntimeError(f"fb_impl failed for {ctx.node_id}")
        return {"output": {"v": ctx.params["v"] + 100}}

    def registry(self) -> NodeRegistry:
        return NodeRegistry({"gen": self.gen, "gen_sync": self.gen_sync, "fb_impl": self.fb_impl})


# --------------------------------------------------------------------------- reference model


@dataclass
class Expect:
    status: str  # ok | failed | skipped | blocked | unknown
    output: Any = None
    action: str | None = None
    input: Any = _NO_INPUT  # predicted only for `all` joins with predecessors
    attempts: int | None = None
    error_type: str | None = None
    fallback_error_type: str | None = None
    via: str | None = None  # "self", a fallback node id, or "fb_impl"


def attempts_of(node: NodeSpec, value: Any) -> tuple[bool, int, str | None]:
    """(succeeded, attempts made, error type) of the node's own attempts."""
    mode = node.fail
    if mode == "never":
        return True, 1, None
    if mode == "always":
        return False, node.max_retries, "ValueError"
    if mode == "flaky":
        return (True, 2, None) if node.max_retries >= 2 else (False, 1, "ValueError")
    if mode == "nonretryable":
        return False, 1, "NonRetryableError"
    if mode == "fatal":
        return False, 1, "FatalNodeError"
    if weight(value) % 2 == 1:
        return False, node.max_retries, "ValueError"
    return True, 1, None


def run_node(spec: DagSpec, node: NodeSpec, value: Any) -> Expect:
    ok, attempts, error = attempts_of(node, value)
    if ok:
        return Expect("ok", {"v": node.v}, node.action, attempts=attempts, via="self")
    if error == "FatalNodeError" or node.fallback is None:
        return Expect("failed", attempts=attempts, error_type=error)
    if node.fallback == "fb_impl":
        if node.fallback_fails:
            return Expect(
                "failed", attempts=attempts, error_type=error, fallback_error_type="RuntimeError"
            )
        return Expect("ok", {"v": node.v + 100}, None, attempts=attempts, via="fb_impl")
    stand_in = spec.fallback_node(node.fallback)
    if stand_in.fail == "always":
        return Expect(
            "failed", attempts=attempts, error_type=error, fallback_error_type="ValueError"
        )
    return Expect("ok", {"v": stand_in.v}, stand_in.action, attempts=attempts, via=stand_in.id)


def predict(spec: DagSpec) -> dict[str, Expect]:
    expect: dict[str, Expect] = {}
    # (source, target) -> value of the first declared taken edge.
    taken: dict[tuple[str, str], Any] = {}
    for node in spec.nodes:
        incoming = [e for e in spec.edges if e.target == node.id]
        preds = list(dict.fromkeys(e.source for e in incoming))
        if not preds:
            outcome = run_node(spec, node, None)
        else:
            res: dict[str, str] = {}
            for pred in preds:
                status = expect[pred].status
                if status == "unknown":
                    res[pred] = "unknown"
                elif status == "ok":
                    res[pred] = "taken" if (pred, node.id) in taken else "dead"
                elif status in ("failed", "blocked"):
                    res[pred] = "failed"
                else:
                    res[pred] = "dead"
            kinds = set(res.values())
            if node.join == "all":
                if "failed" in kinds:
                    outcome = Expect("blocked")
                elif "unknown" in kinds:
                    outcome = Expect("unknown")
                elif kinds == {"dead"}:
                    outcome = Expect("skipped")
                else:
                    values = {p: taken[(p, node.id)] for p in preds if res[p] == "taken"}
                    value = next(iter(values.values())) if len(values) == 1 else values
                    outcome = run_node(spec, node, value)
                    outcome.input = value
            elif "unknown" in kinds or {"taken", "failed"} <= kinds:
                outcome = Expect("unknown")
            elif "taken" in kinds:
                outcome = run_node(spec, node, None)  # `any` nodes never depend on input
            elif "failed" in kinds:
                outcome = Expect("blocked")
            else:
                outcome = Expect("skipped")
        expect[node.id] = outcome
        if outcome.status == "ok":
            for target, value in route(spec, node.id, outcome.output, outcome.action).items():
                taken[(node.id, target)] = value
    return expect


def route(spec: DagSpec, source: str, output: Any, action: str | None) -> dict[str, Any]:
    """SPEC 3.3 for a plain node: target -> delivered edge value (first taken edge wins)."""
    edges = [e for e in spec.edges if e.source == source]
    chosen = []
    if action is not None:
        chosen = [e for e in edges if e.action == action and e.holds(output, action)]
    if not chosen:
        chosen = [e for e in edges if e.action is None and e.holds(output, action)]
    values: dict[str, Any] = {}
    for e in chosen:
        values.setdefault(e.target, e.value(output))
    return values


# --------------------------------------------------------------------------- the property


async def execute(
    spec: DagSpec, *, listen: bool = True
) -> tuple[WorkflowResult, InMemoryEventBus | None, Workload]:
    """Run `spec`; `listen=False` runs it with no event bus (the engine's path without events)."""
    workload = Workload()
    bus = InMemoryEventBus() if listen else None
    runtime = FlowRuntime(registry=workload.registry(), event_bus=bus)
    result = await runtime.run(spec.blueprint(), concurrency=spec.concurrency)
    return result, bus, workload


def check_invariants(spec: DagSpec, result: WorkflowResult, bus: InMemoryEventBus) -> None:
    assert result.status != "stalled"
    assert result.status in ("completed", "failed")
    assert (result.status == "completed") == (result.errors == [])
    events = bus.events
    assert events[0].type == "workflow:start"
    assert events[-1].type == "workflow:finish"
    assert [e.type for e in events].count("workflow:finish") == 1

    ids = {n.id for n in spec.nodes}
    starts: dict[str, list[int]] = defaultdict(list)
    ends: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for index, event in enumerate(events):
        node_id = getattr(event, "node_id", None)
        if node_id not in ids:
            continue
        if event.type == "node:start":
            starts[node_id].append(index)
        elif event.type in ("node:finish", "node:error", "node:skipped"):
            ends[node_id].append((index, event.type))

    for node in spec.nodes:
        assert len(ends[node.id]) == 1, (node.id, ends[node.id])
        assert len(starts[node.id]) <= 1, (node.id, starts[node.id])
        end_index, end_type = ends[node.id][0]
        if end_type == "node:skipped":
            assert not starts[node.id], f"skipped node {node.id} ran"
            continue
        (start_index,) = starts[node.id]
        assert start_index < end_index
        preds = {e.source for e in spec.edges if e.target == node.id}
        if not preds:
            continue
        if node.join == "all":
            for pred in preds:
                assert ends[pred][0][0] < start_index, (node.id, pred)
        else:
            finished = [ends[p][0][0] for p in preds if ends[p][0][1] == "node:finish"]
            assert finished and min(finished) < start_index, node.id

    error_ids = [r.node_id for r in result.errors]
    assert len(error_ids) == len(set(error_ids))
    assert set(error_ids) <= ids


def check_model(
    spec: DagSpec, result: WorkflowResult, bus: InMemoryEventBus | None, workload: Workload
) -> None:
    """Without a bus, everything but the skip reasons (which only events carry)."""
    expect = predict(spec)
    errors = {r.node_id: r for r in result.errors}
    skips = {e.node_id: e.reason for e in bus.events if e.type == "node:skipped"} if bus else {}
    own_calls: dict[str, list[tuple[int, Any]]] = defaultdict(list)
    for node_id, _activation, attempt, value in workload.calls:
        own_calls[node_id].append((attempt, value))
    context = result.context

    for node in spec.nodes:
        calls = own_calls[node.id]
        attempts = [a for a, _ in calls]
        assert attempts == list(range(1, len(attempts) + 1)), (node.id, attempts)
        assert len(attempts) <= node.max_retries
        exp = expect[node.id]
        if exp.status == "unknown":
            continue
        where = f"{node.id}: expected {exp}"
        if exp.status in ("skipped", "blocked"):
            reason = "dead_path" if exp.status == "skipped" else "upstream_failed"
            assert bus is None or skips.get(node.id) == reason, where
            assert not calls, where
            assert f"_outputs.{node.id}" not in context, where
            assert node.id not in errors, where
            continue
        assert len(attempts) == exp.attempts, (where, attempts)
        if exp.input is not _NO_INPUT:
            assert context.get(f"_inputs.{node.id}", _NO_INPUT) == exp.input, where
            assert all(value == exp.input for _, value in calls), (where, calls)
        if exp.status == "ok":
            assert node.id not in errors, (where, errors.get(node.id))
            assert context[f"_outputs.{node.id}"] == exp.output, where
            assert (f"w_{node.id}" in context) == (exp.via == "self"), where
            assert (f"fbw_{node.id}" in context) == (exp.via == "fb_impl"), where
            if exp.via not in ("self", "fb_impl"):
                assert context[f"_outputs.{exp.via}"] is not None, where
        else:
            record = errors.get(node.id)
            assert record is not None, where
            assert (record.type, record.attempts) == (exp.error_type, exp.attempts), where
            fb_type = record.fallback_error["type"] if record.fallback_error else None
            assert fb_type == exp.fallback_error_type, where
            assert f"_outputs.{node.id}" not in context, where
            assert f"w_{node.id}" not in context, where
            assert f"fbw_{node.id}" not in context, where

    known = [e for e in expect.values() if e.status != "unknown"]
    if any(e.status == "failed" for e in known):
        assert result.status == "failed"
    elif len(known) == len(expect):
        assert result.status == "completed", result.errors
    for stand_in in spec.fallbacks:
        users = [n for n in spec.nodes if n.fallback == stand_in.id]
        if any(expect[n.id].status == "unknown" for n in users):
            continue
        served = any(expect[n.id].via == stand_in.id for n in users)
        assert (f"w_{stand_in.id}" in context) == served, stand_in.id


@settings(max_examples=100, deadline=None)
@given(spec=workflow_dags())
def test_random_acyclic_workflows(spec: DagSpec) -> None:
    result, bus, workload = asyncio.run(execute(spec))
    record_event(f"status: {result.status}")
    for exp in predict(spec).values():
        record_event(f"node outcome: {exp.status}" + (f" via {exp.via}" if exp.via else ""))
    assert bus is not None
    check_invariants(spec, result, bus)
    check_model(spec, result, bus, workload)


@settings(max_examples=50, deadline=None)
@given(spec=workflow_dags())
def test_random_acyclic_workflows_without_listeners(spec: DagSpec) -> None:
    """With nobody listening the engine skips event work and awaits plain async nodes
    through a shorter path; the outcomes must not change."""
    result, _, workload = asyncio.run(execute(spec, listen=False))
    assert result.status in ("completed", "failed")
    assert (result.status == "completed") == (result.errors == [])
    check_model(spec, result, None, workload)


def test_model_sanity_on_a_fixed_diamond() -> None:
    """The reference model itself, on a case worked out by hand."""
    from strategies import EdgeSpec

    spec = DagSpec(
        nodes=(
            NodeSpec("n0", v=4),
            NodeSpec("n1", v=1, fail="always", max_retries=2),
            NodeSpec("n2", v=2),
            NodeSpec("n3", join="any", v=3),
            NodeSpec("n4", v=5, fail="input"),
        ),
        fallbacks=(),
        edges=(
            EdgeSpec("n0", "n1"),
            EdgeSpec("n0", "n2", condition=("gt", 3), transform=("add", 1)),
            EdgeSpec("n1", "n3"),
            EdgeSpec("n2", "n3"),
            EdgeSpec("n2", "n4", transform=("wrap", 0)),
        ),
    )
    expect = predict(spec)
    assert expect["n1"].status == "failed" and expect["n1"].attempts == 2
    assert expect["n2"].input == 5
    assert expect["n3"].status == "unknown"
    assert expect["n4"].input == {"w": 2}
    assert expect["n4"].status == "ok"
    result, bus, workload = asyncio.run(execute(spec))
    assert bus is not None
    check_invariants(spec, result, bus)
    check_model(spec, result, bus, workload)
