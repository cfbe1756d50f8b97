"""The distributed command group is found by name (core never imports flowcraft_bullmq) and
registering it loads neither BullMQ nor redis-py, so other commands stay quick."""

from __future__ import annotations

import subprocess
import sys


def test_group_is_registered_without_loading_bullmq_or_redis() -> None:
    code = (
        "import sys, argparse; from flowcraft_core.cli import build_parser;"
        "p = build_parser();"
        "sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction));"
        "print(' '.join(sorted(sub.choices)));"
        "print(','.join(m for m in sys.modules if m.split('.')[0] in ('bullmq', 'redis')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    commands, loaded = out.stdout.splitlines()
    assert {"worker", "start", "status", "resume", "cancel"} <= set(commands.split())
    assert loaded == ""
