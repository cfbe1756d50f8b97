"""Shared helpers of the Redis test directories: adapters that are always closed, and real
`flowcraft worker` subprocesses with their stderr collected."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from flowcraft_bullmq import BullMQAdapter

TESTS = Path(__file__).resolve().parent


@contextlib.asynccontextmanager
async def adapter(
    redis_url: str,
    prefix: str,
    *,
    blueprints: Iterable[Any] | Mapping[str, Any],
    registry: Mapping[str, Any] | None = None,
    consume: bool = True,
    **options: Any,
) -> AsyncIterator[BullMQAdapter]:
    """A BullMQAdapter on the test server; consuming (in this process) unless `consume=False`."""
    instance = BullMQAdapter(
        connection=redis_url, registry=registry, blueprints=blueprints, prefix=prefix, **options
    )
    try:
        if consume:
            await instance.start()
        else:
            await instance.connect()
        yield instance
    finally:
        await instance.close(timeout_s=10)


class WorkerProcess:
    """`python -m flowcraft_core.cli worker ...` run from `cwd` (whose modules it can import),
    with its stderr collected by a thread; `command` runs another subcommand (`inspect`)."""

    def __init__(self, args: list[str], trace: Path, cwd: Path, command: str = "worker") -> None:
        # The repository root too: the workers import this checkout's packages (not those of
        # another checkout an editable install points at) and its `blueprints` examples.
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join([str(TESTS), str(TESTS.parent), str(cwd)]),
            FLOWCRAFT_TEST_TRACE=str(trace),
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flowcraft_core.cli", command, *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    def _started(self, deadline: float) -> bool:
        if any("consuming queue" in line for line in self.lines):
            return True
        if self.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"worker did not start:\n{self.stderr}")
        return False

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self._started(deadline):
            time.sleep(0.05)

    async def ready(self, within: float = 30) -> None:
        deadline = time.monotonic() + within
        while not self._started(deadline):  # noqa: ASYNC110 - polls a thread-filled list
            await asyncio.sleep(0.05)

    def wait(self, timeout: float) -> int:
        """The exit code, once the process has ended and its stderr is read and closed."""
        code = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=5)
        if self.proc.stderr is not None and not self.reader.is_alive():
            self.proc.stderr.close()
        return code

    def kill(self) -> None:
        """SIGKILL (if still running), then reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait(timeout=10)


@contextlib.contextmanager
def worker_processes(
    count: int, args: list[str], trace: Path, cwd: Path
) -> Iterator[list[WorkerProcess]]:
    """`count` workers started together and ready; all killed on exit, whatever happens."""
    started: list[WorkerProcess] = []
    try:
        for _ in range(count):
            started.append(WorkerProcess(args, trace, cwd))
        for worker in started:
            worker.wait_ready()
        yield started
    finally:
        for worker in started:
            worker.kill()


__all__ = ["TESTS", "WorkerProcess", "adapter", "worker_processes"]
