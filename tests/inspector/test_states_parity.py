"""`inspect_run` derives each activation's state from the run's recorded state (there is no
status field): on every acceptance blueprint of the parity suite it must agree with what the
in-process engine reports through its events for the same run, and so on random blueprints
(failures, retries, fallbacks, actions)."""

from __future__ import annotations

import dataclasses
import os
import uuid
from typing import Any

import pytest
from bullmq_processes import adapter
from distributed.test_memory_parity import CASES, make_registry
from hypothesis import given, settings
from runtime.test_random_dags import Workload
from strategies import workflow_dags

from flowcraft_core import FlowRuntime

#: In-process events -> the inspector's activation states.
EVENT_STATES = {
    "node:finish": "done",
    "node:error": "failed",
    "node:skipped": "skipped",
    "node:awaiting": "waiting",
}


class Recorder:
    def __init__(self) -> None:
        self.states: dict[tuple[str, tuple[int, ...]], str] = {}

    def emit(self, event: Any) -> None:
        state = EVENT_STATES.get(event.type)
        if state is not None:
            self.states[(event.node_id, tuple(event.iteration))] = state


@pytest.mark.parametrize("name", sorted(CASES))
async def test_activation_states_match_the_in_process_events(
    name: str, redis_url: str, prefix: str
) -> None:
    blueprint, context = CASES[name]
    recorder = Recorder()
    runtime = FlowRuntime(registry=make_registry(), blueprints=[blueprint], event_bus=recorder)
    local = await runtime.run(blueprint["id"], context, run_id="p1")
    async with adapter(redis_url, prefix, blueprints=[blueprint], registry=make_registry()) as a:
        await a.start_run(blueprint["id"], context, run_id="p1")
        distributed = await a.wait_for_result("p1", timeout_s=20)
        run = await a.inspect_run("p1")
    assert distributed.status == local.status == run.summary.status
    seen = {(x.node_id, x.iteration): x.state for x in run.activations}
    assert seen == recorder.states


@settings(max_examples=int(os.environ.get("FLOWCRAFT_INSPECT_EXAMPLES", "12")), deadline=None)
@given(workflow_dags(max_nodes=6))
async def test_random_blueprints_states_match(redis_url: str, spec: Any) -> None:
    # `all` joins only: which predecessor fires an `any` join is timing (SPEC 9.1).
    spec = dataclasses.replace(
        spec, nodes=tuple(dataclasses.replace(node, join="all") for node in spec.nodes)
    )
    blueprint = spec.blueprint()
    recorder = Recorder()
    runtime = FlowRuntime(
        registry=Workload().registry(), blueprints=[blueprint], event_bus=recorder
    )
    local = await runtime.run(blueprint["id"], run_id="p1")
    prefix = "h" + uuid.uuid4().hex[:10]
    registry = Workload().registry()
    async with adapter(redis_url, prefix, blueprints=[blueprint], registry=registry) as a:
        await a.start_run(blueprint["id"], run_id="p1")
        distributed = await a.wait_for_result("p1", timeout_s=20)
        run = await a.inspect_run("p1")
    assert distributed.status == local.status
    assert {(x.node_id, x.iteration): x.state for x in run.activations} == recorder.states
