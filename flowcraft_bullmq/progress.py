"""Progress heartbeats (SPEC 9.2, 9.10): a run whose node runs long is not stalled.

The reconciler calls a `running` run stalled when `now − max(progressAt, wakeAt)` exceeds its
threshold, and only the complete script writes `progressAt`. While an activation executes, its
worker therefore refreshes the run's `progressAt` every `progress_interval_s`.

Cost: no task or timer per job. A job registers its run in a counter when it starts and
removes it when it ends (two dict operations); one sweep task per worker wakes every interval
and refreshes, in one pipeline, every run with a job executing at that moment. A worker whose
nodes are short mostly finds nothing to refresh (their completions write `progressAt`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from redis.asyncio import Redis

from .keys import RunKeys

logger = logging.getLogger("flowcraft_bullmq.progress")

#: KEYS[1] the run's meta. Refreshes `progressAt` (Redis clock, as the complete script writes
#: it) of a `running` run only: an expired run is not re-created, a finished one not touched.
_REFRESH: Final = """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then
  return 0
end
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'progressAt', t[1] .. '.' .. string.format('%06d', tonumber(t[2])))
return 1
"""


class ProgressHeartbeat:
    """Refreshes `progressAt` of the runs whose activations execute in this worker."""

    def __init__(self, client: Redis, prefix: str, interval_s: float) -> None:
        self._client = client
        self._prefix = prefix
        self.interval_s = interval_s
        self._script = client.register_script(_REFRESH)
        self._executing: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    def begin(self, run_id: str) -> None:
        """A job of `run_id` starts executing (pair with `end`, in a finally)."""
        executing = self._executing
        executing[run_id] = executing.get(run_id, 0) + 1

    def end(self, run_id: str) -> None:
        executing = self._executing
        left = executing[run_id] - 1
        if left:
            executing[run_id] = left
        else:
            del executing[run_id]

    def start(self) -> None:
        """Start the sweep (a no-op when the interval is 0: refreshing is off)."""
        if self.interval_s > 0 and self._task is None:
            self._task = asyncio.create_task(self._sweep(), name="flowcraft-progress")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def refresh(self) -> int:
        """Refresh every run with a job executing now; the number of runs refreshed."""
        runs = list(self._executing)
        if not runs:
            return 0
        async with self._client.pipeline(transaction=False) as pipe:
            for run_id in runs:
                await self._script(keys=[RunKeys.of(self._prefix, run_id).meta], client=pipe)
            replies: list[Any] = await pipe.execute()
        return sum(int(r) for r in replies)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.refresh()
            except Exception as exc:  # Redis away: the next sweep tries again
                logger.warning("refreshing progressAt failed: %s: %s", type(exc).__name__, exc)


__all__ = ["ProgressHeartbeat"]
