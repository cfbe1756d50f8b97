"""Blueprints and helpers of the observability tests: worker processes with free ports, HTTP
GETs with the standard library, and the spans a worker wrote as JSON lines."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bullmq_processes import WorkerProcess
from obs_nodes import BLUEPRINTS, BOOM, CHATTY, FAN, FAN_IDS, FLAKY, SLOW
from redis_server import free_port

HERE = Path(__file__).parent
__all__ = ["BLUEPRINTS", "BOOM", "CHATTY", "FAN", "FAN_IDS", "FLAKY", "SLOW", "ObsWorker"]


class ObsWorker(WorkerProcess):
    """A `flowcraft worker` on `prefix` running this directory's nodes and blueprints."""

    def __init__(
        self, redis_url: str, prefix: str, blueprints: Path, tmp: Path, options: list[str]
    ) -> None:
        args = [
            "--redis", redis_url,
            "--prefix", prefix,
            "--registry", "obs_nodes:registry",
            "--blueprints", str(blueprints),
            *options,
        ]  # fmt: skip
        super().__init__(args, tmp / "pids.txt", HERE)


def ports(count: int) -> list[int]:
    return [free_port() for _ in range(count)]


def get(url: str, timeout: float = 5) -> tuple[int, str]:
    """(status, body) of a GET; an HTTP error status is an answer too, and no answer at all
    (nothing listens yet) is status 0."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except urllib.error.URLError as exc:
        return 0, str(exc.reason)


async def aget(url: str, within: float = 5) -> tuple[int, str]:
    return await asyncio.to_thread(get, url, within)


async def until(predicate: Any, within: float = 20, what: str = "condition") -> Any:
    """Poll an async predicate until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} (last: {value!r})")
        await asyncio.sleep(0.1)


def read_spans(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
