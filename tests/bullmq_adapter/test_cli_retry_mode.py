"""`flowcraft worker --retry-mode queue` (and `start --retry-mode queue`, whose entry jobs get
the node's attempts): BullMQ runs a node's retries, so the job of a node that fails its first
attempt is attempted twice by BullMQ; with `in_process` (the default) it completes at its first
BullMQ attempt. The node's own attempt numbers and the result are the same in both modes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from adapter_support import adapter, n
from bullmq_processes import worker_processes

from flowcraft_core.cli import main

HERE = Path(__file__).parent
FLAKY = {
    "id": "flaky",
    "nodes": [n("f", "flaky", config={"maxRetries": 3, "retryDelay": 50})],
    "edges": [],
}


@pytest.mark.parametrize(("mode", "bullmq_attempts"), [("queue", 2), ("in_process", 1)])
def test_worker_retry_mode(
    tmp_path: Path,
    redis_url: str,
    prefix: str,
    capsys: pytest.CaptureFixture[str],
    mode: str,
    bullmq_attempts: int,
) -> None:
    (tmp_path / "flaky.json").write_text(json.dumps(FLAKY), encoding="utf-8")
    common = ["--redis", redis_url, "--prefix", prefix, "--blueprints", str(tmp_path)]
    worker_args = [*common, "--registry", "retry_nodes:registry", "--retry-mode", mode]
    worker_args += ["--progress-interval", "0.5"]  # accepted (test_progress.py: its effect)
    with worker_processes(1, worker_args, tmp_path / "trace", HERE) as [worker]:
        argv = ["start", "flaky", "--run-id", "r1", "--wait", "--timeout", "30", "--json"]
        code = main([*argv, *common, "--retry-mode", mode])
        out = capsys.readouterr().out
        assert code == 0, worker.stderr
    result = json.loads(out)
    assert (result["status"], result["context"]["_outputs.f"]) == ("completed", 2)

    async def attempts_made() -> int:
        async with adapter(redis_url, prefix, blueprints=[FLAKY], consume=False) as a:
            job = await a._job_queue_or_fail().queue.getJob("r1-f-0")
            return int(job.attemptsMade)

    assert asyncio.run(attempts_made()) == bullmq_attempts
