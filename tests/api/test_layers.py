"""Layers point one way: flowcraft_core never imports Redis or BullMQ (checked on the source)."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import flowcraft_core

CORE = pathlib.Path(flowcraft_core.__file__).parent
FORBIDDEN = ("redis", "bullmq", "flowcraft_bullmq")


def _imports(path: pathlib.Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append("." * node.level + node.module)
    return names


def test_core_source_has_no_redis_or_bullmq_imports() -> None:
    offenders = []
    for path in sorted(CORE.rglob("*.py")):
        for name in _imports(path):
            if name.lstrip(".").split(".")[0] in FORBIDDEN:
                offenders.append(f"{path.relative_to(CORE)}: {name}")
    assert not offenders, offenders


def test_importing_core_loads_no_redis_module() -> None:
    code = (
        "import sys, flowcraft_core, flowcraft_core.runtime, flowcraft_core.analysis;"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('redis','bullmq')];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_model_and_analysis_layers_do_not_import_the_runtime() -> None:
    offenders = []
    for layer in ("blueprint", "analysis", "expressions"):
        for path in sorted((CORE / layer).rglob("*.py")):
            for name in _imports(path):
                parts = name.lstrip(".").split(".")
                if "runtime" in parts or "nodes" in parts:
                    offenders.append(f"{layer}/{path.name}: {name}")
    assert not offenders, offenders
