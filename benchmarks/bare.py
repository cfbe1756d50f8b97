"""The baseline: a bare BullMQ `Worker` draining empty jobs, in its own process.

`python -m benchmarks.bare --redis URL --queue Q --prefix P --jobs N --concurrency C` expects
the N jobs to be in the queue already (the benchmark adds them) and prints
`drained N jobs in S s, cpu C s` with S from the first job's start to the last job's end (so
process start-up and imports are not counted) and C the process's CPU time over the same
span. The worker options are those `flowcraft worker` uses (lock, stalled interval,
retention), so the difference to flowcraft is flowcraft's own work.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import warnings
from typing import Any

from bullmq import Worker

from flowcraft_bullmq.connection import RedisConnector
from flowcraft_bullmq.queue import DEFAULT_RETENTION


async def drain(
    url: str, queue: str, prefix: str, jobs: int, concurrency: int
) -> tuple[float, float]:
    done = asyncio.Event()
    count = 0
    first = 0.0
    first_cpu = 0.0

    async def process(job: Any, token: str) -> None:
        nonlocal count, first, first_cpu
        if count == 0:
            first = time.perf_counter()
            first_cpu = time.process_time()
        count += 1
        if count >= jobs:
            done.set()

    worker = Worker(
        queue,
        process,
        {
            "connection": RedisConnector(url).new_client(),
            "prefix": prefix,
            "concurrency": concurrency,
            "autorun": False,
            "lockDuration": 10_000,
            "stalledInterval": 5_000,
            "maxStalledCount": 3,
            **DEFAULT_RETENTION,
        },
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        await worker.blockingRedisConnection.getRedisVersion()  # as BullMQAdapter.start (B2)
    print("bare worker: consuming", flush=True)
    task = asyncio.create_task(worker.run())
    await done.wait()
    elapsed = time.perf_counter() - first
    cpu = time.process_time() - first_cpu
    await worker.close()
    await asyncio.gather(task, return_exceptions=True)
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    args = parser.parse_args()
    elapsed, cpu = asyncio.run(
        drain(args.redis, args.queue, args.prefix, args.jobs, args.concurrency)
    )
    print(f"drained {args.jobs} jobs in {elapsed:.6f} s, cpu {cpu:.6f} s", flush=True)


if __name__ == "__main__":
    main()
