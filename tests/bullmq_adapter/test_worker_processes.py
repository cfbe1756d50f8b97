"""Two real worker processes (`flowcraft worker`) and the distributed CLI commands.

~20 chain and diamond runs spread over both workers end exactly as in-process; `start`,
`status`, `resume` and `cancel` work end to end with their exit codes; SIGTERM lets in-flight
activations finish and exits 0. The workers are killed in a finally, whatever happens.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from adapter_support import APPROVAL, adapter, e, n
from bullmq_processes import WorkerProcess as _SharedWorkerProcess
from distributed.test_memory_parity import CASES, comparable, make_registry

from flowcraft_core import FlowRuntime
from flowcraft_core.cli import main

HERE = Path(__file__).parent
TESTS = HERE.parent
NAP = {"id": "nap", "nodes": [n("z", "nap", params={"seconds": 1.0})], "edges": []}
SLOW_CHAIN = {
    "id": "slowchain",
    "nodes": [n("a", "inc"), n("z", "nap", params={"seconds": 1.0}), n("b", "inc")],
    "edges": [e("a", "z"), e("z", "b")],
}
BATCH_CASES = sorted(name for name in CASES if "batch" in name)
BLUEPRINTS = [CASES["chain"][0], CASES["diamond"][0], APPROVAL, NAP, SLOW_CHAIN]
BLUEPRINTS += [CASES[name][0] for name in BATCH_CASES]


class WorkerProcess(_SharedWorkerProcess):
    """A `flowcraft worker` subprocess importing this directory's node modules."""

    def __init__(self, args: list[str], trace: Path) -> None:
        super().__init__(args, trace, HERE)


@pytest.fixture(scope="module")
def blueprint_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("blueprints")
    for bp in BLUEPRINTS:
        (directory / f"{bp['id']}.json").write_text(json.dumps(bp), encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def cluster_prefix() -> str:
    return f"procs{os.getpid()}"


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("trace") / "pids.txt"


@pytest.fixture(scope="module")
def workers(
    redis_url: str, blueprint_dir: Path, cluster_prefix: str, trace_file: Path
) -> Iterator[list[WorkerProcess]]:
    args = [
        "--redis", redis_url,
        "--prefix", cluster_prefix,
        "--registry", "worker_nodes:registry",
        "--blueprints", str(blueprint_dir),
        "--concurrency", "4",
    ]  # fmt: skip
    started: list[WorkerProcess] = []
    try:
        for _ in range(2):
            started.append(WorkerProcess(args, trace_file))
        for worker in started:
            worker.wait_ready()
        yield started
    finally:
        for worker in started:
            worker.kill()


def _cli(
    capsys: pytest.CaptureFixture[str], redis_url: str, prefix: str, bp_dir: Path, *argv: str
) -> tuple[int, str, str]:
    code = main([*argv, "--redis", redis_url, "--prefix", prefix, "--blueprints", str(bp_dir)])
    out, err = capsys.readouterr()
    return code, out, err


def test_runs_spread_over_two_worker_processes_match_in_process(
    workers: list[WorkerProcess], redis_url: str, cluster_prefix: str, trace_file: Path
) -> None:
    async def scenario() -> None:
        registry = make_registry()
        runtime = FlowRuntime(registry=registry, blueprints=BLUEPRINTS)
        starts = [
            (bp_id, {"_inputs.a": i}, f"r{bp_id}{i}")
            for i in range(10)
            for bp_id in ("chain", "diamond")
        ]
        async with adapter(redis_url, cluster_prefix, blueprints=BLUEPRINTS, consume=False) as a:
            run_ids = [await a.start_run(b, ctx, run_id=rid) for b, ctx, rid in starts]
            results = [await a.wait_for_result(rid, timeout_s=30) for rid in run_ids]
        for (bp_id, ctx, rid), result in zip(starts, results, strict=True):
            local = await runtime.run(bp_id, ctx, run_id=rid)
            assert result.status == "completed", result.errors
            assert comparable(result) == comparable(local), rid

    asyncio.run(scenario())
    # Both processes ran nodes.
    pids = set(trace_file.read_text().split())
    assert pids == {str(w.proc.pid) for w in workers}, pids


def test_batches_over_two_worker_processes_match_in_process(
    workers: list[WorkerProcess], redis_url: str, cluster_prefix: str
) -> None:
    """Every batch parity case (items are jobs any worker may take), three runs each."""

    async def scenario() -> None:
        registry = make_registry()
        starts = [
            (name, f"rb-{name}-{i}".replace("_", "-")) for name in BATCH_CASES for i in range(3)
        ]
        async with adapter(redis_url, cluster_prefix, blueprints=BLUEPRINTS, consume=False) as a:
            for name, run_id in starts:
                blueprint, context = CASES[name]
                await a.start_run(blueprint["id"], context, run_id=run_id)
            results = [await a.wait_for_result(run_id, timeout_s=60) for _, run_id in starts]
        for (name, run_id), result in zip(starts, results, strict=True):
            blueprint, context = CASES[name]
            runtime = FlowRuntime(registry=registry, blueprints=[blueprint])
            local = await runtime.run(blueprint["id"], context, run_id=run_id)
            assert comparable(result) == comparable(local), run_id

    asyncio.run(scenario())


def test_cli_client_commands(
    workers: list[WorkerProcess],
    redis_url: str,
    cluster_prefix: str,
    blueprint_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def cli(*argv: str) -> tuple[int, str, str]:
        return _cli(capsys, redis_url, cluster_prefix, blueprint_dir, *argv)

    code, out, err = cli("start", "diamond", "--context", '{"_inputs.a": 4}', "--wait", "--json")
    assert code == 0, err
    assert json.loads(out)["context"]["_outputs.d"] == 21  # a: 5, b: 6, c: 15

    code, out, err = cli("start", "approval", "--run-id", "cli-approval")
    assert (code, out.strip()) == (0, "cli-approval"), err
    for _ in range(200):
        code, out, err = cli("status", "cli-approval", "--json")
        if json.loads(out)["status"] == "awaiting":
            break
        time.sleep(0.05)
    assert code == 0 and json.loads(out)["context"]["_awaitingNodeIds"] == ["ask"], out
    code, out, _ = cli("status", "cli-approval")
    assert "status:    awaiting" in out and "waiting:" in out and "ask" in out

    code, out, err = cli("resume", "cli-approval", "--action", "approve", "--output", "7")
    assert (code, out.strip()) == (0, "resumed"), err
    for _ in range(200):
        code, out, err = cli("status", "cli-approval", "--json")
        if json.loads(out)["status"] == "completed":
            break
        time.sleep(0.05)
    assert json.loads(out)["context"]["_outputs.yes"] == 8

    code, out, err = cli("resume", "cli-approval", "--action", "approve")
    assert code == 2 and "not waiting" in err

    code, out, err = cli("start", "approval", "--wait", "--timeout", "20")
    assert code == 3 and "status:    awaiting" in out, err
    run_id = out.split("run:", 1)[1].split()[0]
    code, out, err = cli("cancel", run_id)
    assert (code, out.strip()) == (0, "cancelled"), err
    code, out, err = cli("cancel", run_id)
    assert code == 1 and "already finished" in err

    code, out, err = cli("start", "slowchain", "--wait", "--timeout", "0.3")
    assert code == 5 and "still running after 0.3s" in err

    code, out, err = cli("status", "no-such-run")
    assert code == 2 and "not found" in err
    code, out, err = cli("start", "no-such-blueprint")
    assert code == 2 and "no-such-blueprint" in err

    code, out, err = _cli(capsys, "redis://127.0.0.1:1/0", "x", blueprint_dir, "status", "r")
    assert code == 5 and "Redis at redis://127.0.0.1:1/0" in err


def test_sigterm_finishes_in_flight_activations_and_exits_0(
    workers: list[WorkerProcess], redis_url: str, cluster_prefix: str
) -> None:
    async def start() -> str:
        async with adapter(redis_url, cluster_prefix, blueprints=BLUEPRINTS, consume=False) as a:
            run_id = await a.start_run("nap")
            for _ in range(100):  # until a worker holds the job
                client = redis.Redis.from_url(redis_url, decode_responses=True)
                try:
                    active = f"{cluster_prefix}:flowcraft:active"
                    if await client.lpos(active, f"{run_id}-z-0") is not None:
                        return run_id
                finally:
                    await client.aclose()
                await asyncio.sleep(0.02)
            raise AssertionError("no worker picked up the nap job")

    run_id = asyncio.run(start())
    for worker in workers:
        worker.proc.send_signal(signal.SIGTERM)
    for worker in workers:
        assert worker.wait(timeout=20) == 0, worker.stderr
        assert "flowcraft worker: stopped" in worker.stderr, worker.stderr

    async def result() -> Any:
        async with adapter(redis_url, cluster_prefix, blueprints=BLUEPRINTS, consume=False) as a:
            return await a.get_result(run_id)

    finished = asyncio.run(result())
    assert finished is not None and finished.status == "completed"
    assert finished.context["_outputs.z"] == "rested"


def test_worker_input_and_infrastructure_errors(
    blueprint_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["worker", "--redis", "redis://127.0.0.1:1/0", "--registry", "worker_nodes"])
    _, err = capsys.readouterr()
    assert code == 2 and "worker needs --blueprints DIR" in err
    code = main(
        ["worker", "--redis", "redis://:pw@127.0.0.1:1/0", "--blueprints", str(blueprint_dir)]
        + ["--connect-timeout", "0"]
    )
    _, err = capsys.readouterr()
    assert code == 5 and "Redis at redis://:***@127.0.0.1:1/0" in err and "pw@" not in err
