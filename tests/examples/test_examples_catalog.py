"""Every example directory: a blueprint, a `nodes.py` with a `registry`, and a clean lint."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from flowcraft_core import NodeRegistry, load_blueprint
from flowcraft_core.analysis import lint_blueprint

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "blueprints"
DIRECTORIES = sorted(p.name for p in EXAMPLES.iterdir() if (p / "nodes.py").exists())


def blueprint_files(name: str) -> list[Path]:
    return sorted(p for p in (EXAMPLES / name).iterdir() if p.suffix in (".yaml", ".json"))


def test_there_are_at_least_five_examples() -> None:
    assert {"order_processing", "etl_batch", "retry_fallback", "loop", "subflow"} <= set(
        DIRECTORIES
    )


@pytest.mark.parametrize("name", DIRECTORIES)
def test_example_loads_and_lints_clean(name: str) -> None:
    module = importlib.import_module(f"blueprints.{name}.nodes")
    assert isinstance(module.registry, NodeRegistry)
    files = blueprint_files(name)
    assert files, f"no blueprint in blueprints/{name}"
    blueprints = {bp.id: bp for bp in (load_blueprint(path) for path in files)}
    for bp in blueprints.values():
        report = lint_blueprint(bp, module.registry, blueprints)
        assert report.issues == (), [str(issue) for issue in report.issues]
