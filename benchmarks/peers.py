"""Peer engines on the same Redis: Dramatiq and Celery running chain10 and diamond8.

Each peer's workers run in their own process group with the peer's usual worker command;
runs are sent from this process, timed from the first send until a counter the last node of
every run INCRs reaches the number of runs. A peer whose package is not importable is skipped
with a note (`pip install -e '.[bench]'` installs both).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from .distributed import Measured, Sizes, median
from .infra import Processes, RedisStats


@dataclass(frozen=True)
class Peer:
    name: str
    package: str
    module: str
    argv: tuple[str, ...]
    ready: str  # a line each worker process prints when it consumes
    ready_count: int
    procs: str  # how the workers are counted in the table


PEERS = (
    Peer(
        "dramatiq",
        "dramatiq",
        "benchmarks.peer_dramatiq",
        # Dramatiq's defaults: one process per core (2 here), 8 threads each.
        ("-m", "dramatiq", "benchmarks.peer_dramatiq", "--processes", "2", "--threads", "8"),
        "Worker process is ready for action.",
        2,
        "2x8",
    ),
    Peer(
        "celery",
        "celery",
        "benchmarks.peer_celery",
        # prefork, 2 child processes; gossip/mingle/heartbeat are cluster chatter, off.
        (
            "-m",
            "celery",
            "-A",
            "benchmarks.peer_celery",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            "2",
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ),
        "bench celery worker ready",
        1,
        "prefork2",
    ),
)


def available(peer: Peer) -> bool:
    return importlib.util.find_spec(peer.package) is not None


def timed(
    starter: Callable[[], Any],
    counter: redis.Redis,
    done_key: str,
    runs: int,
    stats: RedisStats,
    timeout: float = 600,
) -> tuple[float, dict[str, float]]:
    counter.delete(done_key)
    before = stats.snapshot()
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(runs):
        starter()
    deadline = time.monotonic() + timeout
    while int(counter.get(done_key) or 0) < runs:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{done_key}: runs still unfinished after {timeout}s")
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    delta = RedisStats.delta(before, stats.snapshot())
    delta["_ccpu_s"] = time.process_time() - cpu  # this process: sending runs and polling
    return elapsed, delta


def run_peer(peer: Peer, url: str, sizes: Sizes, stats: RedisStats) -> list[Measured]:
    os.environ["BENCH_REDIS_URL"] = url
    module = importlib.import_module(peer.module)
    counter = redis.Redis.from_url(url)
    rows = []
    with Processes() as procs:
        workers = procs.python(f"{peer.name} workers", *peer.argv, env={"BENCH_REDIS_URL": url})
        stats.watch([workers.popen.pid])  # the forked workers stay in its process group
        deadline = time.monotonic() + 60
        while sum(peer.ready in line for line in workers.lines) < peer.ready_count:
            if workers.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{peer.name} workers did not start:\n{workers.output}")
            time.sleep(0.05)
        for workload, runs, node_count in (
            ("chain10", sizes.chain_runs, 10),
            ("diamond8", sizes.diamond_runs, 11),
        ):
            starter = module.STARTERS[workload]
            timed(starter, counter, module.DONE, min(runs, 10), stats)  # warm-up

            def measure(
                name: str = workload,
                runs: int = runs,
                nodes: int = node_count,
                starter: Callable[[], Any] = starter,
            ) -> Measured:
                seconds, delta = timed(starter, counter, module.DONE, runs, stats)
                return Measured(
                    f"{peer.name}-{name}",
                    peer.procs,
                    runs,
                    runs * nodes,
                    seconds,
                    delta,
                    "completed",
                )

            rows.append(median(measure, sizes.repeat))
        closing = getattr(module, "close", None)
        if closing is not None:
            closing()
    counter.close()
    return rows


def run(url: str, sizes: Sizes, log: Any = sys.stderr) -> tuple[list[Measured], list[str]]:
    """Every available peer's rows, and a note for each one skipped."""
    stats = RedisStats(url)
    rows: list[Measured] = []
    notes = []
    try:
        for peer in PEERS:
            if not available(peer):
                notes.append(
                    f"{peer.name} skipped: not importable (pip install -e '.[bench]' installs it)"
                )
                continue
            print(f"  {peer.name}...", file=log, flush=True)
            stats.client.flushall()
            try:
                rows += run_peer(peer, url, sizes, stats)
            except (RuntimeError, TimeoutError) as exc:
                notes.append(f"{peer.name} failed: {exc}")
    finally:
        stats.close()
    return rows, notes


__all__ = ["PEERS", "Peer", "available", "run"]
