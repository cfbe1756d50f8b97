"""Benchmarks: `python -m benchmarks` prints throughput figures and ratios (see cli.py)."""

from .cli import main

main()
