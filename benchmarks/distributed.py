"""Distributed figures: flowcraft on real `flowcraft worker` processes, a bare BullMQ worker as
the baseline, and the Redis work of each node job.

Every workload's runs are started at once by this process (the client) and timed from the
first `start_run` to the last run seen finished; the client polls the runs' statuses one at a
time (one HGET per poll), so waiting costs Redis almost nothing.

Redis accounting (per node job):
- `INFO commandstats` deltas around each timed workload give EVALSHA calls per node (BullMQ's
  scripts and ours together: commandstats cannot tell scripts apart) and all calls per node
  (commands run inside scripts included), `INFO cpu` deltas give Redis CPU per node.
- A short MONITOR sample (a separate chain10 batch, not timed) classifies every command a
  worker sends: EVALSHA of one of our scripts (matched by SHA1 of `flowcraft_bullmq/lua`),
  or a plain command on a run key (`P:{runId}:*`) is ours; everything else is BullMQ's
  (named by the SHA1 of its `commands/*.lua`). Commands Lua scripts run and the client's own
  connections (named `bench-client`) are left out. Each command sent is one round trip unless
  it was pipelined, so "ours per node" is an upper bound on our round trips per node.
- The bare run gives BullMQ's own EVALSHA per job; flowcraft's EVALSHA per node minus that is
  the subtraction estimate of our script calls, printed next to the MONITOR figure.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aredis

from . import nodes, profile
from .accounting import Accounting, classify
from .infra import Proc, Processes, RedisStats

CLIENT_NAME = "bench-client"
PREFIX = "fcbench"
QUEUE = "flowcraft"
BARE_QUEUE = "bare"


@dataclass
class Sizes:
    chain_runs: int = 200
    diamond_runs: int = 200
    fanout_runs: int = 10
    fanout_width: int = 1000
    bare_jobs: int = 20_000
    sample_runs: int = 20  # chain10 runs under MONITOR
    workers: tuple[int, ...] = (1, 2)
    concurrency: int = 10
    repeat: int = 3  # each timed workload; the median is reported
    profile: Path | None = None  # py-spy a 1-worker chain10 + diamond8 pass into this file
    variants: bool = True  # chain10 with uvloop / without hiredis (VARIANTS)

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            chain_runs=20,
            diamond_runs=20,
            fanout_runs=2,
            fanout_width=100,
            bare_jobs=500,
            sample_runs=5,
            repeat=1,
        )


@dataclass
class Measured:
    """One timed workload."""

    workload: str
    procs: str
    runs: int
    nodes: int
    seconds: float
    redis: dict[str, float] = field(default_factory=dict)
    check: str = ""
    spread: float = 0.0  # (slowest - fastest) / median seconds over the repeats

    @property
    def node_rate(self) -> float:
        return self.nodes / self.seconds if self.seconds > 0 else 0.0

    @property
    def run_rate(self) -> float:
        return self.runs / self.seconds if self.seconds > 0 else 0.0

    def per_node(self, key: str) -> float:
        return self.redis.get(key, 0.0) / self.nodes if self.nodes else 0.0

    @property
    def calls_per_node(self) -> float:
        calls = sum(v for k, v in self.redis.items() if not k.startswith("_"))
        return calls / self.nodes if self.nodes else 0.0

    @property
    def cpu_us_per_node(self) -> float:
        return self.per_node("_cpu_s") * 1e6

    @property
    def worker_cpu_us_per_node(self) -> float:
        return self.per_node("_wcpu_s") * 1e6

    @property
    def client_cpu_us_per_node(self) -> float:
        return self.per_node("_ccpu_s") * 1e6


@dataclass
class Results:
    rows: list[Measured] = field(default_factory=list)
    bare: Measured | None = None
    bare_scaled: Measured | None = None  # the bare worker's jobs drained by 2 processes
    accounting: Accounting | None = None
    notes: list[str] = field(default_factory=list)
    libraries: str = ""  # what the worker processes loaded (uvloop, hiredis)
    variants: list[tuple[Measured, str]] = field(default_factory=list)  # (row, libraries)

    def find(self, workload: str, procs: str) -> Measured | None:
        return next((r for r in self.rows if r.workload == workload and r.procs == procs), None)


def worker_libraries(pid: int) -> str:
    """Which of uvloop and hiredis a worker process has loaded (from its memory maps)."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return "uvloop/hiredis: unknown"
    return ", ".join(
        f"{lib} {'loaded' if lib in maps else 'not loaded'}" for lib in ("uvloop", "hiredis")
    )


# --------------------------------------------------------------------------- the client


class Client:
    """The benchmark's client: starts runs and waits for them, on named connections."""

    def __init__(self, url: str, blueprints: list[dict[str, Any]]) -> None:
        from flowcraft_bullmq import BullMQAdapter
        from flowcraft_bullmq.connection import RedisSettings

        self.url = url
        settings = RedisSettings(url=url, options={"client_name": CLIENT_NAME})
        self.adapter = BullMQAdapter(
            connection=settings, blueprints=blueprints, queue_name=QUEUE, prefix=PREFIX
        )
        self.poller = aredis.Redis.from_url(url, decode_responses=True, client_name=CLIENT_NAME)
        self.polls = 0

    async def __aenter__(self) -> Client:
        await self.adapter.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.poller.aclose()
        await self.adapter.close()

    async def start(self, blueprint_id: str, runs: int) -> list[str]:
        """Start `runs` runs at once the way a user would: one `start_runs` call (one
        pipeline of create scripts, one of entry-job adds; docs/scheduling.md)."""
        return await self.adapter.start_runs([(blueprint_id, None, None)] * runs)

    async def wait_all(self, run_ids: list[str], limit_s: float = 600) -> list[str]:
        """Wait until every run has finished; their statuses. One HGET per poll."""
        from flowcraft_bullmq.keys import RunKeys

        pending = list(run_ids)
        statuses = []
        deadline = time.monotonic() + limit_s
        while pending:
            status = await self.poller.hget(RunKeys.of(PREFIX, pending[-1]).meta, "status")
            self.polls += 1
            if status not in (None, "running"):
                statuses.append(str(status))
                pending.pop()
                continue
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} runs still running after {limit_s}s")
            await asyncio.sleep(0.01)
        return statuses

    async def check(self, run_id: str, node_id: str, expected: int) -> str:
        """ "completed" when the run completed with `node_id`'s output as expected."""
        result = await self.adapter.get_result(run_id)
        if result is None:
            return "running?"
        got = result.outputs.get(node_id)
        if str(result.status) != "completed" or got != expected:
            return f"{result.status}:{node_id}={got!r}"
        return "completed"


# --------------------------------------------------------------------------- workloads


@dataclass
class Workload:
    blueprint: dict[str, Any]
    runs: int
    last: str  # the node whose output is checked
    expected: int

    @property
    def id(self) -> str:
        return str(self.blueprint["id"])

    @property
    def nodes(self) -> int:
        return nodes.node_count(self.blueprint)


def workloads(sizes: Sizes) -> list[Workload]:
    width = sizes.fanout_width
    return [
        Workload(nodes.chain(10), sizes.chain_runs, "n9", 10),
        Workload(nodes.diamond(8), sizes.diamond_runs, "end", 8 * 2 + 1),
        Workload(nodes.fanout(width), sizes.fanout_runs, "join", width * 2),
    ]


async def timed(
    client: Client,
    stats: RedisStats,
    work: Workload,
    procs: str,
    runs: int | None = None,
    *,
    drain: bool = False,
) -> Measured:
    """Start `runs` runs at once and time them until the last is seen finished.

    `drain`: measured as the bare baseline is. The runs are created while the queue is
    paused (their entry jobs wait, as the bare worker's jobs are added first), then the queue
    is resumed and the clock runs from there. What this leaves out of the window is the
    client's `start_runs` work, which the bare baseline has no counterpart for; every node
    job (fetched, run, finished) stays in it."""
    runs = work.runs if runs is None else runs
    if drain:
        queue = client.adapter.bullmq_queue(QUEUE)
        await queue.pause()
        try:
            run_ids = await client.start(work.id, runs)
        finally:
            before = stats.snapshot()
            started, cpu = time.perf_counter(), time.process_time()
            await queue.resume()
    else:
        before = stats.snapshot()
        started, cpu = time.perf_counter(), time.process_time()
        run_ids = await client.start(work.id, runs)
    statuses = await client.wait_all(run_ids)
    elapsed = time.perf_counter() - started
    delta = RedisStats.delta(before, stats.snapshot())
    delta["_ccpu_s"] = time.process_time() - cpu  # this process: starting and polling runs
    bad = Counter(s for s in statuses if s != "completed")
    check = await client.check(run_ids[0], work.last, work.expected)
    if bad:
        check = f"{check} ({dict(bad)})"
    name = f"{work.id}:drain" if drain else work.id
    return Measured(name, procs, runs, runs * work.nodes, elapsed, delta, check)


def median(measure: Callable[[], Measured], times: int) -> Measured:
    """Measure `times` times; the median run, with the spread of all and the first failed
    check (the machine is shared: one slow repeat must not decide the figure)."""
    rows = sorted((measure() for _ in range(max(1, times))), key=lambda r: r.seconds)
    mid = rows[len(rows) // 2]
    if len(rows) > 1 and mid.seconds > 0:
        mid.spread = (rows[-1].seconds - rows[0].seconds) / mid.seconds
    mid.check = next((r.check for r in rows if r.check != mid.check), mid.check)
    return mid


def write_blueprints(directory: Path, works: list[Workload]) -> None:
    for work in works:
        (directory / f"{work.id}.json").write_text(json.dumps(work.blueprint))


#: Worker variants (name -> benchmarks.worker_variant options) measured on chain10, 1 worker.
VARIANTS: dict[str, tuple[str, ...]] = {
    "as-installed": (),
    "uvloop": ("--uvloop",),
    "no-uvloop": ("--block", "uvloop"),
    "no-hiredis": ("--block", "hiredis"),
}


def start_workers(
    procs: Processes,
    url: str,
    bp_dir: Path,
    count: int,
    concurrency: int,
    variant: tuple[str, ...] = (),
) -> list[Proc]:
    launcher = ("benchmarks.worker_variant", *variant, "--") if variant else ("flowcraft_core.cli",)
    started = []
    for i in range(count):
        proc = procs.python(
            f"flowcraft worker {i + 1}",
            "-m",
            *launcher,
            "worker",
            "--redis",
            url,
            "--registry",
            "benchmarks.nodes:registry",
            "--blueprints",
            str(bp_dir),
            "--concurrency",
            str(concurrency),
            "--queue",
            QUEUE,
            "--prefix",
            PREFIX,
        )
        started.append(proc)
    for proc in started:
        proc.wait_for("consuming queue")
    return started


def monitor_sample(
    procs: Processes, url: str, client: Client, work: Workload, runs: int
) -> Accounting:
    """Run `runs` runs of `work` under `redis-cli monitor` and classify what workers sent."""
    port = url.rsplit(":", 1)[1].split("/")[0]
    mon = procs.start("redis-cli monitor", ["redis-cli", "-p", port, "monitor"])
    mon.wait_for("OK", timeout=10)

    async def go() -> None:
        await client.wait_all(await client.start(work.id, runs))

    LOOP.run(go())
    sync = redis.Redis.from_url(url, decode_responses=True)
    named = {c["addr"] for c in sync.client_list() if c.get("name") == CLIENT_NAME}
    sync.ping()
    sync.close()
    time.sleep(0.2)
    mon.stop()
    return classify(list(mon.lines), named, runs * work.nodes)


class _Loop:
    """One event loop in a thread for the client, so its connections live across phases."""

    def __init__(self) -> None:
        import threading

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:  # Ctrl-C: the coroutine is cancelled, not left pending
            future.cancel()
            concurrent.futures.wait([future], timeout=5)
            raise

    def close(self) -> None:
        """Cancel what still runs, stop the loop, close it."""

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()


LOOP: _Loop  # set by run()


def bare_baseline(
    procs: Processes,
    url: str,
    stats: RedisStats,
    sizes: Sizes,
    round_: int = 0,
    processes: int = 1,
) -> Measured:
    """Add `bare_jobs` empty jobs (as flowcraft adds its node jobs), drain them in a process.

    `processes` > 1: the machine's own ceiling for scaling (issue 6: "scales 1.6x from 1 to 2
    worker processes"). The jobs are added to a paused queue, that many bare worker processes
    start on it, and the queue is resumed; the window runs from the first job any of them
    started to the last job any of them ran."""
    from bullmq import Queue

    from flowcraft_bullmq.connection import RedisConnector
    from flowcraft_bullmq.queue import DEFAULT_ATTEMPTS, DEFAULT_RETENTION

    queue_opts = {"connection": RedisConnector(url).new_client(), "prefix": PREFIX}

    async def add() -> None:
        options = {**DEFAULT_RETENTION, **DEFAULT_ATTEMPTS}
        queue = Queue(BARE_QUEUE, queue_opts)
        if processes > 1:
            await queue.pause()
        for start in range(0, sizes.bare_jobs, 1000):
            end = min(start + 1000, sizes.bare_jobs)
            await queue.addBulk(
                [
                    {
                        "name": "node",
                        "data": {"i": i},
                        "opts": {**options, "jobId": f"j{processes}-{round_}-{i}"},
                    }
                    for i in range(start, end)
                ]
            )
        await queue.close()

    async def resume() -> None:
        queue = Queue(BARE_QUEUE, queue_opts)
        await queue.resume()
        await queue.close()

    before = stats.snapshot()  # the adds count: flowcraft's node jobs add their successors
    LOOP.run(add())
    shared = ("--shared",) if processes > 1 else ()
    workers = [
        procs.python(
            f"bare BullMQ worker {i + 1}",
            "-m",
            "benchmarks.bare",
            "--redis",
            url,
            "--queue",
            BARE_QUEUE,
            "--prefix",
            PREFIX,
            "--jobs",
            str(sizes.bare_jobs),
            "--concurrency",
            str(sizes.concurrency),
            *shared,
        )
        for i in range(processes)
    ]
    if shared:
        for proc in workers:
            proc.wait_for("consuming", timeout=60)
        LOOP.run(resume())
    mark = "shared" if shared else "drained"
    for proc in workers:
        proc.wait_for(mark, timeout=600)
        proc.stop()
    delta = RedisStats.delta(before, stats.snapshot())
    lines = [
        next(x for x in proc.lines if x.startswith(mark)).replace(",", "").split()
        for proc in workers
    ]
    if shared:  # "shared K jobs first F last L cpu C"
        count = sum(int(line[1]) for line in lines)
        if count != sizes.bare_jobs:
            raise RuntimeError(f"bare workers ran {count} of {sizes.bare_jobs} jobs")
        seconds = max(float(line[6]) for line in lines) - min(float(line[4]) for line in lines)
        delta["_wcpu_s"] = sum(float(line[8]) for line in lines)
    else:  # "drained N jobs in S s cpu C s"
        seconds = float(lines[0][4])
        delta["_wcpu_s"] = float(lines[0][-2])
    return Measured("bare-bullmq", str(processes), 0, sizes.bare_jobs, seconds, delta, "drained")


def run(procs: Processes, url: str, sizes: Sizes, log: Any = sys.stderr) -> Results:
    """Every distributed figure, on the redis-server at `url`."""
    global LOOP
    LOOP = _Loop()
    results = Results()
    works = workloads(sizes)
    stats = RedisStats(url)
    bp_dir = Path(tempfile.mkdtemp(prefix="flowcraft-bench-bp-"))
    write_blueprints(bp_dir, works)
    client = Client(url, [w.blueprint for w in works])
    LOOP.run(client.__aenter__())
    try:
        for count in sizes.workers:
            print(f"  flowcraft: {count} worker process(es)...", file=log, flush=True)
            with Processes() as phase:
                workers = start_workers(phase, url, bp_dir, count, sizes.concurrency)
                stats.watch(w.popen.pid for w in workers)
                results.libraries = worker_libraries(workers[0].popen.pid)
                for work in works:  # warm up: scripts loaded, plans compiled, pools open
                    LOOP.run(timed(client, stats, work, str(count), runs=min(work.runs, 10)))
                for work in works:
                    results.rows.append(
                        median(
                            lambda w=work, c=count: LOOP.run(timed(client, stats, w, str(c))),
                            sizes.repeat,
                        )
                    )
                for work in works[:2]:  # chain10, diamond8 as the bare worker drains
                    results.rows.append(
                        median(
                            lambda w=work, c=count: LOOP.run(
                                timed(client, stats, w, str(c), drain=True)
                            ),
                            sizes.repeat,
                        )
                    )
                if count == 1:
                    results.accounting = monitor_sample(
                        phase, url, client, works[0], sizes.sample_runs
                    )
                if count == 1 and sizes.profile is not None:
                    print(f"  py-spy on worker 1 -> {sizes.profile}", file=log, flush=True)
                    spy = profile.record(phase, workers[0].popen.pid, sizes.profile)
                    for work in works[:2]:  # not timed: the sampler takes CPU too
                        LOOP.run(timed(client, stats, work, str(count)))
                    profile.finish(spy)
        for name, options in VARIANTS.items() if sizes.variants else ():
            print(f"  flowcraft worker variant {name}...", file=log, flush=True)
            with Processes() as phase:
                workers = start_workers(phase, url, bp_dir, 1, sizes.concurrency, options)
                stats.watch(w.popen.pid for w in workers)
                LOOP.run(timed(client, stats, works[0], "1", runs=min(works[0].runs, 10)))
                row = median(lambda: LOOP.run(timed(client, stats, works[0], "1")), sizes.repeat)
                row.workload = f"chain10:{name}"
                results.variants.append((row, worker_libraries(workers[0].popen.pid)))
        print("  bare BullMQ worker...", file=log, flush=True)
        rounds = iter(range(sizes.repeat))
        results.bare = median(
            lambda: bare_baseline(procs, url, stats, sizes, next(rounds)), sizes.repeat
        )
        most = max(sizes.workers)
        if most > 1:
            print(f"  bare BullMQ worker x {most} processes...", file=log, flush=True)
            rounds = iter(range(sizes.repeat))
            results.bare_scaled = median(
                lambda: bare_baseline(procs, url, stats, sizes, next(rounds), most),
                sizes.repeat,
            )
    finally:
        LOOP.run(client.__aexit__())
        stats.close()
        LOOP.close()
        shutil.rmtree(bp_dir, ignore_errors=True)
    return results


__all__ = ["Measured", "Results", "Sizes", "run"]
