"""Bulk starts (docs/scheduling.md): runs/s started and finished by `start_runs`, compared with
one `start_run` per run, on `flowcraft worker` processes this command starts.

For each blueprint (chain1, chain10; `--chains`) and worker count (1, 2): the workers started
and ready (one throwaway redis-server for everything), then N runs started at once while the
workers consume. "started"
is N over the time the start call(s) took; "finished" is N over the time from the first start
to the last run seen finished (the client polls one run status per HGET).

`python -m benchmarks.bulk_starts [--runs N] [--quick]`, or `python -m benchmarks --only bulk`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import nodes
from .distributed import PREFIX, Client, start_workers
from .infra import Processes, redis_server

#: Runs per start_runs call (bigger calls are one pipeline too; this bounds the client's memory).
BATCH = 1000


@dataclass
class BulkRow:
    blueprint: str
    workers: int
    how: str  # "start_runs" or "start_run x N"
    runs: int
    start_s: float
    total_s: float
    check: str

    @property
    def started_rate(self) -> float:
        return self.runs / self.start_s if self.start_s > 0 else 0.0

    @property
    def finished_rate(self) -> float:
        return self.runs / self.total_s if self.total_s > 0 else 0.0


async def _measure(
    client: Client, blueprint: str, runs: int, bulk: bool
) -> tuple[float, float, str]:
    started = time.perf_counter()
    if bulk:
        run_ids: list[str] = []
        for first in range(0, runs, BATCH):
            count = min(BATCH, runs - first)
            run_ids += await client.adapter.start_runs([(blueprint, None, None)] * count)
    else:
        run_ids = await client.start(blueprint, runs)
    start_s = time.perf_counter() - started
    statuses = await client.wait_all(run_ids)
    total_s = time.perf_counter() - started
    bad = [s for s in statuses if s != "completed"]
    check = "completed" if not bad else f"{len(bad)} not completed"
    return start_s, total_s, check


def run(
    procs: Processes, url: str, runs: int, concurrency: int = 10, chains: tuple[int, ...] = (1, 10)
) -> list[BulkRow]:
    blueprints = [nodes.chain(n) for n in chains]
    rows: list[BulkRow] = []
    with tempfile.TemporaryDirectory(prefix="flowcraft-bulk-") as tmp:
        bp_dir = Path(tmp)
        for bp in blueprints:
            (bp_dir / f"{bp['id']}.json").write_text(json.dumps(bp))
        for count in (1, 2):
            workers = start_workers(procs, url, bp_dir, count, concurrency)
            try:
                for bp in blueprints:
                    for bulk in (True, False):
                        how = "start_runs" if bulk else "start_run x N"
                        print(f"  {bp['id']} {count}w {how}...", file=sys.stderr, flush=True)

                        async def go(bp_id: str = str(bp["id"]), bulk: bool = bulk) -> Any:
                            async with Client(url, blueprints) as client:
                                return await _measure(client, bp_id, runs, bulk)

                        start_s, total_s, check = asyncio.run(go())
                        rows.append(
                            BulkRow(str(bp["id"]), count, how, runs, start_s, total_s, check)
                        )
            finally:
                for worker in workers:
                    worker.stop()
    return rows


def print_table(rows: list[BulkRow]) -> None:
    print(f"{'workload':<10}{'workers':>8}  {'how':<15}{'runs':>7}{'started/s':>11}"
          f"{'finished/s':>12}  check")  # fmt: skip
    for r in rows:
        print(
            f"{r.blueprint:<10}{r.workers:>8}  {r.how:<15}{r.runs:>7}{r.started_rate:>11,.0f}"
            f"{r.finished_rate:>12,.0f}  {r.check}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bulk_starts", description=__doc__)
    parser.add_argument("--runs", type=int, default=1000, help="runs per measurement (1000)")
    parser.add_argument("--quick", action="store_true", help="100 runs: proves it works")
    parser.add_argument("--concurrency", type=int, default=10, help="jobs per worker (10)")
    parser.add_argument(
        "--chains", default="1,10", help="chain lengths to measure, comma-separated (1,10)"
    )
    args = parser.parse_args(argv)
    runs = 100 if args.quick else args.runs
    chains = tuple(int(n) for n in args.chains.split(","))
    with Processes() as procs, redis_server(procs) as url:
        rows = run(procs, url, runs, args.concurrency, chains)
    print(f"\n== bulk starts (prefix {PREFIX}; worker processes x concurrency {args.concurrency})")
    print_table(rows)


if __name__ == "__main__":
    main()
