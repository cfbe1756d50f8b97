"""Absurd sizes load or fail in bounded, linear time (docs/security.md, "Limits"): no byte limit
on a blueprint; 10 MB of params loads; 20,000 nodes validate through the CLI in seconds; a
mapping nested 100,000 levels is one problem (it took minutes before: paths were copied at
every level)."""

from __future__ import annotations

import io
import json
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from flowcraft_core.blueprint import load_blueprint
from flowcraft_core.cli import main
from flowcraft_core.errors import BlueprintError

MB = 1_000_000


def test_ten_megabytes_of_params_load_quickly(tmp_path: Path) -> None:
    doc = {"id": "p", "nodes": [{"id": "a", "uses": "w", "params": {"blob": "x" * 10 * MB}}]}
    file = tmp_path / "params.json"
    file.write_text(json.dumps({**doc, "edges": []}), encoding="utf-8")
    began = time.monotonic()
    assert load_blueprint(file).nodes[0].params["blob"] == "x" * 10 * MB
    with redirect_stdout(io.StringIO()) as out:
        assert main(["validate", str(file)]) == 0
    assert out.getvalue().endswith("1 file: 0 errors, 0 warnings\n")
    assert time.monotonic() - began < 20


def _chain(n: int) -> dict[str, Any]:
    nodes = [{"id": f"n{i}", "uses": "work", "params": {"x": i}} for i in range(n)]
    edges = [
        {"source": f"n{i}", "target": f"n{i + 1}", "condition": f"result.output > {i % 7}"}
        for i in range(n - 1)
    ]
    return {"id": "big", "nodes": nodes, "edges": edges}


def test_twenty_thousand_nodes_validate_through_the_cli(tmp_path: Path) -> None:
    """100,000 nodes took 14 s in a `flowcraft validate` process on a loaded 2-core machine;
    CI checks a fifth of that. (load_blueprint alone: tests/blueprint/test_bp_properties.)"""
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    doc = _chain(20_000)
    good.write_text(json.dumps(doc), encoding="utf-8")
    doc["edges"][-1]["target"] = "nowhere"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    began = time.monotonic()
    with redirect_stdout(io.StringIO()) as out:
        assert main(["validate", str(good), str(bad)]) == 1
    elapsed = time.monotonic() - began
    assert out.getvalue().splitlines()[-2:] == [
        f"{bad}: edges[19998].target: unknown node 'nowhere' [UNKNOWN_EDGE_TARGET]",
        "2 files: 1 error, 0 warnings",
    ]
    print(f"validate 2 x 20k nodes: {elapsed:.1f}s")
    assert elapsed < 40


@pytest.mark.parametrize("depth", [2_000, 100_000])
def test_a_deeply_nested_mapping_is_one_problem_in_linear_time(depth: int) -> None:
    value: list[Any] = []
    innermost = value
    for _ in range(depth):
        innermost.append([])
        innermost = innermost[0]
    doc = {"id": "deep", "nodes": [{"id": "a", "uses": "w", "params": {"p": value}}], "edges": []}
    began = time.monotonic()
    with pytest.raises(BlueprintError) as caught:
        load_blueprint(doc)
    assert time.monotonic() - began < 10
    [problem] = caught.value.problems
    assert problem.code == "INVALID_VALUE"
    assert problem.message == "nests more than 1,000 levels deep"
    assert problem.path.startswith("nodes[0].params.p[0][0]")


def test_nesting_up_to_the_limit_loads() -> None:
    value: list[Any] = []
    innermost = value
    for _ in range(900):
        innermost.append([])
        innermost = innermost[0]
    doc = {"id": "deep", "nodes": [{"id": "a", "uses": "w", "params": {"p": value}}], "edges": []}
    assert load_blueprint(doc).nodes[0].params["p"] == value
