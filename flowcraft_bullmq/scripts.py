"""The Lua scripts of `lua/`, read once and registered with a client.

Each `.lua` file starts with a header listing its KEYS and ARGV. The scripts that write run
state get `lua/lib.lua` (shared local helpers) in front of them. A registered script is run
with EVALSHA; redis-py loads it on the first NOSCRIPT reply, so a restarted or flushed server
costs one extra round trip, once.
"""

from __future__ import annotations

import functools
from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

#: Every script, by file name (without `.lua`).
NAMES = (
    "create_run",
    "load",
    "complete",
    "commit",
    "cancel",
    "fail_run",
    "resume_waiting",
    "buffer_resume",
    "rearm",
    "run_control",
)

#: The scripts that get lua/lib.lua in front of them.
WITH_LIB = frozenset(
    {
        "create_run",
        "complete",
        "cancel",
        "fail_run",
        "resume_waiting",
        "buffer_resume",
        "rearm",
        "run_control",
    }
)


def read(name: str) -> str:
    """The text of `lua/<name>.lua` as it is in the package (no lib.lua in front)."""
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text("utf-8")


@functools.cache
def source(name: str) -> str:
    """The text sent to Redis for script `name` (read from the package once)."""
    if name not in NAMES:
        raise KeyError(name)
    text = read(name)
    return read("lib") + "\n" + text if name in WITH_LIB else text


class Scripts:
    """The scripts registered with one client."""

    __slots__ = NAMES

    def __init__(self, client: Redis) -> None:
        for name in NAMES:
            setattr(self, name, client.register_script(source(name)))

    create_run: AsyncScript
    load: AsyncScript
    complete: AsyncScript
    commit: AsyncScript
    cancel: AsyncScript
    fail_run: AsyncScript
    resume_waiting: AsyncScript
    buffer_resume: AsyncScript
    rearm: AsyncScript
    run_control: AsyncScript


__all__ = ["NAMES", "WITH_LIB", "Scripts", "read", "source"]
