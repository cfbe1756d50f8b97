"""`python -m benchmarks --only bulk` (benchmarks/bulk_starts.py): start_runs and start_run
rows for chain1 and chain10 on one and two worker processes, every run completed."""

from __future__ import annotations

from test_benchmark_runs import bench, number


def test_bulk_section_prints_started_and_finished_rates() -> None:
    sections = bench("--only", "bulk")
    lines = sections["bulk"]
    assert lines[0].split()[:3] == ["workload", "workers", "how"]
    rows = {}
    for line in lines[1:]:
        fields = line.split()
        how = "start_runs" if fields[2] == "start_runs" else "start_run"
        rows[(fields[0], fields[1], how)] = fields
    for workload in ("chain1", "chain10"):
        for workers in ("1", "2"):
            for how in ("start_runs", "start_run"):
                row = rows[(workload, workers, how)]
                assert row[-1] == "completed", row
                assert number(row[-3]) > 0 and number(row[-2]) > 0, row
    assert "distributed" not in sections and "in-process" not in sections
