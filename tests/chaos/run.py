"""`python -m tests.chaos.run --runs 500 --workers 3` (from the repository root): the full chaos
run of issue 7 (see chaos_harness.py and docs/reliability.md). Exit 1 if anything was lost."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(_HERE.parent), str(_HERE)]

from chaos_harness import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
