"""Helpers for the CLI tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flowcraft_core.cli import main

DEMO_BLUEPRINT = "blueprints/order_processing/order-processing.yaml"
DEMO_REGISTRY = "blueprints.order_processing.nodes:registry"
DEMO_CONTEXT = '{"order": {"id": "A-100", "amount": 120.0, "customer": "ada@example.com"}}'
#: The README's demo command (after `flowcraft`).
DEMO_RUN = ("run", DEMO_BLUEPRINT, "--registry", DEMO_REGISTRY, "--context", DEMO_CONTEXT)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run `flowcraft argv...` in-process: (exit code, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_blueprint(directory: Path, name: str, data: dict[str, Any]) -> str:
    path = directory / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def assert_one_line_error(err: str, *fragments: str) -> None:
    """Exactly one `flowcraft: error: ...` line, no traceback, containing every fragment."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("flowcraft: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, err)
