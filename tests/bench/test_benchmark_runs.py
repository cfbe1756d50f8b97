"""The benchmark command works (figures are printed, runs complete); no thresholds here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_prints_a_table_of_completed_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    lines = out.strip().splitlines()
    assert lines[0].split()[:2] == ["workload", "nodes"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert {"chain1000", "chain10000", "fanout100", "chain10"} <= set(rows)
    for name in ("chain1000", "chain10000", "fanout100"):
        assert rows[name].rstrip().endswith("completed"), rows[name]
    assert "node/s" in rows["chain10"]
