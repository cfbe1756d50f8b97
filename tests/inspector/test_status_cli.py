"""`flowcraft status RUN_ID`: the inspector's view of a run in the terminal (rich when it is
installed, plain text when it is not), and `--json`."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from bullmq_processes import adapter
from inspector_support import BLUEPRINTS, DECLINED, make_registry

from flowcraft_core.cli import main


@pytest.fixture
def blueprint_dir(tmp_path: Path) -> Path:
    for bp in BLUEPRINTS:
        (tmp_path / f"{bp['id']}.json").write_text(json.dumps(bp), encoding="utf-8")
    return tmp_path


def start_runs(redis_url: str, prefix: str) -> None:
    """b1 failed, w1 awaiting (run by a worker here); q1 queued (nobody consumes it)."""

    async def scenario() -> None:
        async with adapter(redis_url, prefix, blueprints=BLUEPRINTS, registry=make_registry()) as a:
            for blueprint_id, run_id in (("broken", "b1"), ("approval", "w1")):
                await a.start_run(blueprint_id, run_id=run_id)
                await a.wait_for_result(run_id, timeout_s=20)
        async with adapter(redis_url, prefix, blueprints=BLUEPRINTS, consume=False) as a:
            await a.start_run("chain", run_id="q1")

    asyncio.run(scenario())


def status(
    capsys: pytest.CaptureFixture[str], redis_url: str, prefix: str, bp_dir: Path, *argv: str
) -> tuple[int, str]:
    code = main(
        ["status", *argv, "--redis", redis_url, "--prefix", prefix, "--blueprints", str(bp_dir)]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    return code, out


def lines_with(out: str, word: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines() if line.split()[:1] == [word]]


@pytest.mark.parametrize("rich", [True, False], ids=["rich", "plain"])
def test_status_lists_activations_errors_waits_and_outputs(
    rich: bool,
    redis_url: str,
    prefix: str,
    blueprint_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not rich:  # as if the extra were not installed: `import rich` fails
        monkeypatch.setitem(sys.modules, "rich", None)
    start_runs(redis_url, prefix)

    _, out = status(capsys, redis_url, prefix, blueprint_dir, "b1")
    assert "status:    failed" in out and "blueprint: broken" in out
    assert next(row[:3] for row in lines_with(out, "charge")) == ["charge", "failed", "1"]
    assert lines_with(out, "ship")[0][1] == "skipped"
    assert lines_with(out, "audit")[0][1] == "done"
    assert f"ValueError: {DECLINED}" in out
    assert "errors:" in out and "outputs:" in out
    assert ("─" in out) == rich  # rich draws the table's header rule; plain text does not

    _, out = status(capsys, redis_url, prefix, blueprint_dir, "w1")
    assert "status:    awaiting" in out and "waiting:" in out
    assert lines_with(out, "ask")[0][1] == "waiting"
    assert lines_with(out, "yes")[0][1] == "pending"  # not reached

    _, out = status(capsys, redis_url, prefix, blueprint_dir, "q1")
    assert "status:    running" in out and "(so far)" in out
    assert lines_with(out, "n0")[0][1] == "queued"


def test_status_json_has_nodes_and_activations(
    redis_url: str, prefix: str, blueprint_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start_runs(redis_url, prefix)
    _, out = status(capsys, redis_url, prefix, blueprint_dir, "w1", "--json")
    document = json.loads(out)
    assert document["status"] == "awaiting"
    assert document["context"]["_awaitingNodeIds"] == ["ask"]
    assert document["nodes"] == {"a": "done", "ask": "waiting"}
    assert [a["akey"] for a in document["activations"]] == ["a@", "ask@"]
    _, out = status(capsys, redis_url, prefix, blueprint_dir, "q1", "--json")
    assert json.loads(out)["nodes"] == {"n0": "queued"}
