"""The installed `flowcraft` console script, run as README and scripts/demo.sh run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cli_support import DEMO_BLUEPRINT, DEMO_REGISTRY, DEMO_RUN

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).parent / "flowcraft"


def test_installed_script_runs_the_demo() -> None:
    done = subprocess.run(
        [str(SCRIPT), *DEMO_RUN, "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["status"] == "completed"
    assert document["context"]["_outputs.notify"]["subject"] == "Order A-100 paid"


def test_installed_script_exit_code_for_awaiting_and_errors() -> None:
    context = '{"order": {"id": "A-9", "amount": 9000, "customer": "ada@example.com"}}'
    base = [str(SCRIPT), "run", DEMO_BLUEPRINT, "--registry", DEMO_REGISTRY]
    awaiting = subprocess.run(
        [*base, "--context", context], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert awaiting.returncode == 3, awaiting.stderr
    assert "status:    awaiting" in awaiting.stdout

    missing = subprocess.run(
        [str(SCRIPT), "run", "nope.yaml"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert missing.returncode == 2
    assert missing.stderr == "flowcraft: error: file not found: 'nope.yaml'\n"
