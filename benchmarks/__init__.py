"""Benchmarks: `python -m benchmarks` prints throughput figures and ratios."""
