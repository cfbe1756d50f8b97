"""Hypothesis: a random acyclic run in which random nodes fail once, retried from its failed
nodes until it completes (LocalCluster, several consumers, so a join may be blocked while
another predecessor still runs), ends exactly as the same run without failures in-process,
and no node that succeeded ever runs again."""

from __future__ import annotations

import uuid
from typing import Any

import control_nodes as nodes
from bullmq_processes import adapter
from control_nodes import e, n, registry
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import acyclic_edges
from test_run_control import comparable

from flowcraft_core import FlowRuntime
from flowcraft_core.distributed import LocalCluster

#: (blueprint, nodes failing once, seconds each node takes)
Case = tuple[dict[str, Any], set[str], dict[str, float]]


@st.composite
def failing_dags(draw: st.DrawFn) -> Case:
    size = draw(st.integers(1, 7))
    pairs = sorted(set(draw(acyclic_edges(size))))
    doc = {
        "id": "random",
        "nodes": [n(f"n{i}") for i in range(size)],
        "edges": [e(f"n{s}", f"n{t}") for s, t in pairs],
    }
    failing = set(draw(st.lists(st.sampled_from([f"n{i}" for i in range(size)]), max_size=3)))
    delays = {f"n{i}": draw(st.sampled_from([0.0, 0.0, 0.003, 0.01])) for i in range(size)}
    return doc, failing, delays


@settings(max_examples=40, deadline=None)
@given(failing_dags(), st.integers(1, 3))
async def test_retrying_until_completed_equals_a_run_without_failures(
    case: Case, workers: int
) -> None:
    doc, failing, delays = case
    nodes.reset()
    expected = comparable(await FlowRuntime(registry=registry).run(doc, {}, run_id="r"))
    nodes.reset()
    nodes.failing.update(dict.fromkeys(failing, 1))
    nodes.delays.update(delays)
    cluster = LocalCluster(registry=registry, blueprints=[doc], workers=workers)
    result = await cluster.run("random", {}, run_id="r")
    retries = 0
    while result.status == "failed":
        retries += 1
        assert retries <= len(failing)
        await cluster.retry_run("r")
        await cluster.drain()
        result = await cluster.result("r")
    assert comparable(result) == expected
    for node in doc["nodes"]:
        ran = nodes.calls[f"r-{node['id']}-0"]
        assert ran == (2 if node["id"] in failing else 1), (node["id"], failing)
    assert (retries > 0) == bool(failing)


@settings(max_examples=40, deadline=None)
@given(failing_dags())
async def test_the_same_on_redis(redis_url: str, case: Case) -> None:
    """The rewind script (flowcraft_bullmq/control.py) against the in-memory reference."""
    doc, failing, delays = case
    nodes.reset()
    expected = comparable(await FlowRuntime(registry=registry).run(doc, {}, run_id="r"))
    nodes.reset()
    nodes.failing.update(dict.fromkeys(failing, 1))
    nodes.delays.update(delays)
    prefix = "rp" + uuid.uuid4().hex[:10]
    async with adapter(redis_url, prefix, blueprints=[doc], registry=registry) as a:
        await a.start_run("random", {}, run_id="r")
        result = await a.wait_for_result("r", timeout_s=20)
        for _ in range(len(failing)):
            if result.status != "failed":
                break
            await a.retry_run("r")
            result = await a.wait_for_result("r", timeout_s=20)
    assert comparable(result) == expected
    for node in doc["nodes"]:
        assert nodes.calls[f"r-{node['id']}-0"] == (2 if node["id"] in failing else 1)
