"""`flowcraft worker` with its event loop or Redis parser swapped, to measure what each gives.

`python -m benchmarks.worker_variant [--block MODULE]... [--uvloop] -- worker ARGS...`
makes `import MODULE` fail (so redis-py runs without hiredis, or the worker without uvloop,
whatever the CLI itself would pick) and/or installs uvloop's event loop policy, then runs the
`flowcraft` command line with ARGS.
"""

from __future__ import annotations

import argparse
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--block", action="append", default=[], metavar="MODULE")
    parser.add_argument("--uvloop", action="store_true", help="asyncio runs on uvloop")
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    for module in args.block:
        sys.modules[module] = None  # type: ignore[assignment]  # import raises ImportError
    if args.uvloop:
        import asyncio

        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    from flowcraft_core.cli import main as flowcraft

    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    return flowcraft(argv)


if __name__ == "__main__":
    sys.exit(main())
