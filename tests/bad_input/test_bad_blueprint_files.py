"""Every kind of bad blueprint gets one clear problem naming the place (a JSON path and a code),
never a traceback or a hang: through `load_blueprint` and through `flowcraft validate` (exit 1,
`file: path: message [CODE]`, nothing on stderr). Bugs these found: a 1e999 number loaded as
inf, a YAML integer too long to convert escaped as ValueError, a megabyte-long invalid id was
repeated in the message, and a mapping nested 50,000 levels took minutes (now a problem past
1,000 levels)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from flowcraft_core.blueprint import load_blueprint
from flowcraft_core.cli import main
from flowcraft_core.errors import BlueprintError

A_TO_B = [{"id": "a", "uses": "work"}, {"id": "b", "uses": "work"}]


def _doc(**fields: Any) -> str:
    return json.dumps({"id": "bad", "nodes": A_TO_B, "edges": [], **fields})


def _edge(**fields: Any) -> str:
    return _doc(edges=[{"source": "a", "target": "b", **fields}])


# (file name, text, path of the one problem, code, a fragment of its message)
CASES: list[tuple[str, str | bytes, str, str, str]] = [
    ("syntax.json", '{"id": "bad", "nodes": [}', "$", "INVALID_SYNTAX", "line 1, column 25"),
    ("syntax.yaml", "id: bad\nnodes: [\n", "$", "INVALID_SYNTAX", "invalid YAML at line 3"),
    ("empty.json", "", "$", "INVALID_SYNTAX", "invalid JSON"),
    ("latin1.json", b'{"id": "b\xe9"}', "$", "INVALID_SYNTAX", "not UTF-8"),
    ("array.json", "[1, 2]", "$", "INVALID_TYPE", "must be an object"),
    ("unknown.json", _doc(colour=1), "colour", "UNKNOWN_FIELD", "unknown field"),
    ("type.json", _doc(nodes="a"), "nodes", "INVALID_TYPE", "array"),
    ("type2.json", _doc(nodes=[{"id": "a", "uses": 7}]), "nodes[0].uses", "INVALID_TYPE", ""),
    ("missing.json", json.dumps({"id": "bad", "edges": []}), "nodes", "MISSING_FIELD", ""),
    (
        "dangling.json",
        _doc(edges=[{"source": "a", "target": "zz"}]),
        "edges[0].target",
        "UNKNOWN_EDGE_TARGET",
        "'zz'",
    ),
    (
        "duplicate.json",
        _doc(nodes=[*A_TO_B, {"id": "a", "uses": "work"}]),
        "nodes[2].id",
        "DUPLICATE_NODE_ID",
        "",
    ),
    ("expr.json", _edge(condition="a >"), "edges[0].condition", "INVALID_EXPRESSION", "column"),
    (
        "dunder.json",
        _edge(condition="a.__class__"),
        "edges[0].condition",
        "INVALID_EXPRESSION",
        "'__'",
    ),
    (
        "long-expr.json",
        _edge(condition="a + " * 600 + "a"),
        "edges[0].condition",
        "INVALID_EXPRESSION",
        "longer than 2000 characters",
    ),
    (
        "huge-expr.json",
        _edge(condition="(" * 500_000),
        "edges[0].condition",
        "INVALID_VALUE",
        "at most 10000 characters",
    ),
    (
        "nested-expr.json",
        _edge(condition="(" * 40 + "a" + ")" * 40),
        "edges[0].condition",
        "INVALID_EXPRESSION",
        "more than 32 levels",
    ),
    ("deep.json", _doc(metadata={"x": "@"}).replace('"@"', "[" * 5000 + "]" * 5000), "$",
     "INVALID_SYNTAX", "nested too deeply"),
    ("deep.yaml", "id: bad\nnodes: []\nmetadata: " + "[" * 5000 + "]" * 5000, "$",
     "INVALID_SYNTAX", "nested too deeply"),
    ("inf.json", _doc(metadata={"n": "@"}).replace('"@"', "1e999"), "metadata.n",
     "INVALID_VALUE", "finite"),
    ("nan.yaml", "id: bad\nnodes: []\nmetadata: {n: .nan}\n", "metadata.n", "INVALID_VALUE",
     "finite"),
    ("bigint.json", _doc(metadata={"n": "@"}).replace('"@"', "9" * 5000), "$",
     "INVALID_SYNTAX", "digits"),
    ("bigint.yaml", "id: bad\nnodes: []\nmetadata: {n: " + "9" * 5000 + "}\n", "$",
     "INVALID_SYNTAX", "digits"),
    ("tag.yaml", "id: bad\nnodes: !!python/object/apply:os.getcwd []\n", "$", "INVALID_SYNTAX",
     "only plain JSON data"),
    ("long-id.json", json.dumps({"id": "x" * 5_000_000, "nodes": [], "edges": []}), "id",
     "INVALID_VALUE", "at most 200 characters"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "text", "path", "code", "fragment"), CASES, ids=[case[0] for case in CASES]
)
def test_one_clear_problem_from_load_and_from_validate(
    name: str,
    text: str | bytes,
    path: str,
    code: str,
    fragment: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    file = tmp_path / name
    if isinstance(text, bytes):
        file.write_bytes(text)
    else:
        file.write_text(text, encoding="utf-8")
    began = time.monotonic()
    with pytest.raises(BlueprintError) as caught:
        load_blueprint(file)
    assert [(p.path, p.code) for p in caught.value.problems] == [(path, code)]
    assert fragment in caught.value.problems[0].message
    assert len(str(caught.value)) < 500  # the message never echoes a huge input
    assert main(["validate", str(file)]) == 1
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert lines[0].startswith(f"{file}: {path}: ") and lines[0].endswith(f"[{code}]")
    assert lines[1:] == ["1 file: 1 error, 0 warnings"]
    assert time.monotonic() - began < 10


def test_unknown_uses_and_cycles_without_an_entry_point_are_lint_findings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """They load (a registry decides what runs; a cycle may be entered later): `validate`
    reports them, as errors with a registry and as warnings under --strict."""
    file = tmp_path / "lint.json"
    edges = [{"source": "a", "target": "b"}, {"source": "b", "target": "a"}]
    file.write_text(_doc(nodes=[*A_TO_B, {"id": "c", "uses": "nope"}], edges=edges), "utf-8")
    assert load_blueprint(file).id == "bad"
    assert main(["validate", str(file)]) == 0
    out, _ = capsys.readouterr()
    assert "[CYCLE_WITHOUT_ENTRY_POINT]" in out
    assert main(["validate", str(file), "--strict"]) == 1
    registry = "--registry=blueprints.order_processing.nodes:registry"  # has no `nope`
    assert main(["validate", str(file), registry]) == 1
    out, err = capsys.readouterr()
    assert f"{file}: nodes[2].uses: " in out and "[MISSING_IMPLEMENTATION]" in out
    assert err == ""


def test_a_real_cli_process_prints_no_traceback(tmp_path: Path) -> None:
    """One `flowcraft validate` process over every bad file: exit 1, one line per problem."""
    files = []
    for name, text, _, _, _ in CASES:
        file = tmp_path / name
        if isinstance(text, bytes):
            file.write_bytes(text)
        else:
            file.write_text(text, encoding="utf-8")
        files.append(str(file))
    done = subprocess.run(
        [sys.executable, "-m", "flowcraft_core.cli", "validate", *files],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr == ""
    assert done.stdout.splitlines()[-1] == f"{len(CASES)} files: {len(CASES)} errors, 0 warnings"


def test_control_characters_in_keys_are_escaped_in_the_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A key carrying a terminal escape sequence or a line separator cannot reach the
    terminal raw, nor split one problem over two lines."""
    file = tmp_path / "escape.json"
    node = {"id": "a", "uses": "w", "\x1b[2J\x1e": 1, "x\u2028y": 2}
    file.write_text(json.dumps({"id": "bad", "nodes": [node], "edges": []}), "utf-8")
    assert main(["validate", str(file)]) == 1
    out, _ = capsys.readouterr()
    lines = out.split("\n")
    assert lines[0].startswith(f'{file}: nodes[0]["\\u001b[2J\\u001e"]: unknown field ')
    assert lines[1].startswith(f'{file}: nodes[0]["x\\u2028y"]: unknown field ')
    assert lines[2] == "1 file: 2 errors, 0 warnings"
    assert not any(c in out for c in "\x1b\x1e\u2028")
