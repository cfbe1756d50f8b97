"""Run control on Redis (docs/run-control.md): pause, resume, restart and retry a run.

* `pause_run` sets the status `paused` (lua/run_control.lua). In-flight nodes finish and their
  completions are applied; a job taken while the run is paused is acknowledged without running
  (its activation stays recorded ready in the frontier). The reconciler leaves paused runs
  alone. A resume of a waiting node is claimed but its job waits for the unpause too.
* `resume_run` sets it back to `running` (or `awaiting`) and enqueues everything the frontier
  says the run is owed, exactly as the reconciler would (`reconcile_run`).
* `restart_run` starts a new run of the run's blueprint with its initial context (kept in meta
  `initialContext` at start) and links it: meta `restartedFrom`.
* `retry_run(from_failed=True)` moves a failed run back to `running` under the **same id**,
  rewinding only its failed activations and what their failure blocked
  (`flowcraft_core.distributed.control`); what succeeded keeps its outputs and never runs again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from flowcraft_core.blueprint import Blueprint
from flowcraft_core.distributed import Job
from flowcraft_core.distributed.control import check_retryable, plan_rewind, rewound_join
from flowcraft_core.distributed.durable import run_blueprint
from flowcraft_core.distributed.frontier import READY
from flowcraft_core.distributed.protocol import WAKE, Applied
from flowcraft_core.errors import RunNotFoundError

from . import codec
from .idempotency import idempotency_redis_key, run_idempotency_key
from .keys import RunKeys
from .reconciler import reconcile_run

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from .adapter import BullMQAdapter

#: Meta fields written at start (and read by restart_run).
INITIAL_CONTEXT: Final = "initialContext"
NO_COMPENSATE: Final = "noCompensate"
RESTARTED_FROM: Final = "restartedFrom"

# Apply a rewind (control.Rewind) to a failed run, atomically; 0 if it is no longer failed.
# KEYS: the fixed keys, then the join key of each blocked activation (in ARGV order).
# ARGV: number of roots, then (akey, frontier JSON) per root; number of blocked, then per
# blocked: akey, number of pairs, (pred, [status, value] JSON) pairs; then the late fields.
_RETRY = """
if redis.call('HGET', KEYS[1], 'status') ~= 'failed' then
  return 0
end
local meta, acts, decided, fired, joins, frontier = KEYS[1], KEYS[4], KEYS[6], KEYS[7], KEYS[5],
  KEYS[12]
local i = 1
local roots = tonumber(ARGV[i])
i = i + 1
for _ = 1, roots do
  redis.call('HDEL', acts, ARGV[i])
  redis.call('HSET', frontier, ARGV[i], ARGV[i + 1])
  i = i + 2
end
local blocked = tonumber(ARGV[i])
i = i + 1
for b = 1, blocked do
  local target, pairs, jkey = ARGV[i], tonumber(ARGV[i + 1]), KEYS[12 + b]
  i = i + 2
  redis.call('HDEL', acts, target)
  redis.call('SREM', decided, target)
  redis.call('HDEL', fired, target)
  redis.call('DEL', jkey)
  for _ = 1, pairs do
    redis.call('HSET', jkey, ARGV[i], ARGV[i + 1])
    i = i + 2
  end
  if pairs == 0 then
    redis.call('SREM', joins, target)
  end
end
for j = i, #ARGV do
  redis.call('HDEL', acts, ARGV[j])
end
redis.call('DEL', KEYS[3])
redis.call('HINCRBY', meta, 'inFlight', roots)
redis.call('HINCRBY', meta, 'retries', 1)
redis.call('HDEL', meta, 'finishedAt')
local t = redis.call('TIME')
redis.call('HSET', meta, 'status', 'running', 'progressAt',
  t[1] .. '.' .. string.format('%06d', tonumber(t[2])))
for _, target in ipairs(redis.call('SMEMBERS', joins)) do
  redis.call('PERSIST', KEYS[13 + blocked] .. target)
end
for k = 1, 12 do
  redis.call('PERSIST', KEYS[k])
end
return 1
"""


def run_options(*, compensate: bool) -> dict[str, str]:
    """The meta fields a run's start options become."""
    return {} if compensate else {NO_COMPENSATE: "1"}


async def resolve_run(adapter: BullMQAdapter, run_or_key: str) -> str:
    """The run id of `run_or_key`: a run id, else an idempotency key (a correlation key)."""
    store, _, client = await adapter._ready()
    try:
        await store.status(run_or_key)
    except (RunNotFoundError, ValueError):  # not a run id (or not even a valid one)
        run_id = await client.get(idempotency_redis_key(adapter.prefix, run_or_key))
        if run_id is None:
            raise RunNotFoundError(run_or_key) from None
        return str(run_id)
    return run_or_key


async def pause_run(adapter: BullMQAdapter, run_id: str) -> bool:
    store, _, _ = await adapter._ready()
    return bool(await store.pause(run_id))


async def resume_run(adapter: BullMQAdapter, run_id: str) -> bool:
    store, _, _ = await adapter._ready()
    if not await store.unpause(run_id):
        return False
    # A sleep's wake job acknowledged while paused: free its id, so the sleeping activation's
    # node job (re-added below) adds it again with the remaining delay.
    queue = adapter._job_queue_or_fail().queue
    for entry in await store.frontier(run_id):
        wake = Job(run_id, entry.node_id, entry.iteration, kind=WAKE).job_id
        if entry.kind == READY and await queue.getJobState(wake) in ("completed", "failed"):
            await queue.remove(wake)
    await reconcile_run(adapter, run_id)  # what was acknowledged while paused, and the rest
    return True


async def restart_run(adapter: BullMQAdapter, run_id: str) -> str:
    store, _, _ = await adapter._ready()
    meta: Mapping[str, str] = await store.options(run_id)
    if INITIAL_CONTEXT not in meta:
        raise ValueError(f"run {run_id!r} has no recorded initial context (started before 0.x?)")
    options = {RESTARTED_FROM: run_id}
    if NO_COMPENSATE in meta:
        options[NO_COMPENSATE] = meta[NO_COMPENSATE]
    return await adapter._start(
        meta["blueprintId"],
        codec.decode(meta[INITIAL_CONTEXT]),
        run_id=None,
        idempotency_key=None,
        options=options,
        priority=int(meta.get("priority") or 0),  # the new run is scheduled as the old one
        queue=meta.get("queue"),
    )


async def retry_run(adapter: BullMQAdapter, run_id: str, *, from_failed: bool = True) -> str:
    if not from_failed:
        return await restart_run(adapter, run_id)
    _, client_worker, client = await adapter._ready()
    keys = RunKeys.of(adapter.prefix, run_id)
    bp = await run_blueprint(client_worker, run_id)
    args, join_keys = await _rewind(client, keys, run_id, bp)
    script = client.register_script(_RETRY)
    done = await script(keys=[*keys.fixed, *join_keys, keys.join_prefix], args=args)
    if not done:
        raise ValueError(f"run {run_id!r} changed while it was being retried: try again")
    reverse = run_idempotency_key(adapter.prefix, run_id)
    idem = await client.get(reverse)
    if idem is not None:  # the key lives as long as the run again
        await client.persist(str(idem))
        await client.persist(reverse)
    await reconcile_run(adapter, run_id)  # the failed activations' jobs (their ids reused)
    return run_id


async def _rewind(
    client: Redis, keys: RunKeys, run_id: str, bp: Blueprint
) -> tuple[list[Any], list[str]]:
    """Read the failed run and compute the script's arguments (control.plan_rewind)."""
    async with client.pipeline(transaction=True) as pipe:
        pipe.hmget(keys.meta, "status", "compN")
        pipe.lrange(keys.errors, 0, -1)
        pipe.hgetall(keys.acts)
        (status, comp_n), raw_errors, acts = await pipe.execute()
    if status is None:
        raise RunNotFoundError(run_id)
    if status != "failed":
        raise ValueError(f"run {run_id!r} is {status}: only a failed run can be retried")
    if comp_n and any(str(name).endswith(":done") for name in acts if name.startswith("~comp:")):
        raise ValueError(f"run {run_id!r} was compensated: restart it instead")

    def recorded(akey: str) -> Applied | None:
        text = acts.get(akey)
        return codec.unpack_applied(text) if text is not None else None

    errors = [codec.decode(e) for e in raw_errors]
    check_retryable(bp, errors)
    rewind = plan_rewind(errors, recorded)
    late: dict[str, dict[str, Any]] = {}
    late_fields: list[str] = []
    for name, value in acts.items():
        if name.startswith("~late:"):
            target, pred = codec.decode(name[len("~late:") :])
            if target in rewind.blocked:
                late.setdefault(target, {})[pred] = value
                late_fields.append(name)
    args: list[Any] = [len(rewind.roots)]
    for root in rewind.roots:
        args += (root.akey, codec.pack_ready(root))
    args.append(len(rewind.blocked))
    join_keys = [keys.join(target) for target in rewind.blocked]
    if join_keys:
        async with client.pipeline(transaction=False) as pipe:
            for join_key in join_keys:
                pipe.hgetall(join_key)
            records = await pipe.execute()
    else:
        records = []
    for target, record in zip(rewind.blocked, records, strict=True):
        kept = rewound_join(record, late.get(target, {}), rewind.nodes)
        args += (target, len(kept))
        for pred, value in kept.items():
            args += (pred, value)
    args += late_fields
    return args, join_keys


__all__ = [
    "INITIAL_CONTEXT",
    "NO_COMPENSATE",
    "RESTARTED_FROM",
    "pause_run",
    "restart_run",
    "resume_run",
    "retry_run",
    "run_options",
]
