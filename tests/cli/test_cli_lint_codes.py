"""`flowcraft validate` flags every lint code (SPEC 8.2) on a fixture made to trigger it."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import cli

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "lint"
LINT_CODES = [
    "MISSING_IMPLEMENTATION",
    "MISSING_FALLBACK_IMPLEMENTATION",
    "INVALID_BATCH_WORKER",
    "INVALID_PARAMS",
    "UNKNOWN_SUBFLOW_BLUEPRINT",
    "UNREACHABLE_NODE",
    "CYCLE_WITHOUT_ENTRY_POINT",
    "UNGUARDED_LOOP",
    "USELESS_JOIN_STRATEGY",
    "UNREACHABLE_ACTION",
    "DUPLICATE_EDGE",
]
ERRORS = {
    "MISSING_IMPLEMENTATION",
    "MISSING_FALLBACK_IMPLEMENTATION",
    "INVALID_BATCH_WORKER",
    "INVALID_PARAMS",
    "UNKNOWN_SUBFLOW_BLUEPRINT",
}


def test_every_spec_lint_code_has_a_fixture() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.yaml")) == sorted(LINT_CODES)


@pytest.mark.parametrize("code", LINT_CODES)
def test_validate_flags_the_code(capsys: pytest.CaptureFixture[str], code: str) -> None:
    path = str(FIXTURES / f"{code}.yaml")
    validate = (
        "validate",
        path,
        "--registry",
        "cli_nodes:registry",
        "--blueprints",
        "blueprints/loop",
    )
    exit_code, out, _ = cli(capsys, *validate, "--strict")
    flagged = [line for line in out.splitlines() if line.endswith(f"[{code}]")]
    assert flagged, out
    assert all(line.startswith(f"{path}: ") for line in flagged), flagged
    assert exit_code == 1
    if code not in ERRORS:
        # Warnings alone do not fail validation without --strict.
        lenient, out2, _ = cli(capsys, *validate)
        assert lenient == 0, out2
