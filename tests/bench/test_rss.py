"""The fresh-process RSS figure is the child's own peak, not its parent's."""

from __future__ import annotations

import sys

import pytest

from benchmarks.inprocess import fresh_rss_mib


@pytest.mark.skipif(sys.platform != "linux", reason="VmHWM is Linux's")
def test_a_fresh_process_does_not_report_its_parents_peak() -> None:
    ballast = bytearray(400 * 2**20)
    ballast[:: 2**12] = b"x" * len(ballast[:: 2**12])  # touch every page: resident
    assert fresh_rss_mib(100) < 300  # ru_maxrss said >= 400: the parent's peak
    del ballast
