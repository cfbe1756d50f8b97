"""What the distributed benchmarks run on: their own redis-server and worker processes.

Every process is started in its own session (process group) and registered with a
`Processes` stack, so a normal exit, an exception or Ctrl-C ends them all, children included
(Dramatiq and Celery fork their own workers).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pythonpath() -> str:
    """The repository first (its `benchmarks` and packages win), then what was set."""
    return os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)


class Proc:
    """A child process in its own process group, its output collected by a thread."""

    def __init__(
        self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None
    ) -> None:
        self.name = name
        self.lines: list[str] = []
        self.popen = subprocess.Popen(
            list(argv),
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=_pythonpath(), **(env or {})),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines[-40:])

    def wait_for(self, text: str, timeout: float = 60) -> None:
        """Until a line of output contains `text`; fails if the process exits first."""
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not print {text!r}:\n{self.output}")
            time.sleep(0.02)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM the whole group (graceful stop), SIGKILL it after `timeout`."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)  # forked children left behind
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        self._reader.join(timeout=2)


class Processes(contextlib.ExitStack):
    """Starts processes and stops them all on exit (in reverse order)."""

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> Proc:
        proc = Proc(name, argv, env)
        self.callback(proc.stop)
        return proc

    def python(self, name: str, *args: str, env: Mapping[str, str] | None = None) -> Proc:
        return self.start(name, [sys.executable, *args], env)


@contextlib.contextmanager
def redis_server(procs: Processes) -> Iterator[str]:
    """A throwaway redis-server on a free loopback port: no persistence, noeviction."""
    binary = os.environ.get("FLOWCRAFT_REDIS_SERVER") or shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found: install it (apt-get install redis-server)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="flowcraft-bench-redis-")
    server = procs.start(
        "redis-server",
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        + ["--maxmemory-policy", "noeviction", "--dir", workdir],
    )
    try:
        server.wait_for("Ready to accept connections", timeout=20)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def group_cpu_s(pgids: Iterable[int]) -> float:
    """CPU seconds (user + system) of every live process in these process groups: the
    workers' own cost, which a loaded machine stretches far less than their wall time."""
    groups = set(pgids)
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        if int(fields[2]) in groups:  # pgrp; utime and stime follow at 11 and 12
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


class RedisStats:
    """`INFO commandstats` and `INFO cpu` snapshots; `delta()` between two of them.

    Keys: a command's name -> its calls, `_usec:<name>` -> microseconds Redis spent in it
    (a script's time includes the commands it runs, which are also counted on their own),
    `_cpu_s` -> the server's CPU seconds (sys + user), `_wcpu_s` -> the CPU seconds of the
    process groups being `watch()`ed (the workers)."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, decode_responses=True)
        self.watched: list[int] = []

    def watch(self, pgids: Iterable[int]) -> None:
        self.watched = list(pgids)

    def snapshot(self) -> dict[str, float]:
        info: dict[str, Any] = self.client.info("commandstats")
        out: dict[str, float] = {}
        for name, v in info.items():
            out[name.removeprefix("cmdstat_")] = float(v["calls"])
            out["_usec:" + name.removeprefix("cmdstat_")] = float(v["usec"])
        cpu: dict[str, Any] = self.client.info("cpu")
        out["_cpu_s"] = float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])
        out["_wcpu_s"] = group_cpu_s(self.watched)
        return out

    @staticmethod
    def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}

    def close(self) -> None:
        self.client.close()


__all__ = [
    "ROOT",
    "Proc",
    "Processes",
    "RedisStats",
    "free_port",
    "group_cpu_s",
    "redis_server",
]
