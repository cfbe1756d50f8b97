"""The Dramatiq side of the peer comparison (`dramatiq benchmarks.peer_dramatiq`).

Redis broker; chain10 is a `pipeline` of 10 actors, diamond8 is a start actor that runs a
`group` of 8 with a completion callback (GroupCallbacks, Redis rate-limiter backend) to the
join, which sends the end. The last node of a run INCRs a counter the benchmark polls. The
join does not receive the 8 results (that would need the Results middleware and a result
backend), which flatters Dramatiq a little.
"""

from __future__ import annotations

import os
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import GroupCallbacks
from dramatiq.rate_limits.backends import RedisBackend

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
DONE = "bench:dramatiq:done"
QUEUE = "bench"

broker = RedisBroker(url=URL, namespace="bench-dramatiq")
broker.add_middleware(GroupCallbacks(RedisBackend(url=URL)))
dramatiq.set_broker(broker)
_counter = redis.Redis.from_url(URL)


@dramatiq.actor(queue_name=QUEUE)
def inc(x: int) -> int:
    return x + 1


@dramatiq.actor(queue_name=QUEUE)
def inc_done(x: int) -> int:
    _counter.incr(DONE)
    return x + 1


@dramatiq.actor(queue_name=QUEUE)
def diamond_start(x: int) -> int:
    y = x + 1
    parallel = dramatiq.group([inc.message(y) for _ in range(8)])
    parallel.add_completion_callback(diamond_join.message(y))
    parallel.run()
    return y


@dramatiq.actor(queue_name=QUEUE)
def diamond_join(y: int) -> int:
    z = (y + 1) * 8
    inc_done.send(z)
    return z


def start_chain10() -> Any:
    return dramatiq.pipeline(
        [inc.message(0)] + [inc.message() for _ in range(8)] + [inc_done.message()]
    ).run()


def start_diamond8() -> Any:
    return diamond_start.send(0)


STARTERS = {"chain10": start_chain10, "diamond8": start_diamond8}
