"""The node implementations of the chaos run (`--registry chaos_nodes:registry`).

Every execution appends one JSON line to the side channel `$FLOWCRAFT_TEST_TRACE` (a file, so
it survives a Redis restart; `O_APPEND` writes of one short line do not interleave between
processes): the run, activation, attempt, worker pid and a fresh token. Outputs carry the token,
so the harness can tell which execution's output was committed and whether successors saw
exactly that one ("written once").

Join nodes (`params.preds`) check when they run that every predecessor they wait for has its
output committed and delivered to them, and record `early` otherwise.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from typing import Any

from flowcraft_core import NodeRegistry, NonRetryableError

TRACE_ENV = "FLOWCRAFT_TEST_TRACE"


def record(kind: str, ctx: Any, **fields: Any) -> None:
    path = os.environ.get(TRACE_ENV)
    if not path:
        return
    line = {
        "k": kind,
        "run": ctx.run_id,
        "act": ctx.activation_id,
        "node": ctx.node_id,
        "att": ctx.attempt,
        "pid": os.getpid(),
        "t": time.time(),
        **fields,
    }
    data = (json.dumps(line, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def value_of(data: Any) -> int:
    """The deterministic part of a delivered value: the sum of its `v`s (tokens ignored)."""
    if isinstance(data, bool):
        return 0
    if isinstance(data, int):
        return data
    if isinstance(data, dict):
        if "v" in data:
            return value_of(data["v"])
        return sum(value_of(v) for v in data.values())
    return 0


async def _check_join(ctx: Any) -> None:
    """`params.preds` and `params.join` ("all" or "any"): record `early` if the join runs
    before what it waits for is committed, or with an input that is not the committed one."""
    preds: list[str] = list(ctx.params.get("preds") or [])
    if not preds:
        return
    stored = {p: await ctx.context.get(f"_outputs.{p}") for p in preds}
    if ctx.params.get("join", "all") == "all":
        missing = [p for p in preds if stored[p] is None]
        delivered = ctx.input if len(preds) > 1 else {preds[0]: ctx.input}
        wrong = [
            p for p in preds if not isinstance(delivered, dict) or delivered.get(p) != stored[p]
        ]
    else:
        missing = [] if any(v is not None for v in stored.values()) else preds
        wrong = [] if ctx.input in [v for v in stored.values() if v is not None] else ["input"]
    if missing or wrong:
        record("early", ctx, missing=missing, wrong=wrong)


async def step(ctx: Any) -> dict[str, Any]:
    """Adds `params.k` to the value of its input, after `params.ms` milliseconds."""
    token = uuid.uuid4().hex[:12]
    record("exec", ctx, tok=token)
    await _check_join(ctx)
    delay = float(ctx.params.get("ms", 0)) / 1000
    if delay:
        await asyncio.sleep(delay)
    return {"output": {"v": value_of(ctx.input) + int(ctx.params.get("k", 1)), "tok": token}}


async def flaky(ctx: Any) -> dict[str, Any]:
    """Fails its first attempt (a retry), then behaves like `step`."""
    if ctx.attempt == 1:
        record("exec", ctx, tok=None)
        raise ValueError(f"first attempt of {ctx.node_id} fails")
    return await step(ctx)


async def bad(ctx: Any) -> None:
    """Always fails, without retry: a run that fails as designed."""
    record("exec", ctx, tok=None)
    raise NonRetryableError(f"{ctx.node_id} fails by design")


registry = NodeRegistry({"step": step, "flaky": flaky, "bad": bad})

__all__ = ["TRACE_ENV", "bad", "flaky", "record", "registry", "step", "value_of"]
