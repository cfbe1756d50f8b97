"""The MONITOR classification behind "our Redis round trips per node": our scripts by SHA1,
plain commands on run keys as ours, BullMQ's scripts by name, commands Lua runs and the
benchmark client's own connections left out."""

from __future__ import annotations

import hashlib

from benchmarks.accounting import bullmq_scripts, classify, our_scripts
from flowcraft_bullmq import scripts


def sha(name: str) -> str:
    return hashlib.sha1(scripts.source(name).encode()).hexdigest()


def line(source: str, *args: str) -> str:
    quoted = " ".join('"' + a.replace('"', '\\"') + '"' for a in args)
    return f"1700000000.123456 [0 {source}] {quoted}"


def test_our_scripts_are_known_by_the_sha_redis_sees() -> None:
    known = our_scripts()
    # And the compositions with the installed BullMQ's scripts (flowcraft_bullmq/composed.py).
    assert set(known.values()) == {*scripts.NAMES, "complete+add+finish", "moveToActive+load"}
    assert known[sha("complete")] == "complete"


def test_classify_splits_worker_commands_into_ours_and_bullmqs() -> None:
    bull = {name: digest for digest, name in bullmq_scripts().items()}
    worker, client = "127.0.0.1:50001", "127.0.0.1:50002"
    lines = [
        line(worker, "EVALSHA", sha("load"), "6", "fc:{r1}:meta"),
        line(worker, "EVALSHA", sha("complete"), "4", "fc:{r1}:meta"),
        line("lua", "HGET", "fc:{r1}:meta", "status"),  # inside a script: not a round trip
        line(worker, "GET", "fc:{r1}:idem"),  # a plain command on a run key: ours
        line(worker, "EVALSHA", bull["moveToFinished"], "14", "fc:q:wait"),
        line(worker, "BZPOPMIN", "fc:q:marker", "0.5"),
        line(client, "HGET", "fc:{r1}:meta", "status"),  # the benchmark's own poll
        line(worker, "EVALSHA", "0" * 40, "1", 'fc:q:"odd"'),  # an unknown script: BullMQ's
        "OK",
    ]
    acc = classify(lines, skip={client}, nodes=2)
    assert dict(acc.ours) == {"load.lua": 1, "complete.lua": 1, "get": 1}
    assert dict(acc.bullmq) == {"moveToFinished": 1, "bzpopmin": 1, "script?": 1}
    assert acc.ours_per_node == 1.5 and acc.bullmq_per_node == 1.5
    assert "load.lua 0.50" in acc.breakdown(acc.ours)
