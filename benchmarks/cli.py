"""`python -m benchmarks`: every figure of issue 6 in one table, with the targets met or not.

Sections: in-process (FlowRuntime), distributed (BullMQAdapter on a redis-server and worker
processes this command starts, plus a bare BullMQ worker as the baseline), peers (Dramatiq,
Celery; skipped with a note when not installed), bulk (runs/s started and finished by
`start_runs`, bulk_starts.py; only with `--only bulk`). Progress goes to stderr, the table to
stdout. Targets are printed, never asserted. Every process started is stopped on exit and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import inprocess
from .distributed import Measured, Results, Sizes

SECTIONS = ("inprocess", "distributed", "peers", "bulk")
#: What runs without --only (bulk starts are asked for).
DEFAULT_SECTIONS = SECTIONS[:3]


@dataclass
class Target:
    name: str
    value: float | None
    goal: str
    met: bool | None  # None: not measured

    def line(self) -> str:
        value = "-" if self.value is None else f"{self.value:,.2f}"
        state = "n/a" if self.met is None else ("met" if self.met else "unmet")
        return f"{self.name:<46}{value:>12}  {self.goal:<12}{state}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _target(name: str, value: float | None, goal: str, ok: Any) -> Target:
    return Target(name, value, goal, None if value is None else bool(ok(value)))


def distributed_table(rows: Sequence[Measured]) -> None:
    print(
        f"{'workload':<20}{'procs':>8}{'runs':>7}{'nodes':>8}{'seconds':>9}{'node/s':>9}"
        f"{'run/s':>8}{'evalsha/n':>10}{'calls/n':>9}{'rcpu us/n':>10}{'wcpu us/n':>10}"
        f"{'ccpu us/n':>10}{'spread':>8}  check"
    )
    for r in rows:
        runs = f"{r.runs:,}" if r.runs else "-"
        print(
            f"{r.workload:<20}{r.procs:>8}{runs:>7}{r.nodes:>8,}{r.seconds:>9.3f}"
            f"{r.node_rate:>9,.0f}{r.run_rate:>8,.1f}{r.per_node('evalsha'):>10.2f}"
            f"{r.calls_per_node:>9.1f}{r.cpu_us_per_node:>10.0f}{r.worker_cpu_us_per_node:>10.0f}"
            f"{r.client_cpu_us_per_node:>10.0f}{r.spread:>8.0%}  {r.check}"
        )


def header(args: argparse.Namespace) -> None:
    redis_version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).stdout.split()
    print(f"flowcraft benchmarks  {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, "
        f"{' '.join(redis_version[:3]) if redis_version else 'redis-server ?'}"
    )
    print(f"command: python -m benchmarks {' '.join(sys.argv[1:])}".rstrip())
    print(f"load average at start: {_load()} (2 cores shared with other work)")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: proves it works")
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only this section")
    parser.add_argument("--max-n", type=int, default=1_000_000, help="largest chainN (1000000)")
    parser.add_argument("--concurrency", type=int, default=10, help="jobs per worker (10)")
    parser.add_argument(
        "--repeat",
        type=int,
        metavar="N",
        help="time each distributed and peer workload N times, report the median (3; 1 "
        "with --quick)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="also py-spy the 1-worker chain10 and diamond8 runs (untimed) into FILE and "
        "print the worker's hot spots",
    )
    args = parser.parse_args(argv)
    sections = set(args.only or DEFAULT_SECTIONS)
    # Ctrl-C and SIGTERM unwind through the `with` blocks that stop the processes.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    header(args)
    targets: list[Target] = []

    if "inprocess" in sections:
        print("\n== in-process (FlowRuntime, one process)")
        print("  in-process...", file=sys.stderr, flush=True)
        sizes = (
            [1_000, 10_000]
            if args.quick
            else [n for n in (1_000, 10_000, 100_000, 1_000_000) if n <= args.max_n]
        )
        rows = inprocess.scaling(sizes)
        max_rss = inprocess.fresh_rss_mib(sizes[-1])
        rows.append(inprocess.fanout_row(100 if args.quick else 1000))
        rows.append(inprocess.chain10_rate(100 if args.quick else 2000))
        inprocess.print_table(rows)
        print(
            f"max RSS of a fresh process running chain{sizes[-1]} once: {max_rss:,.0f} MiB "
            "(peak MiB above: tracemalloc's peak of Python allocations in a run)"
        )
        targets += inprocess_targets(rows, max_rss)

    results = Results()
    peer_rows: list[Measured] = []
    if sections & {"distributed", "peers"}:
        from .distributed import run as run_distributed
        from .infra import Processes, redis_server

        dsizes = Sizes.quick() if args.quick else Sizes()
        dsizes.concurrency = args.concurrency
        dsizes.profile = args.profile
        if args.repeat is not None:
            dsizes.repeat = args.repeat
        try:
            with Processes() as procs, redis_server(procs) as url:
                if "distributed" in sections:
                    results = run_distributed(procs, url, dsizes)
                if "peers" in sections:
                    from . import peers

                    peer_rows, notes = peers.run(url, dsizes)
                    results.notes += notes
        except KeyboardInterrupt:
            print("interrupted: every process started was stopped", file=sys.stderr)
            raise SystemExit(130) from None

    if "distributed" in sections:
        print(
            f"\n== distributed (BullMQAdapter; flowcraft worker processes x concurrency "
            f"{args.concurrency}; bare-bullmq: a bare BullMQ Worker draining empty jobs)"
        )
        if results.libraries:
            print(f"worker: {results.libraries}")
        bare_rows = [row for row in (results.bare, results.bare_scaled) if row is not None]
        distributed_table([*results.rows, *bare_rows])
        if results.variants:
            print("\nworker event loop and Redis parser (chain10, 1 worker process):")
            distributed_table([row for row, _ in results.variants])
            for row, libraries in results.variants:
                print(f"  {row.workload}: {libraries}")
        accounting(results)
        targets += distributed_targets(results)
        if args.profile is not None and args.profile.exists():
            hot_spots(args.profile)
    if "peers" in sections:
        print("\n== peers (same Redis; chain10 and diamond8)")
        if peer_rows:
            distributed_table(peer_rows)
        for note in results.notes:
            print(f"note: {note}")
        targets += peer_targets(results, peer_rows)
    if "bulk" in sections:  # bulk_starts.py (docs/scheduling.md)
        from . import bulk_starts
        from .infra import Processes, redis_server

        print("  bulk starts...", file=sys.stderr, flush=True)
        with Processes() as procs, redis_server(procs) as url:
            bulk = bulk_starts.run(procs, url, 100 if args.quick else 1000, args.concurrency)
        print(f"\n== bulk starts (start_runs vs start_run; concurrency {args.concurrency})")
        bulk_starts.print_table(bulk)
    print("\n== targets")
    print(f"{'target':<46}{'value':>12}  {'goal':<12}state")
    for target in targets:
        print(target.line())
    print(f"load average at end: {_load()}")


def inprocess_targets(rows: list[dict[str, Any]], max_rss: float) -> list[Target]:
    by_name = {r["workload"].split()[0]: r for r in rows}
    chain10 = next((r for r in rows if r["workload"].startswith("chain10 x")), None)
    chains = [r for r in rows if r["workload"].startswith("chain") and r is not chain10]
    out = []
    if chain10 is not None:
        out.append(
            _target(
                "inprocess chain10 node/s",
                chain10["nodes"] / chain10["seconds"],
                ">= 60,000",
                lambda v: v >= 60_000,
            )
        )
    if len(chains) >= 2:
        out.append(
            _target(
                f"inprocess us/node {chains[-1]['workload']} / {chains[0]['workload']}",
                chains[-1]["us_per_node"] / chains[0]["us_per_node"],
                "<= 2",
                lambda v: v <= 2,
            )
        )
    million = by_name.get("chain1000000")
    if million is not None:
        out.append(
            _target(
                "inprocess chain1000000 1st run s (compiles)",
                million["first_s"],
                "< 60",
                lambda v: v < 60,
            )
        )
        out.append(
            _target(
                "inprocess chain1000000 max RSS MiB",
                max_rss,
                "< 2048",
                lambda v: v < 2048,
            )
        )
    fan = by_name.get("fanout1000")
    if fan is not None:
        out.append(
            _target("inprocess fanout1000 seconds", fan["seconds"], "< 0.1", lambda v: v < 0.1)
        )
    return out


def _rate(results: Results, workload: str, procs: str) -> float | None:
    row = results.find(workload, procs)
    return row.node_rate if row is not None else None


def distributed_targets(results: Results) -> list[Target]:
    chain1 = _rate(results, "chain10", "1")
    # The rate target compares like with like: chain10's jobs drained as the bare worker's
    # are (runs created first, queue resumed); the started-at-once ratio is printed as info.
    drain1 = _rate(results, "chain10:drain", "1")
    fan_id = next((r.workload for r in results.rows if r.workload.startswith("fanout")), "fanout")
    bare = results.bare.node_rate if results.bare else None
    chain_row = results.find("chain10:drain", "1") or results.find("chain10", "1")
    cpu_ratio = (
        _ratio(results.bare.worker_cpu_us_per_node, chain_row.worker_cpu_us_per_node)
        if results.bare and chain_row
        else None
    )
    out = [
        _target(
            "chain10 drained (1 worker) / bare BullMQ rate",
            _ratio(drain1, bare),
            ">= 0.8",
            lambda v: v >= 0.8,
        ),
        Target(
            "chain10 started at once (1 worker) / bare",
            _ratio(chain1, bare),
            "(info)",
            None,
        ),
        _target(
            "chain10 / bare BullMQ by worker CPU per job",
            cpu_ratio,
            ">= 0.8",
            lambda v: v >= 0.8,
        ),
        _target(
            f"{fan_id} / chain10 per-node rate (1 worker)",
            _ratio(_rate(results, fan_id, "1"), chain1),
            ">= 0.8",
            lambda v: v >= 0.8,
        ),
    ]
    if results.accounting is not None:
        out.append(
            _target(
                "our Redis round trips per node (MONITOR)",
                results.accounting.ours_per_node,
                "<= 3",
                lambda v: v <= 3,
            )
        )
    for workload in ("chain10", "diamond8"):
        out.append(
            _target(
                f"{workload} scaling 1 -> 2 worker processes",
                _ratio(_rate(results, workload, "2"), _rate(results, workload, "1")),
                ">= 1.6",
                lambda v: v >= 1.6,
            )
        )
    if results.bare and results.bare_scaled:
        # What the machine allows: the same jobs drained by bare BullMQ workers, 1 and then
        # 2 processes, on the same Redis and cores (docs/performance.md, "What limits").
        out.append(
            Target(
                f"bare BullMQ scaling 1 -> {results.bare_scaled.procs} processes",
                _ratio(results.bare_scaled.node_rate, results.bare.node_rate),
                "(ceiling)",
                None,
            )
        )
    return out


def peer_targets(results: Results, peer_rows: list[Measured]) -> list[Target]:
    out = []
    for workload in ("chain10", "diamond8"):
        dramatiq = next((r for r in peer_rows if r.workload == f"dramatiq-{workload}"), None)
        celery = next((r for r in peer_rows if r.workload == f"celery-{workload}"), None)
        ours = _rate(results, workload, "2")
        out.append(
            _target(
                f"{workload} flowcraft (2 workers) / dramatiq",
                _ratio(ours, dramatiq.node_rate if dramatiq else None),
                ">= 1.2",
                lambda v: v >= 1.2,
            )
        )
        ratio = _ratio(ours, celery.node_rate if celery else None)
        out.append(Target(f"{workload} flowcraft (2 workers) / celery", ratio, "(info)", None))
    return out


def hot_spots(path: Path) -> None:
    from .profile import summary

    total, own, inclusive, areas = summary(path)
    if not total:
        return
    print(f"\nworker 1 profile (py-spy, {total} samples of CPU; {path}):")
    print("  self time by area:")
    for name, count in areas:
        print(f"  {count / total:6.1%}  {name}")
    print("  self time:")
    for name, count in own:
        print(f"  {count / total:6.1%}  {name}")
    print("  inclusive (flowcraft, BullMQ, redis-py):")
    shown = 0
    for name, count in inclusive:
        if any(k in name for k in ("flowcraft", "bullmq/", "redis/")) and shown < 20:
            print(f"  {count / total:6.1%}  {name}")
            shown += 1


def accounting(results: Results) -> None:
    acc = results.accounting
    if acc is None:
        return
    chain1 = results.find("chain10", "1")
    bare = results.bare
    print(f"\nRedis work per node job (MONITOR sample: {acc.nodes} chain10 nodes, 1 worker):")
    print(f"  ours    {acc.ours_per_node:5.2f} commands sent: {acc.breakdown(acc.ours)}")
    print(f"  BullMQ  {acc.bullmq_per_node:5.2f} commands sent: {acc.breakdown(acc.bullmq)}")
    if chain1 is not None and bare is not None:
        # No subtraction estimate of ours: BullMQ's per-job scripts run inside our composed
        # ones (composed.py), so all EVALSHA per node, BullMQ's included, are compared.
        print(
            f"  EVALSHA/node: chain10 {chain1.per_node('evalsha'):.2f} (BullMQ's add, fetch "
            f"and finish composed into ours), bare BullMQ job {bare.per_node('evalsha'):.2f} "
            "(its add, fetch, finish)"
        )
        print(
            f"  Redis CPU/node: chain10 {chain1.cpu_us_per_node:.0f} us, bare BullMQ job "
            f"{bare.cpu_us_per_node:.0f} us (INFO cpu sys+user deltas / nodes)"
        )
        for row in (chain1, bare):
            calls = sorted(
                ((v, k) for k, v in row.redis.items() if not k.startswith("_")), reverse=True
            )
            top = ", ".join(f"{k} {v / row.nodes:.1f}" for v, k in calls[:10])
            print(f"  commandstats calls/node, {row.workload} (scripts' own included): {top}")
        print(
            f"  Redis time in EVALSHA/node (commandstats usec): chain10 "
            f"{chain1.per_node('_usec:evalsha'):.0f} us, bare BullMQ job "
            f"{bare.per_node('_usec:evalsha'):.0f} us"
        )


__all__ = ["main"]
