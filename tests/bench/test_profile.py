"""py-spy's raw stacks summed by function and by area (what docs/performance.md quotes)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.profile import summary

LOOP = "run_forever (/usr/lib/python3.11/asyncio/base_events.py:600)"
STORE = "RedisCoordinationStore.load (/work/main/flowcraft_bullmq/store.py:120)"
SEND = "send_packed_command (/x/site-packages/redis/asyncio/connection.py:500)"
WRITE = "_SelectorSocketTransport.write (/usr/lib/python3.11/asyncio/selector_events.py:1050)"


def test_summary_counts_self_and_inclusive_samples_and_areas(tmp_path: Path) -> None:
    raw = tmp_path / "worker.txt"
    raw.write_text(
        f'process 1:"python";thread (0x1);{LOOP};{STORE};{SEND};{WRITE} 6\n'
        f'process 1:"python";thread (0x1);{LOOP};{STORE} 3\n'
        f'process 1:"python";thread (0x1);{LOOP};{STORE};{SEND} 1\n'
        "not a stack line\n"
    )
    total, own, inclusive, areas = summary(raw)
    assert total == 10
    assert own[0] == ("_SelectorSocketTransport.write (asyncio/selector_events.py)", 6)
    assert dict(inclusive)["RedisCoordinationStore.load (flowcraft_bullmq/store.py)"] == 10
    assert dict(areas) == {
        "socket I/O + event loop (asyncio, selectors, uvloop)": 6,
        "flowcraft_bullmq": 3,
        "redis-py client": 1,
    }
