"""The protocol's `JobQueue` port over a BullMQ queue.

One BullMQ job per activation, its id the activation id (SPEC 9.3). BullMQ ignores an add
whose job id already exists in any state, which is the deduplication the protocol relies on
when a redelivered job replays its follow-ups. Our ids are never all digits (bug B4 corrupts
jobs with all-digit custom ids).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

from bullmq import Job as BullMQJob

from flowcraft_core.distributed import Job

from .multiplex import Multiplexer

#: The BullMQ job name of every activation job (the kind is in the data).
JOB_NAME: Final = "node"

#: Default retention: enough finished jobs to inspect recent trouble, never unbounded.
#: Correctness never depends on it (a re-added finished activation is a replay, a no-op).
DEFAULT_RETENTION: Final[Mapping[str, Any]] = {
    "removeOnComplete": {"count": 1000},
    "removeOnFail": {"count": 1000},
}

#: Infrastructure failures (Redis errors inside a job) are retried by BullMQ; node failures
#: never reach BullMQ (the activation records them). Completion is idempotent, so a retry is
#: safe at any point.
DEFAULT_ATTEMPTS: Final[Mapping[str, Any]] = {
    "attempts": 3,
    "backoff": {"type": "exponential", "delay": 1000},
}


class BullMQJobQueue:
    """`add_bulk` onto `bullmq.Queue`s: a job goes to its `queue` (`queue_for(name)`), else to
    `queue`, with its run's priority (docs/scheduling.md); one EVALSHA per job, through the
    multiplexer when there is one, else one add (one job) or one pipeline (many) per queue."""

    def __init__(
        self,
        queue: Any,
        *,
        job_options: Mapping[str, Any] | None = None,
        retry_options: Callable[[Sequence[Job]], Awaitable[list[dict[str, Any] | None]]]
        | None = None,
        via: Multiplexer | None = None,
        queue_for: Callable[[str], Any] | None = None,
    ) -> None:
        self.queue = queue
        #: Run the add scripts through this multiplexer (the adapter's) instead of the
        #: queue's connection pool.
        self.via = via
        self.queue_for = queue_for
        self.job_options: dict[str, Any] = dict(
            job_options if job_options is not None else {**DEFAULT_RETENTION, **DEFAULT_ATTEMPTS}
        )
        #: retry_mode="queue": per-job `attempts` and `backoff` (retries.QueueRetryOptions).
        self.retry_options = retry_options

    def entry(self, job: Job, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """One `addBulk` entry; a job with `delay_ms` (a sleep's wake) is a delayed job."""
        opts = {**self.job_options, **(extra or {}), "jobId": job.job_id}
        if job.delay_ms > 0:
            opts["delay"] = int(job.delay_ms)
        if job.priority:
            opts["priority"] = job.priority
        return {"name": JOB_NAME, "data": job.to_data(), "opts": opts}

    def queue_of(self, job: Job) -> Any:
        """The `bullmq.Queue` a job goes to (and where the reconciler looks for it)."""
        if job.queue is None or self.queue_for is None:
            return self.queue
        return self.queue_for(job.queue)

    async def add_bulk(self, jobs: Sequence[Job]) -> None:
        if not jobs:
            return
        if self.retry_options is None:
            entries = [self.entry(job) for job in jobs]
        else:
            extras = await self.retry_options(jobs)
            entries = [self.entry(job, extra) for job, extra in zip(jobs, extras, strict=True)]
        targets = [self.queue_of(job) for job in jobs]
        if self.via is not None:
            if len(entries) == 1:
                await self._add_via(targets[0], entries[0])
            else:
                await asyncio.gather(
                    *(self._add_via(q, e) for q, e in zip(targets, entries, strict=True))
                )
            return
        if all(target is self.queue for target in targets):  # the common case: one queue
            await self._add_to(self.queue, entries)
            return
        groups: dict[int, tuple[Any, list[dict[str, Any]]]] = {}
        for target, entry in zip(targets, entries, strict=True):
            groups.setdefault(id(target), (target, []))[1].append(entry)
        for target, group in groups.values():
            await self._add_to(target, group)

    @staticmethod
    async def _add_to(queue: Any, entries: list[dict[str, Any]]) -> None:
        if len(entries) == 1:
            # One job (every chain step): one EVALSHA. `addBulk` pipelines its scripts, and
            # redis-py sends SCRIPT EXISTS before every pipeline that has scripts: a round trip
            # more per job.
            entry = entries[0]
            await queue.add(entry["name"], entry["data"], entry["opts"])
            return
        await queue.addBulk(entries)

    async def _add_via(self, queue: Any, entry: Mapping[str, Any]) -> None:
        """`Queue.add` with BullMQ's own add script, run through the multiplexer. Many jobs
        are not one MULTI: each add is atomic, and a job whose follow-ups were only partly
        added is redelivered and replays them (adds of existing ids are ignored)."""
        job = BullMQJob(queue, entry["name"], entry["data"], {**queue.jobsOpts, **entry["opts"]})
        job.id = await queue.scripts.addJob(job, self.via)


__all__ = ["DEFAULT_ATTEMPTS", "DEFAULT_RETENTION", "JOB_NAME", "BullMQJobQueue"]
