"""The baseline: a bare BullMQ `Worker` draining empty jobs, in its own process.

`python -m benchmarks.bare --redis URL --queue Q --prefix P --jobs N --concurrency C` expects
the N jobs to be in the queue already (the benchmark adds them) and prints
`drained N jobs in S s, cpu C s` with S from the first job's start to the last job's end (so
process start-up and imports are not counted) and C the process's CPU time over the same
span.

With `--shared`, N is the total that several such processes drain together: each stops once
it has seen no job for `IDLE_S` and prints `shared K jobs, first F, last L, cpu C` (its own
count, the wall-clock times of its first job's start and last job's end, its CPU time between
them); the benchmark adds the counts and takes the window from the earliest F to the latest L.

The worker options are those `flowcraft worker` uses (lock, stalled interval, retention), so
the difference to flowcraft is flowcraft's own work.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
import warnings
from typing import Any

from bullmq import Worker

from flowcraft_bullmq.connection import RedisConnector
from flowcraft_bullmq.queue import DEFAULT_RETENTION

#: How long a `--shared` process waits without a job before it reports (the queue is drained).
IDLE_S = 0.5


async def drain(
    url: str, queue: str, prefix: str, jobs: int, concurrency: int, shared: bool = False
) -> None:
    """Run jobs until `jobs` ran here (or, `shared`, until none came for IDLE_S), then print
    the line the benchmark reads. `shared` times are `time.time()`, comparable across
    processes."""
    clock = time.time if shared else time.perf_counter
    done = asyncio.Event()
    busy = asyncio.Event()  # set by every job (`shared`: idle once it stays clear IDLE_S)
    count = 0
    first = last = 0.0
    first_cpu = last_cpu = 0.0

    async def process(job: Any, token: str) -> None:
        nonlocal count, first, first_cpu, last, last_cpu
        if count == 0:
            first = clock()
            first_cpu = time.process_time()
        count += 1
        last, last_cpu = clock(), time.process_time()
        busy.set()
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
    if shared:  # the others take jobs too: drained once none came for IDLE_S
        await busy.wait()
        while busy.is_set():
            busy.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(busy.wait(), IDLE_S)
    else:
        await done.wait()
        last, last_cpu = clock(), time.process_time()
    cpu = last_cpu - first_cpu
    # Reported before close(), which may wait out the worker's blocking fetch.
    if shared:
        print(f"shared {count} jobs, first {first:.6f}, last {last:.6f}, cpu {cpu:.6f}", flush=True)
    else:
        print(f"drained {count} jobs in {last - first:.6f} s, cpu {cpu:.6f} s", flush=True)
    await worker.close()
    await asyncio.gather(task, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--shared", action="store_true", help="drain with other processes")
    args = parser.parse_args()
    asyncio.run(
        drain(args.redis, args.queue, args.prefix, args.jobs, args.concurrency, args.shared)
    )


if __name__ == "__main__":
    main()
