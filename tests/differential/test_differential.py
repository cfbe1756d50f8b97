"""Differential property test (issue 7, SPEC 9.1): each drawn blueprint runs in-process
(`FlowRuntime`) and distributed (`BullMQAdapter` on the real redis-server); status, errors (node
id, iteration, type, message, attempts) and the final context (outputs included) must be equal.

Workers load their blueprints when they start, so the two distributed flavours are:

* `test_same_outcome_in_process_and_on_bullmq`: hypothesis draws (and shrinks) freely; each
  example gets its own `BullMQAdapter` consuming in this process (real BullMQ, real Redis,
  real Lua), constructed with the drawn blueprint and a drawn `retry_mode` (SPEC 9.5).
* `test_same_outcome_on_worker_processes`: a batch is drawn once per module, written to a
  blueprints dir, and three real `flowcraft worker` subprocesses started once run all of it.
  A mismatch prints the spec, to paste into an `@example` of the first test.

`FLOWCRAFT_DIFF_EXAMPLES` (default 25) and `FLOWCRAFT_DIFF_PROCESS_EXAMPLES` (default 12) set
the counts; the example database is off (`database=None`), so nothing is written to the repo.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bullmq_processes import WorkerProcess, adapter
from diff_blueprints import QUEUES, DiffSpec, diff_specs
from diff_nodes import registry
from distributed.test_memory_parity import comparable
from hypothesis import Phase, given, settings
from hypothesis import event as record_event
from hypothesis import strategies as st

from flowcraft_core import FlowRuntime, WorkflowResult

HERE = Path(__file__).resolve().parent
EXAMPLES = int(os.environ.get("FLOWCRAFT_DIFF_EXAMPLES", "25"))
PROCESS_EXAMPLES = int(os.environ.get("FLOWCRAFT_DIFF_PROCESS_EXAMPLES", "12"))
RESULT_TIMEOUT_S = 60
#: pytest-timeout's 120 s grows with the example counts, so a long run needs only the env vars.
TIMEOUT_S = max(120, 2 * EXAMPLES)
PROCESS_TIMEOUT_S = max(120, 60 + 2 * PROCESS_EXAMPLES)


async def in_process(spec: DiffSpec, blueprint: dict[str, Any], run_id: str) -> WorkflowResult:
    runtime = FlowRuntime(registry=registry, blueprints=[blueprint])
    return await runtime.run(
        blueprint["id"], dict(spec.context), run_id=run_id, concurrency=spec.dag.concurrency
    )


def assert_same(spec: DiffSpec, local: WorkflowResult, distributed: WorkflowResult) -> None:
    racy = spec.racy_keys()
    assert comparable(distributed, racy) == comparable(local, racy), (
        f"in-process and distributed differ for {spec!r}"
    )


@pytest.mark.timeout(TIMEOUT_S)
@settings(max_examples=EXAMPLES, database=None)
@given(spec=diff_specs(), retry_mode=st.sampled_from(["in_process", "queue"]))
async def test_same_outcome_in_process_and_on_bullmq(
    spec: DiffSpec, retry_mode: str, redis_url: str
) -> None:
    blueprint = spec.blueprint()
    local = await in_process(spec, blueprint, "d1")
    record_event(f"status: {local.status}")
    record_event(f"loops: {len(spec.loops)}")
    prefix = "diff" + uuid.uuid4().hex[:10]
    async with adapter(
        redis_url,
        prefix,
        registry=registry,
        blueprints=[blueprint],
        retry_mode=retry_mode,
        queues=["flowcraft", *QUEUES],
    ) as a:
        run_id = await a.start_run(blueprint["id"], dict(spec.context), run_id="d1")
        distributed = await a.wait_for_result(run_id, timeout_s=RESULT_TIMEOUT_S)
    assert_same(spec, local, distributed)


def draw_batch(count: int) -> list[DiffSpec]:
    """`count` specs drawn by hypothesis (generation only: nothing to shrink yet)."""
    batch: list[DiffSpec] = []

    @settings(max_examples=count, database=None, phases=[Phase.generate])
    @given(spec=diff_specs())
    def collect(spec: DiffSpec) -> None:
        batch.append(spec)

    collect()
    return batch[:count]


@pytest.fixture(scope="module")
def batch() -> list[DiffSpec]:
    return draw_batch(PROCESS_EXAMPLES)


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("diff-trace") / "pids.txt"


@pytest.fixture(scope="module")
def worker_prefix() -> str:
    return "diffp" + uuid.uuid4().hex[:10]


@pytest.fixture(scope="module")
def workers(
    redis_url: str,
    batch: list[DiffSpec],
    worker_prefix: str,
    trace_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[WorkerProcess]]:
    """Three `flowcraft worker` processes knowing every blueprint of the batch."""
    directory = tmp_path_factory.mktemp("diff-blueprints")
    for index, spec in enumerate(batch):
        blueprint = spec.blueprint(f"diff-{index}")
        (directory / f"diff-{index}.json").write_text(json.dumps(blueprint), encoding="utf-8")
    args = [
        "--redis", redis_url,
        "--prefix", worker_prefix,
        "--registry", "diff_nodes:registry",
        "--blueprints", str(directory),
        "--concurrency", "4",
    ]  # fmt: skip
    # Per-node queues (docs/scheduling.md): each worker consumes two of the three queues, so
    # a run's jobs move between processes as its nodes name their queues.
    started: list[WorkerProcess] = []
    try:
        for queues in ("flowcraft,q1", "q1,q2", "q2,flowcraft"):
            started.append(WorkerProcess([*args, "--queue", queues], trace_file, HERE))
        for worker in started:
            worker.wait_ready()
        yield started
    finally:
        for worker in started:
            worker.kill()


@pytest.mark.timeout(PROCESS_TIMEOUT_S)
def test_same_outcome_on_worker_processes(
    batch: list[DiffSpec],
    workers: list[WorkerProcess],
    redis_url: str,
    worker_prefix: str,
    trace_file: Path,
) -> None:
    blueprints = [spec.blueprint(f"diff-{i}") for i, spec in enumerate(batch)]

    async def scenario() -> list[tuple[WorkflowResult, WorkflowResult]]:
        pairs = []
        async with adapter(redis_url, worker_prefix, blueprints=blueprints, consume=False) as a:
            run_ids = [
                await a.start_run(bp["id"], dict(spec.context), run_id=f"p{i}")
                for i, (spec, bp) in enumerate(zip(batch, blueprints, strict=True))
            ]
            results = await asyncio.gather(
                *(a.wait_for_result(rid, timeout_s=RESULT_TIMEOUT_S) for rid in run_ids)
            )
        for i, (spec, bp) in enumerate(zip(batch, blueprints, strict=True)):
            pairs.append((await in_process(spec, bp, f"p{i}"), results[i]))
        return pairs

    pairs = asyncio.run(scenario())
    assert len(pairs) == len(batch) == PROCESS_EXAMPLES
    for spec, (local, distributed) in zip(batch, pairs, strict=True):
        assert_same(spec, local, distributed)
    for worker in workers:
        assert worker.proc.poll() is None, worker.stderr
    # The runs interleaved over the processes (not all on one).
    pids = set(trace_file.read_text().split())
    assert len(pids) >= 2 and pids <= {str(w.proc.pid) for w in workers}, pids
