"""`flowcraft validate` (SPEC 8.2, 10): load and lint, `file: path: message [CODE]` per line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import DEMO_BLUEPRINT, assert_one_line_error, cli, write_blueprint

CaptureFixture = pytest.CaptureFixture[str]

EXAMPLE_FILES = [
    "blueprints/order_processing/order-processing.yaml",
    "blueprints/etl_batch/etl.yaml",
    "blueprints/retry_fallback/retry-fallback.json",
    "blueprints/loop/paginate.json",
    "blueprints/subflow/customer-report.yaml",
    "blueprints/subflow/customer-enrichment.yaml",
]
EXAMPLE_REGISTRIES = [
    "--registry=blueprints.order_processing.nodes:registry",
    "--registry=blueprints.etl_batch.nodes:registry",
    "--registry=blueprints.retry_fallback.nodes:registry",
    "--registry=blueprints.loop.nodes:registry",
    "--registry=blueprints.subflow.nodes:registry",
]
WARNS = {
    "id": "warns",
    "nodes": [
        {"id": "a", "uses": "echo"},
        {"id": "b", "uses": "echo", "config": {"joinStrategy": "any"}},
    ],
    "edges": [{"source": "a", "target": "b"}],
}


def test_every_example_is_valid(capsys: CaptureFixture) -> None:
    code, out, err = cli(
        capsys,
        "validate",
        *EXAMPLE_FILES,
        *EXAMPLE_REGISTRIES,
        "--blueprints",
        "blueprints/subflow",
        "--strict",
    )

    assert code == 0, out
    assert err == ""
    assert out.splitlines() == [f"{name}: ok" for name in EXAMPLE_FILES] + [
        "6 files: 0 errors, 0 warnings"
    ]


def test_load_problems_are_listed_one_per_line_and_exit_1(
    capsys: CaptureFixture, tmp_path: Path
) -> None:
    path = write_blueprint(
        tmp_path,
        "bad.json",
        {
            "id": "bad",
            "nodes": [
                {"id": "a", "uses": "echo", "config": {"maxRetries": 0}},
                {"id": "a", "uses": "echo"},
            ],
            "edges": [{"source": "a", "target": "b", "condition": "1 +"}],
        },
    )
    code, out, _ = cli(capsys, "validate", path)

    assert code == 1
    lines = out.splitlines()
    assert (
        lines[0] == f"{path}: nodes[0].config.maxRetries: must be an integer >= 1 [INVALID_VALUE]"
    )
    assert lines[1].startswith(f"{path}: nodes[1].id: ")
    assert lines[1].endswith("[DUPLICATE_NODE_ID]")
    assert lines[2] == f"{path}: edges[0].target: unknown node 'b' [UNKNOWN_EDGE_TARGET]"
    assert lines[3].startswith(f"{path}: edges[0].condition: ")
    assert lines[3].endswith("[INVALID_EXPRESSION]")
    assert lines[-1] == "1 file: 4 errors, 0 warnings"


def test_malformed_yaml_is_one_problem_at_the_root(capsys: CaptureFixture, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("id: x\nnodes: [\n")
    code, out, _ = cli(capsys, "validate", str(path))

    assert code == 1
    assert out.splitlines() == [
        f"{path}: $: invalid YAML at line 3, column 1: did not find expected node content "
        "[INVALID_SYNTAX]",
        "1 file: 1 error, 0 warnings",
    ]


def test_lint_errors_need_the_registry(capsys: CaptureFixture) -> None:
    code, out, _ = cli(capsys, "validate", DEMO_BLUEPRINT)
    assert code == 0
    assert out.splitlines()[0] == f"{DEMO_BLUEPRINT}: ok"

    code, out, _ = cli(capsys, "validate", DEMO_BLUEPRINT, "--registry", "cli_nodes:registry")
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == (
        f"{DEMO_BLUEPRINT}: nodes[0].uses: node 'validate' uses 'orders.validate', which is not "
        "registered [MISSING_IMPLEMENTATION]"
    )
    assert lines[-1] == "1 file: 7 errors, 0 warnings"


def test_warnings_pass_unless_strict(capsys: CaptureFixture, tmp_path: Path) -> None:
    path = write_blueprint(tmp_path, "warns.json", WARNS)

    code, out, _ = cli(capsys, "validate", path)
    assert code == 0
    warning = out.splitlines()[0]
    assert warning.startswith(f"{path}: nodes[1].config.joinStrategy: warning: node 'b' sets")
    assert warning.endswith("[USELESS_JOIN_STRATEGY]")
    assert out.splitlines()[-1] == "1 file: 0 errors, 1 warning"

    code, _, _ = cli(capsys, "validate", path, "--strict")
    assert code == 1


def test_subflow_children_are_checked_with_blueprints(capsys: CaptureFixture) -> None:
    parent = "blueprints/subflow/customer-report.yaml"
    code, out, _ = cli(capsys, "validate", parent, "--blueprints", "blueprints/loop")
    assert code == 1
    assert out.splitlines()[0] == (
        f"{parent}: nodes[1].params.blueprintId: subflow 'enrich' runs blueprint "
        "'customer-enrichment', which is not in blueprints [UNKNOWN_SUBFLOW_BLUEPRINT]"
    )

    code, out, _ = cli(capsys, "validate", parent, "--blueprints", "blueprints/subflow")
    assert code == 0


def test_json_format(capsys: CaptureFixture, tmp_path: Path) -> None:
    path = write_blueprint(tmp_path, "warns.json", WARNS)
    code, out, _ = cli(capsys, "validate", path, DEMO_BLUEPRINT, "--format", "json")

    assert code == 0
    document = json.loads(out)
    assert document["valid"] is True
    first, second = document["files"]
    assert (first["file"], first["blueprintId"], first["valid"]) == (path, "warns", True)
    [issue] = first["issues"]
    assert issue["code"] == "USELESS_JOIN_STRATEGY"
    assert issue["severity"] == "warning"
    assert issue["path"] == "nodes[1].config.joinStrategy"
    assert issue["nodeId"] == "b"
    assert second == {
        "file": DEMO_BLUEPRINT,
        "blueprintId": "order-processing",
        "valid": True,
        "issues": [],
    }

    code, out, _ = cli(capsys, "validate", path, "--format", "json", "--strict")
    assert code == 1
    assert json.loads(out)["valid"] is False


def test_unreadable_file_exits_2_but_the_others_are_checked(capsys: CaptureFixture) -> None:
    code, out, _ = cli(capsys, "validate", "no/such.json", DEMO_BLUEPRINT)

    assert code == 2
    assert out.splitlines() == [
        "no/such.json: $: file not found: 'no/such.json' [FILE_NOT_FOUND]",
        f"{DEMO_BLUEPRINT}: ok",
        "2 files: 1 error, 0 warnings",
    ]


def test_bad_registry_is_an_input_error(capsys: CaptureFixture) -> None:
    code, out, err = cli(capsys, "validate", DEMO_BLUEPRINT, "--registry", "cli_nodes:nope")

    assert code == 2
    assert out == ""
    assert_one_line_error(err, "has no attribute 'nope'")
