"""The benchmark command works: every section prints its rows with figures > 0 and the
targets table; runs complete. No thresholds here (targets are printed, never asserted)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def bench(*args: str) -> dict[str, list[str]]:
    """Run `python -m benchmarks --quick ARGS`; its output lines by section ("== name")."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=110,
    ).stdout
    sections: dict[str, list[str]] = {"": []}
    current = ""
    for line in out.splitlines():
        if line.startswith("== "):
            current = line[3:].split()[0]
            sections[current] = []
        elif line.strip():
            sections[current].append(line)
    return sections


def rows(lines: list[str]) -> dict[tuple[str, str], list[str]]:
    """Table rows keyed by (workload, procs) for the distributed tables."""
    return {(f[0], f[1]): f for f in (line.split() for line in lines) if len(f) >= 10}


def number(text: str) -> float:
    return float(text.replace(",", ""))


def targets(sections: dict[str, list[str]]) -> dict[str, float]:
    out = {}
    assert sections["targets"][-1].startswith("load average at end: ")
    for line in sections["targets"][1:-1]:
        name, value = line[:46].strip(), line[46:58].strip()
        out[name] = float("nan") if value == "-" else number(value)
    return out


def test_inprocess_section_prints_completed_runs_and_its_targets() -> None:
    sections = bench("--only", "inprocess")
    lines = sections["in-process"]
    assert lines[0].split()[:2] == ["workload", "nodes"]
    by_name = {line.split()[0]: line for line in lines[1:]}
    assert {"chain1000", "chain10000", "fanout100", "chain10"} <= set(by_name)
    for name in ("chain1000", "chain10000", "fanout100"):
        assert by_name[name].rstrip().endswith("completed"), by_name[name]
    assert "node/s" in by_name["chain10"]
    found = targets(sections)
    assert found["inprocess chain10 node/s"] > 0
    assert "distributed" not in sections and "peers" not in sections


def test_distributed_section_runs_flowcraft_workers_and_the_bare_baseline() -> None:
    sections = bench("--only", "distributed")
    lines = sections["distributed"]
    table = rows(lines)
    for workload in ("chain10", "diamond8", "fanout100", "chain10:drain", "diamond8:drain"):
        for procs in ("1", "2"):
            row = table[(workload, procs)]
            assert row[-1] == "completed", row
            assert number(row[5]) > 0 and number(row[6]) > 0, row  # node/s, run/s
            assert number(row[7]) > 0 and number(row[9]) > 0, row  # evalsha/n, Redis CPU/n
            assert number(row[10]) > 0, row  # the workers' CPU per node
    for variant in ("as-installed", "uvloop", "no-uvloop", "no-hiredis"):
        row = table[(f"chain10:{variant}", "1")]
        assert row[-1] == "completed" and number(row[5]) > 0, row
    assert any("no-hiredis: uvloop" in line and "hiredis not loaded" in line for line in lines)
    bare = table[("bare-bullmq", "1")]
    assert bare[-1] == "drained" and number(bare[5]) > 0, bare
    ours = next(line for line in lines if line.strip().startswith("ours"))
    # load and complete, each on its own or composed with BullMQ's scripts (composed.py).
    assert number(ours.split()[1]) > 0 and "load.lua" in ours and "complete" in ours
    found = targets(sections)
    for name in (
        "chain10 drained (1 worker) / bare BullMQ rate",
        "chain10 started at once (1 worker) / bare",
        "chain10 / bare BullMQ by worker CPU per job",
        "fanout100 / chain10 per-node rate (1 worker)",
        "our Redis round trips per node (MONITOR)",
        "chain10 scaling 1 -> 2 worker processes",
        "diamond8 scaling 1 -> 2 worker processes",
    ):
        assert found[name] > 0, name


def test_peers_section_runs_each_installed_peer_or_says_why_not() -> None:
    sections = bench("--only", "peers")
    lines = sections["peers"]
    table = rows(lines)
    found = targets(sections)
    for peer in ("dramatiq", "celery"):
        if importlib.util.find_spec(peer) is None:
            assert any(line.startswith(f"note: {peer} skipped") for line in lines), lines
            continue
        for workload in ("chain10", "diamond8"):
            key = next(k for k in table if k[0] == f"{peer}-{workload}")
            assert table[key][-1] == "completed" and number(table[key][5]) > 0, table[key]
    # No flowcraft rows in this section alone: the ratios are printed as not measured.
    assert "chain10 flowcraft (2 workers) / dramatiq" in found
