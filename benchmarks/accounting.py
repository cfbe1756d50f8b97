"""Which Redis commands of a node job are ours and which are BullMQ's, from MONITOR lines.

`INFO commandstats` counts every EVALSHA under one name, so it cannot tell our scripts from
BullMQ's. A MONITOR sample can: it shows each command with the connection that sent it, and a
script call with its SHA1. Ours are the EVALSHAs of `flowcraft_bullmq/lua` scripts (the SHA1
of the text `flowcraft_bullmq.scripts.source()` sends) and plain commands on run keys
(`P:{runId}:*`); everything else a worker sends is BullMQ's, named by the SHA1 of its
`commands/*.lua`. Commands that Lua scripts run (source `lua`) are not round trips and are
left out, and so are connections the caller names in `skip` (the benchmark's own client).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass


@dataclass
class Accounting:
    """The MONITOR sample's classification of what the workers sent, per node job."""

    nodes: int
    ours: Counter[str]
    bullmq: Counter[str]

    @property
    def ours_per_node(self) -> float:
        return sum(self.ours.values()) / self.nodes if self.nodes else 0.0

    @property
    def bullmq_per_node(self) -> float:
        return sum(self.bullmq.values()) / self.nodes if self.nodes else 0.0

    def breakdown(self, counter: Counter[str]) -> str:
        return ", ".join(f"{name} {n / self.nodes:.2f}" for name, n in counter.most_common(8))


def our_scripts() -> dict[str, str]:
    """SHA1 -> name of flowcraft_bullmq's Lua scripts (as sent to Redis)."""
    from flowcraft_bullmq import composed, scripts

    texts = {name: scripts.source(name) for name in scripts.NAMES}
    texts.update(composed.sources())  # ours with BullMQ's inside (composed.py)
    return {hashlib.sha1(text.encode()).hexdigest(): name for name, text in texts.items()}


def bullmq_scripts() -> dict[str, str]:
    """SHA1 -> name of BullMQ's Lua scripts."""
    try:
        from bullmq import redis_connection as rc
    except ImportError:
        return {}
    out = {}
    for name, filename in getattr(rc, "SCRIPT_DEFINITIONS", {}).items():
        try:
            text = rc.loadScript(filename)
        except OSError:
            continue
        out[hashlib.sha1(text.encode()).hexdigest()] = name
    return out


_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')
_LINE = re.compile(r"^\d+\.\d+ \[\d+ ([^\]]+)\] (.*)$")


def classify(lines: list[str], skip: set[str], nodes: int) -> Accounting:
    """What the workers sent, from MONITOR lines: ours or BullMQ's, by command or script."""
    ours_sha, bull_sha = our_scripts(), bullmq_scripts()
    ours: Counter[str] = Counter()
    bull: Counter[str] = Counter()
    for line in lines:
        m = _LINE.match(line)
        if m is None:
            continue
        source, rest = m.groups()
        if source == "lua" or source in skip:
            continue
        args = _ARG.findall(rest)
        if not args:
            continue
        cmd = args[0].lower()
        if cmd in ("evalsha", "evalsha_ro") and len(args) > 1:
            sha = args[1].lower()
            if sha in ours_sha:
                ours[f"{ours_sha[sha]}.lua"] += 1
            else:
                bull[bull_sha.get(sha, "script?")] += 1
        elif cmd in ("client", "monitor", "info", "hello", "select", "ping"):
            continue
        elif len(args) > 1 and ":{" in args[1]:
            ours[cmd] += 1
        else:
            bull[cmd] += 1
    return Accounting(nodes=nodes, ours=ours, bullmq=bull)


__all__ = ["Accounting", "bullmq_scripts", "classify", "our_scripts"]
