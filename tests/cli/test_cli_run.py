"""`flowcraft run` (SPEC 10): output, exit codes by status, inputs, errors, --watch."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cli_support import (
    DEMO_BLUEPRINT,
    DEMO_CONTEXT,
    DEMO_REGISTRY,
    DEMO_RUN,
    assert_one_line_error,
    cli,
    write_blueprint,
)
from flow_maps import flow

CaptureFixture = pytest.CaptureFixture[str]

ECHO_WAIT = {
    "id": "echo-wait",
    "nodes": [{"id": "a", "uses": "echo", "inputs": "name"}, {"id": "w", "uses": "wait"}],
    "edges": [{"source": "a", "target": "w"}],
}
FAILING = {
    "id": "failing",
    "nodes": [
        {"id": "a", "uses": "echo", "inputs": "name"},
        {"id": "b", "uses": "boom", "config": {"maxRetries": 2}},
        {"id": "c", "uses": "echo"},
    ],
    "edges": [{"source": "a", "target": "b"}, {"source": "b", "target": "c"}],
}


# ---------------------------------------------------------------------- the main example


def test_demo_command_completes_with_outputs_and_skips(capsys: CaptureFixture) -> None:
    code, out, err = cli(capsys, *DEMO_RUN)

    assert code == 0
    assert err == ""
    lines = out.splitlines()
    assert lines[0] == "blueprint: order-processing"
    assert re.fullmatch(r"run: +[0-9a-f]{32}", lines[1])
    assert lines[2] == "status:    completed"
    assert lines[3] == "outputs:"
    rows = [line.split(None, 1) for line in lines[4:9]]
    assert [name for name, _ in rows] == ["validate", "score", "reserve", "charge_card", "notify"]
    assert json.loads(rows[-1][1]) == {
        "to": "ada@example.com",
        "subject": "Order A-100 paid",
        "body": "We charged 120.00 to your card (TX-A-100).",
    }
    assert lines[9:] == [
        "skipped:",
        "  approval      dead_path",
        "  reject_order  dead_path",
        "  send_invoice  dead_path",
    ]


def test_json_output(capsys: CaptureFixture) -> None:
    code, out, _ = cli(capsys, *DEMO_RUN, "--json")

    assert code == 0
    document = json.loads(out)
    assert set(document) == {
        "runId",
        "status",
        "context",
        "errors",
        "compensated",
        "compensationFailed",
    }
    assert document["status"] == "completed"
    assert document["errors"] == []
    assert document["context"]["_executionId"] == document["runId"]
    assert document["context"]["_outputs.charge_card"]["transactionId"] == "TX-A-100"
    assert document["context"]["order"]["id"] == "A-100"


def test_large_order_exits_3_awaiting(capsys: CaptureFixture) -> None:
    context = '{"order": {"id": "A-200", "amount": 5000, "customer": "ada@example.com"}}'
    code, out, _ = cli(
        capsys, "run", DEMO_BLUEPRINT, "--registry", DEMO_REGISTRY, "--context", context
    )

    assert code == 3
    assert "status:    awaiting" in out
    assert out.rstrip().endswith("waiting:\n  approval  external_event")


def test_context_from_a_file(capsys: CaptureFixture, tmp_path: Path) -> None:
    context = tmp_path / "ctx.json"
    context.write_text(DEMO_CONTEXT)
    code, out, _ = cli(
        capsys, "run", DEMO_BLUEPRINT, "--registry", DEMO_REGISTRY, "--context", f"@{context}"
    )

    assert code == 0
    assert "TX-A-100" in out


# ---------------------------------------------------------------------- statuses


def test_failed_run_exits_1_and_lists_errors(capsys: CaptureFixture, tmp_path: Path) -> None:
    path = write_blueprint(tmp_path, "failing.json", FAILING)
    code, out, err = cli(
        capsys, "run", path, "--registry", "cli_nodes:registry", "--context", '{"name": "x"}'
    )

    assert code == 1
    assert "status:    failed" in out
    assert out.rstrip().endswith("errors:\n  b  ValueError: boom went the node (after 2 attempts)")
    assert '  a  "x"' in out
    assert "skipped:\n  c  upstream_failed" in out
    assert "Traceback" not in err


def test_awaiting_run_exits_3(capsys: CaptureFixture, tmp_path: Path) -> None:
    path = write_blueprint(tmp_path, "wait.json", ECHO_WAIT)
    code, out, _ = cli(capsys, "run", path, "--registry", "cli_nodes:registry")

    assert code == 3
    assert "status:    awaiting" in out


def test_ctrl_c_cancels_the_run_and_exits_4(capsys: CaptureFixture, tmp_path: Path) -> None:
    interrupt = flow("interrupt", "a:echo b:interrupt", "a>b")
    path = write_blueprint(tmp_path, "interrupt.json", interrupt)
    code, out, err = cli(capsys, "run", path, "--registry", "cli_nodes:registry", "--json")

    assert code == 4
    document = json.loads(out)
    assert document["status"] == "cancelled"
    assert "_outputs.a" in document["context"]
    assert "_outputs.b" not in document["context"]
    assert "cancelling" in err


def test_several_registries_are_merged(capsys: CaptureFixture, tmp_path: Path) -> None:
    merged = flow("merged", "a:echo b:shout", "a>b", fields={"a": {"inputs": "name"}})
    path = write_blueprint(tmp_path, "merged.json", merged)
    code, out, _ = cli(
        capsys,
        "run",
        path,
        "--registry",
        "cli_nodes",  # ATTR defaults to `registry`
        "--registry",
        "cli_nodes:extra",  # a plain mapping
        "--registry",
        "cli_nodes:registry",  # again: the same entries merge
        "--context",
        '{"name": "ada"}',
    )

    assert code == 0, out
    assert '  b  "ADA"' in out


def test_registry_module_is_imported_from_the_working_directory(
    capsys: CaptureFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"cwd_nodes_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(
        "from flowcraft_core import NodeRegistry\n"
        "registry = NodeRegistry()\n"
        "registry.register('hello', lambda ctx: {'output': 'hello from cwd'})\n"
    )
    write_blueprint(tmp_path, "bp.json", {"id": "cwd", "nodes": [{"id": "h", "uses": "hello"}]})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", [p for p in __import__("sys").path if p not in ("", ".")])

    code, out, _ = cli(capsys, "run", "bp.json", "--registry", f"{module}:registry")

    assert code == 0, out
    assert '  h  "hello from cwd"' in out


def test_concurrency_one_runs_the_demo(capsys: CaptureFixture) -> None:
    code, out, _ = cli(capsys, *DEMO_RUN, "--concurrency", "1")
    assert code == 0
    assert "status:    completed" in out


# ---------------------------------------------------------------------- subflows


SUBFLOW_ARGS = (
    "run",
    "blueprints/subflow/customer-report.yaml",
    "--registry",
    "blueprints.subflow.nodes:registry",
    "--context",
    '{"customerId": "C-1"}',
)


def test_subflow_example_with_blueprints_dir(capsys: CaptureFixture) -> None:
    code, out, _ = cli(capsys, *SUBFLOW_ARGS, "--blueprints", "blueprints/subflow")

    assert code == 0
    assert '  report         "C-1: gold customer, 3 orders totalling 1145.50"' in out


def test_blueprint_given_by_id_from_the_blueprints_dir(capsys: CaptureFixture) -> None:
    args = list(SUBFLOW_ARGS)
    args[1] = "customer-report"
    code, out, _ = cli(capsys, *args, "--blueprints", "blueprints/subflow")

    assert code == 0
    assert "blueprint: customer-report" in out


def test_subflow_without_blueprints_dir_is_an_input_error(capsys: CaptureFixture) -> None:
    code, out, err = cli(capsys, *SUBFLOW_ARGS)

    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        "flowcraft: error: blueprints/subflow/customer-report.yaml: blueprint "
        "'customer-report' is invalid (1 problem)",
        "  blueprints/subflow/customer-report.yaml: nodes[1].params.blueprintId: no blueprint "
        "'customer-enrichment' in the runtime's blueprints [UNKNOWN_SUBFLOW_BLUEPRINT]",
        "  hint: pass the child blueprints' directory with --blueprints DIR",
    ]


# ---------------------------------------------------------------------- input errors: exit 2


def test_missing_implementations_are_listed_with_a_hint(capsys: CaptureFixture) -> None:
    code, out, err = cli(capsys, "run", DEMO_BLUEPRINT, "--context", DEMO_CONTEXT)

    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == (
        f"flowcraft: error: {DEMO_BLUEPRINT}: blueprint 'order-processing' is invalid (7 problems)"
    )
    assert lines[1] == (
        f"  {DEMO_BLUEPRINT}: nodes[0].uses: no implementation registered for "
        "'orders.validate' [MISSING_IMPLEMENTATION]"
    )
    assert lines[-1] == "  hint: pass the node implementations with --registry MODULE:ATTR"


def test_invalid_blueprint_prints_every_problem(capsys: CaptureFixture, tmp_path: Path) -> None:
    path = write_blueprint(
        tmp_path,
        "bad.json",
        {
            "id": "bad",
            "nodes": [{"id": "a", "uses": "echo", "config": {"joinStrategy": "some"}}],
            "edges": [{"source": "a", "target": "nowhere"}],
        },
    )
    code, _, err = cli(capsys, "run", path, "--registry", "cli_nodes:registry")

    assert code == 2
    assert err.splitlines() == [
        f"flowcraft: error: {path}: blueprint 'bad' is invalid (2 problems)",
        f"  {path}: nodes[0].config.joinStrategy: must be 'all' or 'any' [INVALID_VALUE]",
        f"  {path}: edges[0].target: unknown node 'nowhere' [UNKNOWN_EDGE_TARGET]",
    ]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["run", "no/such.yaml"], ["file not found", "no/such.yaml"]),
        (["run", DEMO_BLUEPRINT, "--context", "{oops"], ["--context: not valid JSON", "line 1"]),
        (["run", DEMO_BLUEPRINT, "--context", "[1, 2]"], ["expected a JSON object, got list"]),
        (["run", DEMO_BLUEPRINT, "--context", "@/no/such.json"], ["--context @/no/such.json"]),
        (["run", DEMO_BLUEPRINT, "--registry", "no_such_module_xyz:r"], ["cannot import"]),
        (["run", DEMO_BLUEPRINT, "--registry", "cli_nodes:nope"], ["has no attribute 'nope'"]),
        (
            ["run", DEMO_BLUEPRINT, "--registry", "cli_nodes:not_a_mapping"],
            ["expected a NodeRegistry or a mapping, got int"],
        ),
        (
            ["run", DEMO_BLUEPRINT, "--registry", "cli_nodes:claims_builtin"],
            ["'wait' is a reserved built-in node name"],
        ),
        (["run", DEMO_BLUEPRINT, "--blueprints", "README.md"], ["not a directory"]),
        (
            [
                "run",
                DEMO_BLUEPRINT,
                "--registry",
                "cli_nodes",
                "--registry",
                "cli_nodes:conflicting",
            ],
            ["--registry cli_nodes:conflicting: 'echo' is already bound to another implementation"],
        ),
        (
            [
                "run",
                DEMO_BLUEPRINT,
                "--registry",
                DEMO_REGISTRY,
                "--context",
                '{"_runState": {}}',
            ],
            ["_runState"],
        ),
    ],
)
def test_input_errors_are_one_line_and_exit_2(
    capsys: CaptureFixture, args: list[str], fragments: list[str]
) -> None:
    code, out, err = cli(capsys, *args)

    assert code == 2
    assert out == ""
    assert_one_line_error(err, *fragments)


def test_duplicate_ids_in_the_blueprints_dir(capsys: CaptureFixture, tmp_path: Path) -> None:
    write_blueprint(tmp_path, "one.json", {"id": "same", "nodes": []})
    write_blueprint(tmp_path, "two.json", {"id": "same", "nodes": []})
    code, _, err = cli(capsys, "run", DEMO_BLUEPRINT, "--blueprints", str(tmp_path))

    assert code == 2
    assert_one_line_error(err, "blueprint id 'same' is defined twice (one.json and two.json)")


@pytest.mark.parametrize(
    "args",
    [
        ["run"],
        ["run", DEMO_BLUEPRINT, "--concurrency", "0"],
        ["run", DEMO_BLUEPRINT, "--concurrency", "many"],
        ["launch", DEMO_BLUEPRINT],
        ["--log-level", "chatty", "schema"],
        [],
    ],
)
def test_usage_errors_exit_2(capsys: CaptureFixture, args: list[str]) -> None:
    code, out, err = cli(capsys, *args)

    assert code == 2
    assert out == ""
    assert "usage: flowcraft" in err
    assert "Traceback" not in err


def test_debug_shows_the_traceback(capsys: CaptureFixture) -> None:
    code, _, err = cli(capsys, "--debug", "run", "no/such.yaml")

    assert code == 2
    assert "Traceback (most recent call last)" in err
    assert err.rstrip().endswith("flowcraft: error: file not found: 'no/such.yaml'")


def test_global_options_also_work_after_the_command(capsys: CaptureFixture) -> None:
    code, _, err = cli(capsys, "run", "no/such.yaml", "--debug")

    assert code == 2
    assert "Traceback" in err


def test_log_level_debug_shows_engine_logs(capsys: CaptureFixture) -> None:
    code, _, err = cli(capsys, "--log-level", "debug", *DEMO_RUN)

    assert code == 0
    assert "INFO flowcraft_core.runtime: run " in err
    assert "DEBUG flowcraft_core." in err


def test_help_and_version_exit_0(capsys: CaptureFixture) -> None:
    code, out, _ = cli(capsys, "--help")
    assert code == 0
    assert "run" in out and "validate" in out and "graph" in out and "schema" in out

    code, out, _ = cli(capsys, "--version")
    assert code == 0
    assert out.startswith("flowcraft ")


# ---------------------------------------------------------------------- --watch


def test_watch_prints_progress_lines_to_stderr(capsys: CaptureFixture) -> None:
    code, out, err = cli(capsys, *DEMO_RUN, "--watch", "--json")

    assert code == 0
    assert json.loads(out)["status"] == "completed"  # stdout stays machine-readable
    events = [line.split("] ", 1)[1].split() for line in err.splitlines()]
    marks = [(words[0], words[1]) for words in events]
    assert marks[0] == ("start", "order-processing")
    assert marks[-1] == ("end", "order-processing")
    assert ("ok", "validate") in marks
    assert ("skip", "approval") in marks
    assert ("ok", "notify") in marks
    assert "\x1b[" not in err  # not a terminal: no status line


def test_numeric_options_refuse_out_of_range_values_with_one_message_shape() -> None:
    import argparse

    from flowcraft_core.cli._common import number_argument

    positive = number_argument(int, 1)
    above_zero = number_argument(float, 0, strict=True)
    assert positive("3") == 3 and above_zero("0.5") == 0.5
    for parse, text, message in [
        (positive, "0", "expected an integer >= 1, got 0"),
        (positive, "x", "expected an integer >= 1, got 'x'"),
        (above_zero, "0", "expected a number > 0, got 0"),
        (above_zero, "nan", "expected a number > 0, got nan"),
    ]:
        try:
            parse(text)
        except argparse.ArgumentTypeError as exc:
            assert str(exc) == message
        else:
            raise AssertionError(f"{text!r} was accepted")
