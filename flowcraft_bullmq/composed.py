"""Our scripts composed with BullMQ's, so a node job waits on fewer dependent round trips.

A chain step used to wait for `complete` and then for BullMQ's add of the successor's job. The
`complete+add` script is `lua/complete.lua` with the *installed* BullMQ's `addStandardJob`
Lua (read from the bullmq package at runtime, never copied here) wrapped as a local function:
the successors that `complete` makes ready get their BullMQ jobs in the same atomic step.

Only the plain case is composed: jobs on the run's default queue with the queue's default
options (no priority, delay, per-job retry options or trace context). complete.lua checks the
run's route and each node id, and tells which ready follow-ups it added; the worker adds the
others with `BullMQJobQueue` as before. If the installed BullMQ has no such script, or its
options cannot be templated, nothing is composed (`ComposedAdd.build` returns None).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from importlib import resources
from typing import Any, Final

from bullmq import Job as BullMQJob
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from . import scripts
from .queue import JOB_NAME

#: BullMQ's add script for a job without delay or priority, and its keys (in its order; its
#: name says how many: BullMQ's Scripts.addStandardJob builds the same list).
ADD_SCRIPT: Final = "addStandardJob-9.lua"
ADD_KEYS: Final = (
    "wait",
    "paused",
    "meta",
    "id",
    "completed",
    "delayed",
    "active",
    "events",
    "marker",
)

#: complete.lua's line after which the add function is assigned.
_HOOK: Final = "local ADD_JOB, ADD_KEYS = nil, 0\n"

#: Stands for the job id in the options template (it is an option, `jobId`); as long as a
#: typical job id (a str8 in msgpack, like most of them).
_PLACEHOLDER: Final = "\x00flowcraft-job-id-placeholder-0123456789\x00"


def bullmq_script(name: str) -> str | None:
    """The text of BullMQ's command `name` as installed, or None if it has none by that name."""
    try:
        return resources.files("bullmq").joinpath("commands", name).read_text("utf-8")
    except (FileNotFoundError, ModuleNotFoundError, NotADirectoryError, OSError):
        return None


def as_function(body: str, variable: str) -> str:
    """A whole script as an assignment of a function of (KEYS, ARGV) to `variable` (a local
    declared before): its `return` returns from the function, its locals stay inside it."""
    return f"{variable} = function(KEYS, ARGV)\n{body}\nend\n"


def complete_add_source(add_body: str) -> str:
    """complete.lua (with lib.lua) with BullMQ's add script as its ADD_JOB."""
    base = scripts.source("complete")
    if base.count(_HOOK) != 1:
        raise ValueError("complete.lua lost its ADD_JOB hook line")
    composed = _HOOK + as_function(add_body, "ADD_JOB") + f"ADD_KEYS = {len(ADD_KEYS)}\n"
    return base.replace(_HOOK, composed)


def msgpack_str(text: str) -> bytes:
    """`text` as a msgpack str, as complete.lua's `mp_str` writes it."""
    data = text.encode()
    size = len(data)
    if size < 32:
        return bytes([0xA0 + size]) + data
    if size < 256:
        return bytes([0xD9, size]) + data
    if size < 65536:
        return b"\xda" + size.to_bytes(2, "big") + data
    return b"\xdb" + size.to_bytes(4, "big") + data


def options_template(queue: Any, job_options: Mapping[str, Any]) -> tuple[bytes, bytes] | None:
    """BullMQ's packed options of a job `BullMQJobQueue` adds with `job_options` (packed by
    BullMQ's `Scripts.addJobArgs`), split around the job id; None if the id is not found in
    them as `msgpack_str` writes it (complete.lua puts each job's id between the halves)."""
    opts = {**queue.jobsOpts, **job_options, "jobId": _PLACEHOLDER}
    packed = queue.scripts.addJobArgs(BullMQJob(queue, JOB_NAME, {}, opts))[2]
    marker = msgpack_str(_PLACEHOLDER)
    if not isinstance(packed, bytes) or packed.count(marker) != 1:
        return None
    head, _, tail = packed.partition(marker)
    return head, tail


class ComposedAdd:
    """What `RedisCoordinationStore.complete` needs to run `complete+add` for one queue: the
    registered script, the queue's keys and the arguments after ours."""

    def __init__(self, script: AsyncScript, queue: Any, template: tuple[bytes, bytes]) -> None:
        self.script = script
        self.keys: list[str] = queue.scripts.getKeys(list(ADD_KEYS))
        self._args: list[Any] = [
            queue.scripts.keys[""],
            queue.name,
            JOB_NAME,
            template[0],
            template[1],
        ]

    @classmethod
    def build(cls, client: Redis, queue: Any, job_options: Mapping[str, Any]) -> ComposedAdd | None:
        """The composition for jobs added to `queue` with `job_options`, or None when the
        installed BullMQ cannot be composed with (the worker then adds every job itself)."""
        body = bullmq_script(ADD_SCRIPT)
        if body is None or "cmsgpack.unpack(ARGV[1])" not in body:
            return None
        template = options_template(queue, job_options)
        if template is None:
            return None
        return cls(client.register_script(complete_add_source(body)), queue, template)

    def args(self) -> list[Any]:
        """The add's arguments (the last of the script's ARGV): BullMQ's job key prefix, the
        queue's name (a run whose queue it is not is not composed), the job name, the options
        around the job id, the timestamp (ms, as Job.timestamp)."""
        return [*self._args, round(time.time() * 1000)]


__all__ = [
    "ADD_KEYS",
    "ADD_SCRIPT",
    "ComposedAdd",
    "as_function",
    "bullmq_script",
    "complete_add_source",
    "msgpack_str",
    "options_template",
]
