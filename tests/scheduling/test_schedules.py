"""Cron-started runs (docs/scheduling.md) on a real `flowcraft worker`: ticks start runs,
one per tick whichever worker takes it, and removing the schedule stops them."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path

import pytest
from bullmq_processes import adapter, worker_processes
from sched_nodes import chain

from flowcraft_bullmq.scheduling import SCHEDULER_PREFIX, process_schedule_tick, tick_run_id
from flowcraft_core.cli import main

HERE = Path(__file__).resolve().parent


@pytest.fixture
def blueprint_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "bps"
    directory.mkdir()
    (directory / "one.json").write_text(json.dumps(chain("one", 1)), encoding="utf-8")
    return directory


def test_a_cron_schedule_starts_one_run_per_tick_until_removed(
    redis_url: str, prefix: str, blueprint_dir: Path, tmp_path: Path
) -> None:
    args = [
        "--redis", redis_url,
        "--prefix", prefix,
        "--registry", "sched_nodes:registry",
        "--blueprints", str(blueprint_dir),
    ]  # fmt: skip
    bp = chain("one", 1)
    with worker_processes(2, args, tmp_path / "trace", HERE):

        async def scenario() -> None:
            async with adapter(redis_url, prefix, blueprints=[bp], consume=False) as a:
                schedule = await a.add_schedule(
                    "every-second", "one", cron="* * * * * *", context={"_inputs.n0": 10}
                )
                assert schedule.id == "every-second" and schedule.next_ms is not None
                listed = await a.list_schedules()
                assert [(s.id, s.blueprint_id, s.cron) for s in listed] == [
                    ("every-second", "one", "* * * * * *")
                ]
                assert listed[0].context == {"_inputs.n0": 10}
                deadline = time.monotonic() + 30
                runs = []
                while time.monotonic() < deadline:
                    runs = await a.list_runs(blueprint_id="one")
                    if len([r for r in runs if r.status == "completed"]) >= 3:
                        break
                    await asyncio.sleep(0.2)
                done = [r for r in runs if r.status == "completed"]
                assert len(done) >= 3, runs
                ticks = sorted(int(r.run_id.rpartition("~")[2]) for r in runs)
                assert all(r.run_id.startswith("every-second~") for r in runs)
                assert len(set(ticks)) == len(ticks)  # one run per tick
                assert all(b - a >= 1000 for a, b in itertools.pairwise(ticks))
                result = await a.get_result(done[0].run_id)
                assert result is not None and result.context["_outputs.n0"] == 11

                # A tick delivered again (its job, as BullMQ kept it) starts no second run.
                tick = ticks[0]
                job = await a._queue.getJob(f"repeat:{SCHEDULER_PREFIX}every-second:{tick}")
                assert job is not None
                again = await process_schedule_tick(a, job)
                assert again == {"runId": tick_run_id("every-second", tick), "created": False}

                assert await a.remove_schedule("every-second") is True
                assert await a.remove_schedule("every-second") is False
                assert await a.list_schedules() == []
                await asyncio.sleep(1.5)  # a tick taken just before the removal may finish
                before = len(await a.list_runs(blueprint_id="one"))
                await asyncio.sleep(2.5)
                assert len(await a.list_runs(blueprint_id="one")) == before

        asyncio.run(scenario())


def test_schedule_commands(
    redis_url: str, prefix: str, blueprint_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def cli(*argv: str) -> tuple[int, str, str]:
        code = main(
            [*argv, "--redis", redis_url, "--prefix", prefix, "--blueprints", str(blueprint_dir)]
        )
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = cli("schedule", "add", "one", "--cron", "0 * * * *", "--context", '{"a": 1}')
    assert (code, out) == (0, "one\n")
    code, out, _ = cli("schedule", "add", "one", "--every", "60000", "--id", "minutely")
    assert (code, out) == (0, "minutely\n")
    code, out, _ = cli("schedule", "list")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2
    assert any(line.startswith("minutely  one  every 60000 ms  next ") for line in lines)
    assert any(line.startswith("one  one  cron '0 * * * *'  next ") for line in lines)
    code, out, _ = cli("schedule", "list", "--json")
    listed = {s["id"]: s for s in json.loads(out)}
    assert listed["one"]["context"] == {"a": 1} and listed["one"]["cron"] == "0 * * * *"
    assert listed["minutely"]["everyMs"] == 60000
    code, out, err = cli("schedule", "add", "one", "--cron", "not a cron")
    assert code == 2 and "invalid schedule" in err
    code, out, err = cli("schedule", "add", "nope", "--cron", "0 * * * *")
    assert code != 0 and "nope" in err
    assert cli("schedule", "remove", "minutely")[:2] == (0, "removed\n")
    code, _, err = cli("schedule", "remove", "minutely")
    assert code == 1 and "no schedule 'minutely'" in err
    assert cli("schedule", "remove", "one")[0] == 0
    assert cli("schedule", "list")[1] == ""
