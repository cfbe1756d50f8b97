"""The short chaos run, in CI (issue 7): 40 runs of mixed blueprints over 12 s on 3 real worker
processes, one SIGKILLed every ~2.5 s, Redis (AOF) killed and restarted once, the reconciler on
a 2 s cron. Nothing may be lost, no join may fire early, every run must end as it does
in-process, and every repeated node execution must be explained by a dead worker or the Redis
restart. The full-length run is `python -m tests.chaos.run` (docs/reliability.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chaos_harness import ChaosConfig, run_chaos
from chaos_nodes import TRACE_ENV, registry

from flowcraft_core import FlowRuntime


def test_short_chaos_run_loses_nothing() -> None:
    # Usually drains in seconds. The drain timeout covers the slow case: a worker killed while
    # its reconcile tick holds a run's lease (60 s TTL, SPEC 9.6) delays that run's repair.
    config = ChaosConfig(runs=40, start_s=12, kill_every_s=2.5, drain_timeout_s=75)
    report = run_chaos(config)
    summary = "\n".join(report.lines())
    assert report.problems() == [], summary
    assert report.runs_started == 40, summary
    assert report.completed + report.failed_as_designed == 40, summary
    assert report.failed_as_designed == report.by_blueprint["fails"], summary
    # The faults really happened.
    assert report.workers_killed >= 3, summary
    assert report.redis_restarts == 1, summary
    assert report.executions > 150, summary


async def test_the_join_check_sees_a_join_that_runs_too_early(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The side channel's detector itself: `j` claims to wait for `slow`, which is on a
    parallel branch, so `j` runs before `slow`'s output exists and must record `early`."""
    trace = tmp_path / "trace.jsonl"
    monkeypatch.setenv(TRACE_ENV, str(trace))
    blueprint = {
        "id": "early",
        "nodes": [
            {"id": "a", "uses": "step"},
            {"id": "slow", "uses": "step", "params": {"ms": 300}},
            {"id": "j", "uses": "step", "params": {"preds": ["a", "slow"], "join": "all"}},
        ],
        "edges": [{"source": "a", "target": "j"}],
    }
    result = await FlowRuntime(registry=registry).run(blueprint)
    assert result.status == "completed"
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    early = [r for r in records if r["k"] == "early"]
    assert [(r["node"], r["missing"]) for r in early] == [("j", ["slow"])]
    assert sorted(r["node"] for r in records if r["k"] == "exec") == ["a", "j", "slow"]
