"""Where a worker process spends its time: py-spy samples, summed by function.

`record()` attaches py-spy to a running worker (`--nonblocking`: the worker is not paused to
sample) and writes its raw collapsed stacks; `summary()` reads them back as the functions
with the most samples on top of the stack (self) and anywhere on it (inclusive).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
import time
from collections import Counter
from pathlib import Path

from .infra import Proc, Processes

_FRAME = re.compile(r"^(.*) \((.*?)(?::\d+)?\)$")


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def record(procs: Processes, pid: int, out: Path, rate: int = 200) -> Proc:
    binary = py_spy()
    if binary is None:
        raise RuntimeError("py-spy not found: pip install -e '.[bench]'")
    spy = procs.start(
        "py-spy",
        [binary, "record", "--pid", str(pid), "--format", "raw", "--rate", str(rate)]
        + ["--nonblocking", "-o", str(out)],
    )
    time.sleep(1.0)  # attached and sampling
    return spy


def finish(spy: Proc, timeout: float = 30) -> None:
    """SIGINT makes py-spy write its file and exit."""
    if spy.popen.poll() is None:
        os.kill(spy.popen.pid, signal.SIGINT)
        spy.popen.wait(timeout=timeout)


def _function(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if m is None:
        return frame.strip()
    name, path = m.groups()
    for marker in ("site-packages/", "/lib/python3", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    if path.startswith(".") and "/" in path:  # python3.11/asyncio/... -> asyncio/...
        path = path.split("/", 1)[1]
    return f"{name} ({path})"


#: Where a sample's leaf frame is, by path fragment (first match wins: redis-py's own
#: `redis/asyncio/` is the client, not the event loop).
AREAS = (
    ("flowcraft_bullmq", ("flowcraft_bullmq/",)),
    ("flowcraft_core", ("flowcraft_core/",)),
    ("redis-py client", ("redis/",)),
    ("BullMQ (Python side)", ("bullmq/",)),
    ("serialization (msgspec, msgpack, json)", ("msgspec", "msgpack", "json/")),
    ("socket I/O + event loop (asyncio, selectors, uvloop)", ("asyncio/", "selectors", "uvloop")),
)


def area(function: str) -> str:
    for name, fragments in AREAS:
        if any(f in function for f in fragments):
            return name
    return "other"


def summary(
    path: Path, top: int = 15
) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]], list[tuple[str, int]]]:
    """(samples, top functions by self samples, top by inclusive samples, self samples by
    area)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [
            f for f in stack.split(";") if "(" in f and not f.startswith(("process", "thread"))
        ]
        if not frames:
            continue
        total += count
        names = [_function(f) for f in frames]
        own[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    areas: Counter[str] = Counter()
    for name, count in own.items():
        areas[area(name)] += count
    return total, own.most_common(top), inclusive.most_common(top * 3), areas.most_common()


__all__ = ["finish", "record", "summary"]
