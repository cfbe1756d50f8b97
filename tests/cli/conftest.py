"""Fixtures for the CLI tests: run from the repository root, with `cli_nodes` importable."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands of README and scripts/demo.sh run from the repository root."""
    monkeypatch.chdir(REPO)
