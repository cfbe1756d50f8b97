"""The Celery side of the peer comparison (`celery -A benchmarks.peer_celery worker`).

Canvas on a Redis broker and Redis result backend: chain10 is a `chain` of 10 tasks,
diamond8 a chain of the start task, a `chord` of 8 into the join, and the end. The last node
of a run INCRs a counter the benchmark polls.
"""

from __future__ import annotations

import os

import redis
from celery import Celery, chain, chord
from celery.signals import worker_ready

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
DONE = "bench:celery:done"
QUEUE = "bench-celery"

app = Celery("bench", broker=URL, backend=URL)
app.conf.update(
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    result_expires=3600,
    worker_hijack_root_logger=False,
)
_counter = redis.Redis.from_url(URL)
READY = "bench celery worker ready"


@worker_ready.connect
def _ready(**_: object) -> None:
    # The worker logs at WARNING (INFO logs two lines per task); this says it consumes.
    print(READY, flush=True)


@app.task
def inc(x: int) -> int:
    return x + 1


@app.task
def inc_done(x: int) -> int:
    _counter.incr(DONE)
    return x + 1


@app.task
def join(values: list[int]) -> int:
    return sum(values)


def start_chain10() -> None:
    chain(inc.s(0), *[inc.s() for _ in range(8)], inc_done.s()).apply_async()


def start_diamond8() -> None:
    chain(inc.s(0), chord([inc.s() for _ in range(8)], join.s()), inc_done.s()).apply_async()


def close() -> None:
    """Drop the results this process subscribed to while Redis is still up."""
    import gc

    for pending in getattr(app.backend, "_pending_results", ()):
        pending.clear()
    gc.collect()
    app.close()


STARTERS = {"chain10": start_chain10, "diamond8": start_diamond8}
