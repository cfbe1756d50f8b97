"""The chaos run of issue 7: real `flowcraft worker` processes, a real redis-server with AOF,
and faults, while runs of mixed blueprints go through.

* redis-server with `appendonly yes`, `appendfsync always`, killed (SIGKILL) once mid-run and
  restarted on the same port from the same AOF directory;
* `workers` worker processes with short lock and stall intervals; every few seconds a random one
  is SIGKILLed and replaced (a worker that dies by itself is replaced too);
* the reconciler on a short cron (`flowcraft reconcile --cron`, ticks run by the workers);
* `runs` runs of chains, diamonds with `all` and `any` joins, a fan-in, retries, a failure by
  design, a fallback, a durable sleep and a loop, started evenly over the start phase.

Each run's designed outcome is what `FlowRuntime` gives in-process. The report counts runs that
ended as designed, lost runs (not finished when the drain timeout is over), early joins and
node executions that ran more than once (from the side channel of `chaos_nodes.py`), and
explains every duplicate: a worker that died (killed, or exited) or the Redis restart.
Entry points: `python -m tests.chaos.run` (on demand) and `test_chaos.py` (short, in CI).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import redis.asyncio
from bullmq_processes import TESTS, WorkerProcess
from chaos_nodes import registry
from redis.exceptions import RedisError
from redis_server import free_port

from flowcraft_bullmq import BullMQAdapter
from flowcraft_bullmq.keys import RunKeys
from flowcraft_core import FlowRuntime, WorkflowResult
from flowcraft_core.errors import RunNotFoundError

HERE = Path(__file__).resolve().parent
PREFIX = "chaos"
#: Engine-owned keys that differ between runs by design.
IGNORED = {"_runState", "_executionId"}


# --------------------------------------------------------------------------- blueprints


def _n(node_id: str, uses: str = "step", **fields: Any) -> dict[str, Any]:
    params = {"k": 1, "ms": 100, **fields.pop("params", {})}
    return {"id": node_id, "uses": uses, "params": params, **fields}


def _joined(node_id: str, preds: list[str], join: str = "all", **params: Any) -> dict[str, Any]:
    config = {"joinStrategy": join}
    return _n(node_id, params={"preds": preds, "join": join, **params}, config=config)


def _e(source: str, target: str, **fields: Any) -> dict[str, Any]:
    return {"source": source, "target": target, **fields}


def _chain_bp() -> dict[str, Any]:
    ids = ["a", "b", "c", "d", "e"]
    pairs = list(itertools.pairwise(ids))
    nodes = [_n("a")] + [_joined(t, [s]) for s, t in pairs]
    return {"id": "chain", "nodes": nodes, "edges": [_e(s, t) for s, t in pairs]}


def _diamond_bp(join: str) -> dict[str, Any]:
    # Under `any`, either branch may fire `d` (timing, SPEC 9.1): both deliver the same value,
    # so the designed outcome does not depend on which one wins.
    c_k = 2 if join == "any" else 3
    return {
        "id": f"diamond-{join}",
        "nodes": [
            _n("a"),
            _joined("b", ["a"], k=2),
            _joined("c", ["a"], k=c_k, ms=250),
            _joined("d", ["b", "c"], join),
        ],
        "edges": [_e("a", "b"), _e("a", "c"), _e("b", "d"), _e("c", "d")],
    }


def _fan_in_bp() -> dict[str, Any]:
    branches = [f"b{i}" for i in range(5)]
    return {
        "id": "fan-in",
        "nodes": [_n("a"), *(_joined(b, ["a"], k=i) for i, b in enumerate(branches))]
        + [_joined("j", branches)],
        "edges": [_e("a", b) for b in branches] + [_e(b, "j") for b in branches],
    }


def _retry_bp() -> dict[str, Any]:
    return {
        "id": "retry",
        "nodes": [
            _n("a"),
            {**_joined("f", ["a"]), "uses": "flaky", "config": {"maxRetries": 3}},
            _joined("b", ["f"]),
        ],
        "edges": [_e("a", "f"), _e("f", "b")],
    }


def _fails_bp() -> dict[str, Any]:
    return {
        "id": "fails",
        "nodes": [_n("a"), {"id": "x", "uses": "bad"}, _joined("y", ["x"]), _joined("z", ["a"])],
        "edges": [_e("a", "x"), _e("x", "y"), _e("a", "z")],
    }


def _fallback_bp() -> dict[str, Any]:
    return {
        "id": "fallback",
        "nodes": [
            _n("a"),
            {"id": "x", "uses": "bad", "config": {"fallback": "rescue"}},
            _n("rescue", params={"k": 100}),
            _joined("y", ["x"]),
        ],
        "edges": [_e("a", "x"), _e("x", "y")],
    }


def _sleep_bp() -> dict[str, Any]:
    return {
        "id": "sleep",
        "nodes": [_n("a"), {"id": "s", "uses": "sleep", "params": {"duration": "1s"}}]
        + [_joined("b", ["s"])],
        "edges": [_e("a", "s"), _e("s", "b")],
    }


def _loop_bp() -> dict[str, Any]:
    return {
        "id": "loop",
        "nodes": [
            _n("a"),
            {"id": "L", "uses": "loop-controller", "params": {"condition": "iteration < 3"}},
            _joined("body", ["L"]),
            _joined("done", ["L"]),
        ],
        "edges": [
            _e("a", "L"),
            _e("L", "body", action="continue"),
            _e("body", "L"),
            _e("L", "done", action="break"),
        ],
    }


BLUEPRINTS: list[dict[str, Any]] = [
    _chain_bp(),
    _diamond_bp("all"),
    _diamond_bp("any"),
    _fan_in_bp(),
    _retry_bp(),
    _fails_bp(),
    _fallback_bp(),
    _sleep_bp(),
    _loop_bp(),
]


def strip_tokens(value: Any) -> Any:
    """The deterministic part of a context value: every `tok` (which execution) removed."""
    if isinstance(value, dict):
        return {k: strip_tokens(v) for k, v in value.items() if k != "tok"}
    if isinstance(value, list):
        return [strip_tokens(v) for v in value]
    return value


def outcome(result: WorkflowResult) -> tuple[str, list[tuple[Any, ...]], dict[str, Any]]:
    """Status, errors (node, iteration, type, message, attempts) and context, tokens removed."""
    errors = sorted(
        (str(e.node_id), e.iteration, e.type, e.message, e.attempts) for e in result.errors
    )
    context = {k: strip_tokens(v) for k, v in result.context.items() if k not in IGNORED}
    return str(result.status), errors, context


async def designed_outcomes() -> dict[str, tuple[str, list[tuple[Any, ...]], dict[str, Any]]]:
    runtime = FlowRuntime(registry=registry, blueprints=BLUEPRINTS)
    return {bp["id"]: outcome(await runtime.run(bp["id"], {})) for bp in BLUEPRINTS}


# --------------------------------------------------------------------------- processes


class AofRedis:
    """redis-server with AOF (`appendfsync always`) in `directory` on a fixed port."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.binary = os.environ.get("FLOWCRAFT_REDIS_SERVER") or shutil.which("redis-server")
        if self.binary is None:
            raise RuntimeError("the chaos run needs redis-server on PATH (apt-get install it)")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 20) -> None:
        args = [
            str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.directory), "--save", "", "--appendonly", "yes",
            "--appendfsync", "always", "--maxmemory-policy", "noeviction",
        ]  # fmt: skip
        log = open(self.directory / "redis.log", "ab")
        try:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        probe = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    probe.ping()
                    return
                except redis.exceptions.BusyLoadingError:
                    pass
                except redis.ConnectionError:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"redis-server did not start on {self.port}: see "
                            f"{self.directory / 'redis.log'}"
                        ) from None
                time.sleep(0.05)
        finally:
            probe.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)


def consuming(worker: WorkerProcess) -> bool:
    return any("consuming queue" in line for line in worker.lines)


@contextlib.contextmanager
def scratch_dir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="flowcraft-chaos-"))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- the run


@dataclass
class ChaosConfig:
    runs: int = 500
    workers: int = 3
    start_s: float = 150.0  # runs are started evenly over this many seconds
    kill_every_s: float = 3.0  # mean interval between SIGKILLs (uniform 0.5x-1.5x)
    lock_duration_s: float = 4.0
    stalled_interval_s: float = 2.0
    concurrency: int = 8
    reconcile_cron: str = "*/2 * * * * *"
    reconcile_threshold_s: float = 5.0
    redis_restart: bool = True
    redis_down_s: float = 0.5  # how long Redis stays down before the restart
    drain_timeout_s: float = 180.0
    seed: int | None = None
    keep: bool = False


@dataclass
class ChaosReport:
    config: ChaosConfig
    runs_started: int = 0
    start_retries: int = 0
    start_errors: list[str] = field(default_factory=list)
    harness_errors: list[str] = field(default_factory=list)
    completed: int = 0
    failed_as_designed: int = 0
    not_as_designed: dict[str, str] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    lost_state: dict[str, Any] = field(default_factory=dict)  # run id -> Redis state at the end
    early_joins: int = 0
    inputs_not_committed: int = 0
    outputs_from_nowhere: int = 0
    executions: int = 0
    duplicated_executions: int = 0
    explained_by_dead_worker: int = 0
    explained_by_redis_restart: int = 0
    unexplained: list[str] = field(default_factory=list)
    reconciled_runs: int = 0
    reconciler_reenqueued: int = 0
    jobs_retried_after_redis_errors: int = 0
    workers_killed: int = 0
    workers_died: int = 0
    redis_restarts: int = 0
    redis_down_s: float = 0.0
    drain_s: float | None = None
    total_s: float = 0.0
    by_blueprint: dict[str, int] = field(default_factory=dict)

    def problems(self) -> list[str]:
        """What must be empty: lost runs, wrong outcomes, early joins, rewritten outputs,
        unexplained duplicates, runs that could not be started."""
        found = [f"the chaos harness failed: {error}" for error in self.harness_errors]
        if self.start_errors:
            found.append(
                f"{len(self.start_errors)} runs could not be started: {self.start_errors[:3]}"
            )
        if self.lost:
            found.append(f"{len(self.lost)} runs lost: {self.lost[:10]}")
            for run_id, state in list(self.lost_state.items())[:3]:
                found.append(f"state of lost run {run_id}: {json.dumps(state, default=str)}")
        if self.not_as_designed:
            sample = dict(list(self.not_as_designed.items())[:3])
            found.append(f"{len(self.not_as_designed)} runs not as designed: {sample}")
        if self.early_joins:
            found.append(f"{self.early_joins} joins fired early")
        if self.inputs_not_committed or self.outputs_from_nowhere:
            found.append(
                f"outputs not written once: {self.inputs_not_committed} inputs differ from the "
                f"committed output, {self.outputs_from_nowhere} outputs of no execution"
            )
        if self.unexplained:
            found.append(f"{len(self.unexplained)} unexplained duplicates: {self.unexplained[:5]}")
        return found

    def lines(self) -> list[str]:
        c = self.config
        drain = f"{self.drain_s:.1f} s" if self.drain_s is not None else "did not drain"
        return [
            f"config: {c.runs} runs over {c.start_s:g} s, {c.workers} workers (concurrency "
            f"{c.concurrency}, lock {c.lock_duration_s:g} s, stalled check {c.stalled_interval_s:g}"
            f" s), SIGKILL every ~{c.kill_every_s:g} s, reconcile {c.reconcile_cron!r} "
            f"(threshold {c.reconcile_threshold_s:g} s), redis restart: {c.redis_restart}",
            f"runs started:            {self.runs_started} ({self.start_retries} start_run calls "
            f"retried after a Redis error, {len(self.start_errors)} gave up)",
            f"completed as designed:   {self.completed}",
            f"failed as designed:      {self.failed_as_designed}",
            f"not as designed:         {len(self.not_as_designed)}",
            f"lost:                    {len(self.lost)}",
            f"joins fired early:       {self.early_joins}",
            f"outputs not written once: {self.inputs_not_committed + self.outputs_from_nowhere}",
            f"node executions:         {self.executions}",
            f"duplicated executions:   {self.duplicated_executions} (dead worker: "
            f"{self.explained_by_dead_worker}, redis restart: {self.explained_by_redis_restart}"
            f", unexplained: {len(self.unexplained)})",
            f"reconciler:              {self.reconciled_runs} runs reconciled, "
            f"{self.reconciler_reenqueued} activations re-enqueued",
            f"jobs retried by BullMQ after a Redis error: {self.jobs_retried_after_redis_errors}",
            f"workers SIGKILLed:       {self.workers_killed} (died by themselves: "
            f"{self.workers_died})",
            f"redis restarts:          {self.redis_restarts} (down {self.redis_down_s:.1f} s)",
            f"time to drain:           {drain} (after the last start; total {self.total_s:.1f} s)",
            "runs per blueprint:      "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.by_blueprint.items())),
        ]


class Chaos:
    def __init__(self, config: ChaosConfig, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.random = random.Random(config.seed)
        self.report = ChaosReport(config)
        self.trace = workdir / "executions.jsonl"
        self.blueprint_dir = workdir / "blueprints"
        self.redis = AofRedis(workdir / "redis")
        self.workers: list[WorkerProcess] = []
        self.died_at: dict[int, float] = {}  # pid -> when it was killed or found dead
        self.outage: tuple[float, float] | None = None
        self.stop = asyncio.Event()
        self.events = workdir / "chaos-events.jsonl"
        self.logs: dict[int, str] = {}  # pid -> stderr of every worker that ended

    def note(self, kind: str, **fields: Any) -> None:
        """The chaos events (kills, restarts), next to the side channel, for post-mortems."""
        with self.events.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"k": kind, "t": time.time(), **fields}) + "\n")

    # ---------------------------------------------------------------- processes
    def worker_args(self) -> list[str]:
        c = self.config
        return [
            "--redis", self.redis.url,
            "--prefix", PREFIX,
            "--registry", "chaos_nodes:registry",
            "--blueprints", str(self.blueprint_dir),
            "--concurrency", str(c.concurrency),
            "--lock-duration", str(c.lock_duration_s),
            "--stalled-interval", str(c.stalled_interval_s),
            "--max-stalled-count", "1000",
        ]  # fmt: skip

    def ended(self, worker: WorkerProcess) -> None:
        """Keep an ended worker's stderr (it explains retried jobs), also on disk."""
        self.logs[worker.proc.pid] = worker.stderr
        (self.workdir / f"worker-{worker.proc.pid}.log").write_text(worker.stderr)

    def spawn_worker(self) -> WorkerProcess:
        worker = WorkerProcess(self.worker_args(), self.trace, HERE)
        self.note("spawn", pid=worker.proc.pid)
        self.workers.append(worker)
        return worker

    def schedule_reconciler(self) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(HERE)]))
        command = [
            sys.executable, "-m", "flowcraft_core.cli", "reconcile",
            "--cron", self.config.reconcile_cron,
            "--threshold", str(self.config.reconcile_threshold_s),
            "--redis", self.redis.url, "--prefix", PREFIX,
            "--blueprints", str(self.blueprint_dir),
        ]  # fmt: skip
        done = subprocess.run(
            command,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"flowcraft reconcile --cron failed: {done.stderr}")

    async def kill_workers(self) -> None:
        """SIGKILL a random worker every few seconds and start another; replace the dead."""
        while not self.stop.is_set():
            pause = self.config.kill_every_s * self.random.uniform(0.5, 1.5)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), pause)
            if self.stop.is_set():
                return
            # Only workers that consume: killing one still importing would only slow the run
            # down on a loaded machine, without interrupting any job.
            live = [w for w in self.workers if w.proc.poll() is None and consuming(w)]
            if live:
                victim = self.random.choice(live)
                self.workers.remove(victim)  # first: supervise() must not count it as died
                self.note("kill", pid=victim.proc.pid)
                await asyncio.to_thread(victim.kill)
                # Once reaped: it may have started executions until the signal landed.
                self.died_at[victim.proc.pid] = time.time()
                self.ended(victim)
                self.report.workers_killed += 1
            while len(self.workers) < self.config.workers:
                self.spawn_worker()

    async def supervise(self) -> None:
        while not self.stop.is_set():
            for worker in list(self.workers):
                if worker.proc.poll() is not None:
                    self.died_at[worker.proc.pid] = time.time()
                    self.note(
                        "died",
                        pid=worker.proc.pid,
                        code=worker.proc.returncode,
                        stderr=worker.lines[-20:],
                    )
                    self.report.workers_died += 1
                    self.ended(worker)
                    self.workers.remove(worker)
                    self.spawn_worker()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 0.5)

    async def restart_redis(self, after_s: float) -> None:
        await asyncio.sleep(after_s)
        began = time.time()
        await asyncio.to_thread(self.redis.kill)
        await asyncio.sleep(self.config.redis_down_s)
        await asyncio.to_thread(self.redis.start)
        self.outage = (began, time.time())
        self.note("redis-restart", began=began)
        self.report.redis_restarts += 1
        self.report.redis_down_s = self.outage[1] - began

    # ---------------------------------------------------------------- runs
    async def retrying(self, call: Any, what: str, give_up_s: float = 60) -> Any:
        """Client calls ride over the Redis restart: retry connection errors."""
        deadline = time.monotonic() + give_up_s
        delay = 0.05
        while True:
            try:
                return await call()
            except (RedisError, ConnectionError, OSError) as exc:
                self.report.start_retries += 1
                self.note("retry", what=what, error=repr(exc))
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{what}: {exc!r}") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def start_runs(self, client: BullMQAdapter, plan: list[tuple[str, str]]) -> None:
        interval = self.config.start_s / max(len(plan), 1)
        began = time.monotonic()
        for index, (run_id, blueprint_id) in enumerate(plan):
            await asyncio.sleep(max(0.0, began + index * interval - time.monotonic()))

            async def start(run_id: str = run_id, blueprint_id: str = blueprint_id) -> str:
                return await client.start_run(
                    blueprint_id, {}, run_id=run_id, idempotency_key=run_id
                )

            try:
                await self.retrying(start, f"start {run_id}")
                self.report.runs_started += 1
            except Exception as exc:  # recorded, and reported as a problem
                self.report.start_errors.append(f"{run_id}: {exc!r}")

    async def wait_all(
        self, client: BullMQAdapter, run_ids: list[str], deadline: float
    ) -> dict[str, WorkflowResult]:
        pending = set(run_ids)
        results: dict[str, WorkflowResult] = {}
        while pending and time.monotonic() < deadline:
            for run_id in sorted(pending):
                try:
                    result = await client.get_result(run_id)
                except (RedisError, ConnectionError, OSError, RunNotFoundError):
                    continue
                if result is not None and result.status != "awaiting":
                    results[run_id] = result
                    pending.discard(run_id)
            if pending:
                await asyncio.sleep(0.5)
        return results

    async def main(self) -> ChaosReport:
        c = self.config
        began = time.monotonic()
        designed = await designed_outcomes()
        plan = [(f"c{i}", BLUEPRINTS[i % len(BLUEPRINTS)]["id"]) for i in range(c.runs)]
        self.random.shuffle(plan)
        for _, bp_id in plan:
            self.report.by_blueprint[bp_id] = self.report.by_blueprint.get(bp_id, 0) + 1
        client = BullMQAdapter(connection=self.redis.url, blueprints=BLUEPRINTS, prefix=PREFIX)
        tasks = [
            asyncio.create_task(self.kill_workers()),
            asyncio.create_task(self.supervise()),
        ]
        if c.redis_restart:
            tasks.append(asyncio.create_task(self.restart_redis(c.start_s * 0.5)))
        try:
            async with client:
                await self.start_runs(client, plan)
                starts_done = time.monotonic()
                run_ids = [run_id for run_id, _ in plan]
                results = await self.wait_all(client, run_ids, starts_done + c.drain_timeout_s)
                if len(results) == len(run_ids):
                    self.report.drain_s = time.monotonic() - starts_done
                for run_id in run_ids:
                    if run_id not in results:
                        self.report.lost_state[run_id] = await self.diagnose(run_id)
        finally:
            self.stop.set()
            for ended_as in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(ended_as, BaseException):  # the chaos itself broke down
                    self.report.harness_errors.append(repr(ended_as))
        blueprint_of = dict(plan)
        for run_id in run_ids:
            result = results.get(run_id)
            if result is None:
                self.report.lost.append(run_id)
                continue
            got = outcome(result)
            if got != designed[blueprint_of[run_id]]:
                self.report.not_as_designed[run_id] = f"{blueprint_of[run_id]}: {got[:2]}"
            elif got[0] == "completed":
                self.report.completed += 1
            else:
                self.report.failed_as_designed += 1
        self.analyse(results)
        self.report.total_s = time.monotonic() - began
        return self.report

    async def diagnose(self, run_id: str) -> dict[str, Any]:
        """A lost run's recorded state and its jobs' BullMQ state, for the report."""
        keys = RunKeys.of(PREFIX, run_id)
        client = redis.asyncio.Redis.from_url(
            self.redis.url, decode_responses=True, socket_timeout=None
        )
        try:
            state: dict[str, Any] = {
                "meta": await client.hgetall(keys.meta),
                "acts": await client.hgetall(keys.acts),
                "lease_ttl": await client.ttl(keys.reconcile_lock),
                "trace": [
                    line for line in self.trace.read_text().splitlines()
                    if f'"run":"{run_id}"' in line
                ],
            }  # fmt: skip
            jobs = {}
            queue = f"{PREFIX}:flowcraft"
            for job_id in await client.keys(f"{queue}:{run_id}-*"):
                job = job_id.removeprefix(f"{queue}:")
                if ":" in job:
                    continue
                where = [
                    name
                    for name in ("wait", "active", "paused")
                    if await client.lpos(f"{queue}:{name}", job) is not None
                ] + [
                    name
                    for name in ("delayed", "prioritized", "completed", "failed")
                    if await client.zscore(f"{queue}:{name}", job) is not None
                ]
                fields = await client.hmget(
                    job_id, "attemptsMade", "stalledCounter", "processedOn", "finishedOn",
                    "failedReason",
                )  # fmt: skip
                jobs[job] = {"in": where, "fields": fields}
            state["jobs"] = jobs
            return state
        except Exception as exc:  # a diagnosis must not hide the report
            return {"error": repr(exc)}
        finally:
            await client.aclose()

    # ---------------------------------------------------------------- the side channel
    def analyse(self, results: dict[str, WorkflowResult]) -> None:
        records = [json.loads(line) for line in self.trace.read_text().splitlines() if line]
        execs = [r for r in records if r["k"] == "exec"]
        self.report.executions = len(execs)
        for r in records:
            if r["k"] == "early":
                if r["missing"]:
                    self.report.early_joins += 1
                else:
                    self.report.inputs_not_committed += 1
        # A stand-in runs inside the failed node's activation: key by node too.
        groups: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
        tokens: dict[tuple[str, str], set[str]] = defaultdict(set)
        for r in execs:
            groups[(r["act"], r["node"], r["att"])].append(r)
            if r.get("tok"):
                tokens[(r["run"], r["node"])].add(r["tok"])
        logs = {**self.logs, **{w.proc.pid: w.stderr for w in self.workers}}
        for log in logs.values():
            for listed in re.findall(r"reconciler: run \S+: re-enqueued (.*)", log):
                self.report.reconciler_reenqueued += len(listed.split(", "))
            self.report.reconciled_runs += sum(
                int(n) for n in re.findall(r"reconcile pass: .*?(\d+) reconciled", log)
            )
            self.report.jobs_retried_after_redis_errors += len(
                re.findall(r"job \S+ \(run .*\) raised.*BullMQ will retry it", log)
            )
        for (act, _, attempt), group in groups.items():
            if len(group) < 2:
                continue
            group.sort(key=lambda r: r["t"])
            self.report.duplicated_executions += len(group) - 1
            for earlier, later in itertools.pairwise(group):
                cause = self.cause(earlier, later, logs.get(earlier["pid"], ""))
                if cause == "dead worker":
                    self.report.explained_by_dead_worker += 1
                elif cause == "redis restart":
                    self.report.explained_by_redis_restart += 1
                else:
                    pids = [r["pid"] for r in group]
                    self.report.unexplained.append(f"{act} attempt {attempt} by pids {pids}")
        # Written once: every committed output is one execution's (its token), and every
        # successor got exactly the committed output (checked by the joins: `early`).
        for run_id, result in results.items():
            for key, value in result.context.items():
                if key.startswith("_outputs.") and isinstance(value, dict) and "tok" in value:
                    node_id = key.removeprefix("_outputs.")
                    known = tokens.get((run_id, node_id), set())
                    if value["tok"] not in known and not self._stand_in_token(
                        run_id, value["tok"], tokens
                    ):
                        self.report.outputs_from_nowhere += 1

    def cause(self, execution: dict[str, Any], again: dict[str, Any], log: str) -> str | None:
        """Why `execution` ran `again`: its worker died between the two, or the Redis restart
        (it was in flight then, or its job raised a Redis error that BullMQ retried: the
        worker logged that job's error)."""
        died = self.died_at.get(execution["pid"])
        if died is not None and execution["t"] <= died <= again["t"]:
            return "dead worker"
        if self.outage is None:
            return None
        began, ended = self.outage
        if again["t"] < began:
            return None
        in_flight = began - self.config.lock_duration_s <= execution["t"] <= ended
        retried = f"job {execution['act']} " in log
        return "redis restart" if in_flight or retried else None

    @staticmethod
    def _stand_in_token(run_id: str, token: str, tokens: dict[tuple[str, str], set[str]]) -> bool:
        """A stand-in's output is also stored under the failed node's id (SPEC 4.4)."""
        return any(token in known for (run, _), known in tokens.items() if run == run_id)

    def run(self) -> ChaosReport:
        self.blueprint_dir.mkdir()
        (self.workdir / "redis").mkdir()
        for bp in BLUEPRINTS:
            path = self.blueprint_dir / f"{bp['id']}.json"
            path.write_text(json.dumps(bp), encoding="utf-8")
        self.redis.start()
        try:
            for _ in range(self.config.workers):
                self.spawn_worker()
            for worker in list(self.workers):
                worker.wait_ready(timeout=60)
            self.schedule_reconciler()
            return asyncio.run(self.main())
        finally:
            for worker in self.workers:
                worker.kill()
                self.ended(worker)
            self.redis.kill()


def run_chaos(config: ChaosConfig) -> ChaosReport:
    with scratch_dir(config.keep) as workdir:
        report = Chaos(config, workdir).run()
        if config.keep:
            print(f"kept {workdir}", file=sys.stderr)
        return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.chaos.run", description=__doc__.split("\n\n")[0] if __doc__ else ""
    )
    defaults = ChaosConfig()
    parser.add_argument("--runs", type=int, default=defaults.runs, help="runs to start (500)")
    parser.add_argument(
        "--workers", type=int, default=defaults.workers, help="worker processes (3)"
    )
    parser.add_argument(
        "--start-seconds",
        type=float,
        help="start the runs evenly over this many seconds (default: 0.3 s per run)",
    )
    parser.add_argument(
        "--kill-every",
        type=float,
        default=defaults.kill_every_s,
        help="mean s between SIGKILLs (3)",
    )
    parser.add_argument("--lock-duration", type=float, default=defaults.lock_duration_s)
    parser.add_argument("--stalled-interval", type=float, default=defaults.stalled_interval_s)
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency)
    parser.add_argument("--reconcile-cron", default=defaults.reconcile_cron)
    parser.add_argument("--reconcile-threshold", type=float, default=defaults.reconcile_threshold_s)
    parser.add_argument("--no-redis-restart", action="store_true")
    parser.add_argument(
        "--redis-down", type=float, default=defaults.redis_down_s, help="s Redis stays down (0.5)"
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=defaults.drain_timeout_s,
        help="a run not finished this long after the last start is lost (180)",
    )
    parser.add_argument("--seed", type=int)
    parser.add_argument("--keep", action="store_true", help="keep the work dir (traces, AOF)")
    args = parser.parse_args(argv)
    config = ChaosConfig(
        runs=args.runs,
        workers=args.workers,
        start_s=args.start_seconds if args.start_seconds is not None else 0.3 * args.runs,
        kill_every_s=args.kill_every,
        lock_duration_s=args.lock_duration,
        stalled_interval_s=args.stalled_interval,
        concurrency=args.concurrency,
        reconcile_cron=args.reconcile_cron,
        reconcile_threshold_s=args.reconcile_threshold,
        redis_restart=not args.no_redis_restart,
        redis_down_s=args.redis_down,
        drain_timeout_s=args.drain_timeout,
        seed=args.seed,
        keep=args.keep,
    )
    report = run_chaos(config)
    print("\n".join(report.lines()))
    problems = report.problems()
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


__all__ = ["BLUEPRINTS", "ChaosConfig", "ChaosReport", "main", "run_chaos"]
