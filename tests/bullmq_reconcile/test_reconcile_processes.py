"""Real `flowcraft worker` processes: a worker SIGKILLed in the middle of a slow node of a chain
(its job is redelivered to a second process, which finishes the run once, as in-process); and
the reconcile job scheduler, whose one-second ticks two workers share (each tick is run by
exactly one of them) and which heals a run whose job was lost; `reconcile --once` prints the
stats. Every process is killed in a finally, whatever happens.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bullmq_processes import WorkerProcess as _SharedWorkerProcess
from distributed.test_memory_parity import CASES, comparable
from reconcile_nodes import registry
from reconcile_support import adapter, age
from redis.asyncio import Redis

from flowcraft_bullmq import create_reconciler
from flowcraft_core import FlowRuntime
from flowcraft_core.distributed import Job

HERE = Path(__file__).parent
TESTS = HERE.parent
CHAIN, _ = CASES["chain"]
SLOW_CHAIN: dict[str, Any] = {
    "id": "slowchain",
    "nodes": [
        {"id": "a", "uses": "inc"},
        {"id": "z", "uses": "nap", "params": {"seconds": 1.5}},
        {"id": "b", "uses": "inc"},
    ],
    "edges": [{"source": "a", "target": "z"}, {"source": "z", "target": "b"}],
}
BLUEPRINTS = [CHAIN, SLOW_CHAIN]
IGNORED = frozenset({"_executionId"})
#: Fast recovery of a dead worker's job: back within ~lock + 2 x stalled interval.
FAST = ["--lock-duration", "2", "--stalled-interval", "1"]


class WorkerProcess(_SharedWorkerProcess):
    """A `flowcraft worker` subprocess importing this directory's node modules."""

    def __init__(self, args: list[str], trace: Path) -> None:
        super().__init__(args, trace, HERE)


@pytest.fixture
def blueprint_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "blueprints"
    directory.mkdir()
    for bp in BLUEPRINTS:
        (directory / f"{bp['id']}.json").write_text(json.dumps(bp), encoding="utf-8")
    return directory


@pytest.fixture
def spawn(redis_url: str, prefix: str, blueprint_dir: Path, tmp_path: Path) -> Iterator[Any]:
    """Starts `flowcraft worker` processes on the test's prefix; all killed at the end."""
    started: list[WorkerProcess] = []

    def start(*extra: str) -> WorkerProcess:
        args = [
            "--redis", redis_url,
            "--prefix", prefix,
            "--registry", "reconcile_nodes:registry",
            "--blueprints", str(blueprint_dir),
            "--concurrency", "2",
            *extra,
        ]  # fmt: skip
        worker = WorkerProcess(args, tmp_path / "trace.txt")
        started.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.kill()


def _trace(tmp_path: Path) -> list[tuple[str, str]]:
    path = tmp_path / "trace.txt"
    if not path.exists():
        return []
    return [tuple(line.split()) for line in path.read_text().splitlines()]  # type: ignore[misc]


async def _in_process(blueprint_id: str) -> Any:
    runtime = FlowRuntime(registry=registry, blueprints=BLUEPRINTS)
    return comparable(await runtime.run(blueprint_id), IGNORED)


async def test_a_sigkilled_worker_s_activation_is_finished_once_by_another(
    redis_url: str, prefix: str, client: Redis, spawn: Any, tmp_path: Path
) -> None:
    doomed = spawn(*FAST)
    await doomed.ready()
    async with adapter(redis_url, prefix, blueprints=BLUEPRINTS, consume=False) as a:
        run_id = await a.start_run("slowchain")
        z = Job(run_id, "z", ()).job_id
        deadline = time.monotonic() + 20
        while (doomed.proc.pid, z) not in {(int(p), i) for p, i in _trace(tmp_path)}:
            assert time.monotonic() < deadline, doomed.stderr
            await asyncio.sleep(0.02)
        doomed.kill()  # SIGKILL in the middle of z's 1.5 s
        killed_at = time.monotonic()
        survivor = spawn(*FAST)
        await survivor.ready()
        result = await a.wait_for_result(run_id, timeout_s=30)
        recovered_in = time.monotonic() - killed_at
    assert comparable(result, IGNORED) == await _in_process("slowchain")
    runs = Counter(activation for _, activation in _trace(tmp_path))
    assert runs == Counter({f"{run_id}-a-0": 1, z: 2, f"{run_id}-b-0": 1})  # z at least once
    assert {int(pid) for pid, activation in _trace(tmp_path) if activation == z} == {
        doomed.proc.pid,
        survivor.proc.pid,
    }
    # One completion per activation: outputs written once, nothing left owed.
    acts = await client.hkeys(f"{prefix}:{{{run_id}}}:acts")
    assert sorted(acts) == ["a@", "b@", "z@"]
    assert await client.hlen(f"{prefix}:{{{run_id}}}:frontier") == 0
    assert recovered_in < 15


def _ticks(workers: list[WorkerProcess]) -> list[tuple[int, str, int]]:
    """(worker index, tick job id, tick time ms) of every reconcile tick the workers logged."""
    found = []
    for index, worker in enumerate(workers):
        for line in list(worker.lines):
            match = re.search(r"reconcile tick (\S+:(\d+)): ReconcileStats", line)
            if match:
                found.append((index, match.group(1), int(match.group(2))))
    return found


def _cli(redis_url: str, prefix: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowcraft_core.cli", "reconcile", *argv]
        + ["--redis", redis_url, "--prefix", prefix],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(HERE)])),
    )


async def test_the_cron_schedule_ticks_once_per_interval_on_one_of_two_workers(
    redis_url: str, prefix: str, client: Redis, spawn: Any, blueprint_dir: Path
) -> None:
    async with adapter(redis_url, prefix, blueprints=BLUEPRINTS, consume=False) as a:
        # A run whose entry job was lost before any worker took it.
        await a.start_run("chain", run_id="orphan")
        assert await a._job_queue_or_fail().queue.remove(Job("orphan", "a", ()).job_id) == 1
        await age(client, prefix, "orphan")
        scheduled = _cli(redis_url, prefix, "--cron", "*/1 * * * * *", "--threshold", "60")
        assert scheduled.returncode == 0, scheduled.stderr
        assert "reconcile scheduled" in scheduled.stdout
        workers = [spawn("--log-level", "INFO"), spawn("--log-level", "INFO")]
        await asyncio.gather(*(worker.ready() for worker in workers))
        result = await a.wait_for_result("orphan", timeout_s=20)  # healed by a tick
        assert comparable(result, IGNORED) == await _in_process("chain")
        deadline = time.monotonic() + 20
        while len(_ticks(workers)) < 4:
            assert time.monotonic() < deadline, "\n".join(w.stderr for w in workers)
            await asyncio.sleep(0.1)
        reconciler = create_reconciler(adapter=a, redis=client, stalled_threshold_s=60)
        assert await reconciler.unschedule()
        ticks = _ticks(workers)
    ids = [tick_id for _, tick_id, _ in ticks]
    assert len(ids) == len(set(ids)), ticks  # each tick ran on exactly one worker
    times = sorted(ms for _, _, ms in ticks)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(gap >= 1000 and gap % 1000 == 0 for gap in gaps), times  # once per interval
    healed = [w.stderr for w in workers if "1 runs stalled, 1 reconciled, 0 failed" in w.stderr]
    assert len(healed) == 1
    # The command line, once: nothing is stalled any more.
    once = _cli(redis_url, prefix, "--once", "--threshold", "60")
    assert once.returncode == 0, once.stderr
    assert once.stdout.splitlines() == [
        "scanned_keys: 1",
        "stalled_runs: 0",
        "reconciled_runs: 0",
        "failed_runs: 0",
    ]
