"""Node jobs per second through BullMQAdapter: `chainN` x R runs, one in-process worker.

Not a test (pytest does not collect it). Starts its own redis-server on a free port:

    .venv/bin/python tests/bullmq_adapter/bench_throughput.py [--runs 200] [--length 10]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parent.parent)]

from adapter_support import adapter, chain  # noqa: E402
from distributed.test_memory_parity import make_registry  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def bench(
    url: str, runs: int, length: int, concurrency: int, prefill: bool
) -> dict[str, Any]:
    """Start `runs` runs and wait for all. With `prefill`, every run is enqueued before the
    worker starts, so the time is the worker's alone (no start_run or polling competing)."""
    bp = chain(length)
    prefix = f"bench{time.monotonic_ns()}"
    async with adapter(url, prefix, blueprints=[bp], consume=False) as client:
        run_ids: list[str] = []
        async with adapter(
            url, prefix, registry=make_registry(), blueprints=[bp], concurrency=concurrency,
            consume=not prefill,
        ) as worker:  # fmt: skip
            started = time.perf_counter()
            run_ids = [await client.start_run("chain") for _ in range(runs)]
            enqueued = time.perf_counter() - started
            if prefill:
                started = time.perf_counter()
                await worker.start()
            results = [await client.wait_for_result(r, timeout_s=600) for r in run_ids]
            elapsed = time.perf_counter() - started
    assert all(r.status == "completed" for r in results)
    assert all(r.context[f"_outputs.n{length - 1}"] == length for r in results)
    jobs = runs * length
    return {
        "mode": "prefilled queue, worker alone" if prefill else "start + run + wait together",
        "runs": runs,
        "nodes_per_run": length,
        "seconds": round(elapsed, 3),
        "start_run_seconds": round(enqueued, 3),
        "node_jobs_per_s": round(jobs / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--length", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--prefill", action="store_true", help="enqueue all runs first")
    args = parser.parse_args()
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="flowcraft-bench-")
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(0.3)
        for _ in range(args.repeat):
            print(
                asyncio.run(
                    bench(
                        f"redis://127.0.0.1:{port}/0",
                        args.runs,
                        args.length,
                        args.concurrency,
                        args.prefill,
                    )
                )
            )
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
