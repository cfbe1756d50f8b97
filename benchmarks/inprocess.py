"""In-process figures: chainN scaling, fanout1000, chain10 throughput.

Node functions are trivial (return input + 1) so the figures measure the engine itself.
Each workload runs in a fresh subprocess-free loop; peak memory is tracemalloc's peak for the
run (Python allocations), which is what grows with N.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from flowcraft_core import Blueprint, FlowRuntime, NodeRegistry, load_blueprint

from . import nodes

ROOT = str(Path(__file__).resolve().parent.parent)
PYTHONPATH = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]


def registry() -> NodeRegistry:
    return nodes.make_registry()


def chain(n: int) -> Blueprint:
    return load_blueprint(nodes.chain(n))


def fanout(width: int) -> Blueprint:
    return load_blueprint(nodes.fanout(width))


def _timed_run(rt: FlowRuntime, bp: Blueprint, *, memory: bool) -> tuple[float, float, str]:
    gc.collect()
    if memory:
        tracemalloc.start()
    started = time.perf_counter()
    result = rt.run_sync(bp)
    elapsed = time.perf_counter() - started
    peak = 0.0
    if memory:
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return elapsed, peak, str(result.status)


def scaling(sizes: list[int], *, memory: bool = True) -> list[dict[str, Any]]:
    reg = registry()
    rows = []
    for n in sizes:
        bp = chain(n)
        rt = FlowRuntime(registry=reg)
        first, _, _ = _timed_run(rt, bp, memory=False)  # compiles and caches the plan
        elapsed, _, status = _timed_run(rt, bp, memory=False)
        peak = _timed_run(rt, bp, memory=True)[1] if memory else 0.0
        rows.append(
            {
                "workload": f"chain{n}",
                "nodes": n,
                "first_s": first,
                "seconds": elapsed,
                "us_per_node": elapsed / n * 1e6,
                "peak_mib": peak,
                "status": status,
            }
        )
    return rows


def fanout_row(width: int = 1000) -> dict[str, Any]:
    reg = registry()
    bp = fanout(width)
    rt = FlowRuntime(registry=reg)
    first, _, _ = _timed_run(rt, bp, memory=False)
    elapsed, peak, status = _timed_run(rt, bp, memory=False)
    return {
        "workload": f"fanout{width}",
        "nodes": width + 2,
        "first_s": first,
        "seconds": elapsed,
        "us_per_node": elapsed / (width + 2) * 1e6,
        "peak_mib": peak,
        "status": status,
    }


def chain10_rate(runs: int = 2000) -> dict[str, Any]:
    bp = chain(10)
    rt = FlowRuntime(registry=registry())

    async def go() -> float:
        await rt.run(bp)
        started = time.perf_counter()
        for _ in range(runs):
            await rt.run(bp)
        return time.perf_counter() - started

    elapsed = asyncio.run(go())
    return {
        "workload": f"chain10 x{runs}",
        "nodes": 10 * runs,
        "first_s": 0.0,
        "seconds": elapsed,
        "us_per_node": elapsed / (10 * runs) * 1e6,
        "peak_mib": 0.0,
        "status": f"{10 * runs / elapsed:,.0f} node/s",
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        f"{'workload':<16}{'nodes':>10}{'1st run s':>11}{'run s':>10}{'us/node':>9}"
        f"{'peak MiB':>10}  status"
    )
    for r in rows:
        print(
            f"{r['workload']:<16}{r['nodes']:>10,}{r['first_s']:>11.3f}{r['seconds']:>10.3f}"
            f"{r['us_per_node']:>9.2f}{r['peak_mib']:>10.1f}  {r['status']}"
        )


def fresh_rss_mib(n: int) -> float:
    """Peak RSS (MiB) of a fresh process that loads chainN and runs it once (plan compiled
    in that run), without tracemalloc, whose own bookkeeping would inflate it."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.inprocess", "--rss", str(n)],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, *PYTHONPATH]))),
        cwd=ROOT,
    )
    return float(out.stdout.split()[-1])


def peak_rss_mib() -> float:
    """This process's peak RSS. On Linux VmHWM, the high-water mark of this process's own
    memory: a child's `ru_maxrss` starts at its parent's peak (Linux keeps it across the
    spawn's exec), so after the chainN rows, whose tracemalloc run peaks near 2 GB, every
    fresh process reported at least the parent's figure (even one running chain1000)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_once_rss(n: int) -> None:
    result = FlowRuntime(registry=registry()).run_sync(chain(n))
    if str(result.status) != "completed":
        raise SystemExit(f"chain{n}: {result.status}")
    print(f"max RSS MiB {peak_rss_mib():.1f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="flowcraft in-process benchmark")
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke)")
    parser.add_argument("--max-n", type=int, default=100_000)
    parser.add_argument("--rss", type=int, metavar="N", help="run chainN once; print max RSS")
    args = parser.parse_args(argv)
    if args.rss:
        _run_once_rss(args.rss)
        return
    sizes = (
        [1_000, 10_000]
        if args.quick
        else [n for n in (1_000, 10_000, 100_000, 1_000_000) if n <= args.max_n]
    )
    rows = scaling(sizes)
    rows.append(fanout_row(100 if args.quick else 1000))
    rows.append(chain10_rate(100 if args.quick else 2000))
    print_table(rows)


if __name__ == "__main__":
    main()
