"""`flowcraft graph` (Mermaid, DOT, SVG/PNG through Graphviz) and `flowcraft schema`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_support import DEMO_BLUEPRINT, assert_one_line_error, cli, write_blueprint

from flowcraft_core import load_blueprint
from flowcraft_core.analysis import to_dot, to_mermaid
from flowcraft_core.blueprint import blueprint_json_schema

CaptureFixture = pytest.CaptureFixture[str]
needs_graphviz = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz not installed")


def test_mermaid_is_the_default(capsys: CaptureFixture) -> None:
    code, out, _ = cli(capsys, "graph", DEMO_BLUEPRINT)

    assert code == 0
    assert out == to_mermaid(load_blueprint(DEMO_BLUEPRINT)) + "\n"
    assert out.startswith("flowchart TD\n")
    assert '("approval")' in out


def test_dot_to_a_file(capsys: CaptureFixture, tmp_path: Path) -> None:
    target = tmp_path / "graph.dot"
    code, out, _ = cli(capsys, "graph", DEMO_BLUEPRINT, "--format", "dot", "-o", str(target))

    assert code == 0
    assert out == ""
    text = target.read_text()
    assert text == to_dot(load_blueprint(DEMO_BLUEPRINT)) + "\n"
    assert text.startswith('digraph "order-processing" {')


@needs_graphviz
def test_svg_through_graphviz(capsys: CaptureFixture) -> None:
    code, out, _ = cli(capsys, "graph", DEMO_BLUEPRINT, "--format", "svg")

    assert code == 0
    assert "<svg" in out
    assert "charge_card" in out


@needs_graphviz
def test_png_to_a_file(capsys: CaptureFixture, tmp_path: Path) -> None:
    target = tmp_path / "graph.png"
    code, _, _ = cli(capsys, "graph", DEMO_BLUEPRINT, "--format", "png", "-o", str(target))

    assert code == 0
    assert target.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_without_graphviz_the_message_suggests_text_formats(
    capsys: CaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fmt: str
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no `dot`
    code, out, err = cli(capsys, "graph", DEMO_BLUEPRINT, "--format", fmt)

    assert code == 2
    assert out == ""
    assert_one_line_error(err, f"--format {fmt}", "Graphviz", "mermaid", "dot")


def test_graphviz_failure_is_reported(
    capsys: CaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\necho 'dot: something broke' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    code, _, err = cli(capsys, "graph", DEMO_BLUEPRINT, "--format", "svg")

    assert code == 2
    assert_one_line_error(err, "graphviz `dot` failed (exit 3): dot: something broke")


def test_invalid_blueprint_is_an_input_error(capsys: CaptureFixture, tmp_path: Path) -> None:
    path = write_blueprint(tmp_path, "bad.json", {"id": "bad", "nodes": [{"id": "a"}]})
    code, out, err = cli(capsys, "graph", path)

    assert code == 2
    assert out == ""
    assert err.splitlines()[1] == f"  {path}: nodes[0].uses: required field missing [MISSING_FIELD]"


def test_schema_prints_the_json_schema(capsys: CaptureFixture, tmp_path: Path) -> None:
    code, out, _ = cli(capsys, "schema")
    assert code == 0
    assert json.loads(out) == blueprint_json_schema()

    target = tmp_path / "schema.json"
    code, out, _ = cli(capsys, "schema", "-o", str(target))
    assert code == 0
    assert out == ""
    assert json.loads(target.read_text()) == blueprint_json_schema()


def test_unwritable_output_is_an_input_error(capsys: CaptureFixture, tmp_path: Path) -> None:
    code, _, err = cli(capsys, "schema", "-o", str(tmp_path / "no" / "dir" / "s.json"))

    assert code == 2
    assert_one_line_error(err, "-o ", "No such file or directory")
