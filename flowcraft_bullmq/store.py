"""`RedisCoordinationStore`: the coordination-store port on Redis.

Behaves exactly like `flowcraft_core.distributed.memory.InMemoryCoordinationStore` (the
reference semantics; the conformance suite runs both). Every mutating method is one Lua script,
atomic and idempotent; reads are one script or one pipeline. Keys: `keys.py`; scripts: `lua/`.

Differences a caller can see: values come back as JSON data (tuples as lists), run ids must be
valid (`flowcraft_core.ids.validate_run_id`, they become hash tags), and a finished run's keys
expire after `state_ttl_s` (after which the run is not found).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping, Sequence
from typing import Any, cast

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

from flowcraft_core.context import MISSING
from flowcraft_core.distributed import protocol
from flowcraft_core.distributed.frontier import FrontierEntry
from flowcraft_core.distributed.protocol import (
    DEFAULT_ROUTE,
    Applied,
    Followup,
    Loaded,
    Route,
    Transition,
    split_akey,
)
from flowcraft_core.errors import RunNotFoundError

from . import codec
from .composed import ComposedAdd, Preloads
from .context import RedisContext
from .keys import RunKeys, validate_prefix
from .multiplex import Multiplexer
from .scripts import Scripts

#: How many runs' keys a store remembers (`RedisCoordinationStore.keys`).
_RUN_KEYS_MAX = 4096


class RedisCoordinationStore:
    """Per-run state shared by workers, in Redis (SPEC 9.6).

    `client` must decode responses (`decode_responses=True`); on redis-py 8 give it
    `socket_timeout=None` if it is shared with BullMQ. The caller owns the client.
    `scripts_via`: run the scripts through this `Multiplexer` (one shared connection)
    instead of the client's pool; its owner closes it.
    """

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = "flowcraft",
        state_ttl_s: int = 86_400,
        scripts_via: Multiplexer | None = None,
    ) -> None:
        if isinstance(state_ttl_s, bool) or not isinstance(state_ttl_s, int) or state_ttl_s < 0:
            raise ValueError(f"state_ttl_s must be an int >= 0 (0 keeps keys), not {state_ttl_s!r}")
        if not cast(Any, client).get_encoder().decode_responses:
            raise ValueError("the Redis client must be created with decode_responses=True")
        self.client = client
        self.prefix = validate_prefix(prefix)
        self.state_ttl_s = state_ttl_s
        self._scripts = Scripts(client)
        #: Where the scripts run: a Multiplexer (the adapter's, which closes it) or the client.
        self._via: Any = scripts_via if scripts_via is not None else client
        self._mux = scripts_via
        #: RunKeys by run id: every job of a run names the same keys (`keys`).
        self._run_keys: dict[str, RunKeys] = {}
        #: Set by the adapter (composed.py): `complete` also adds the ready activations' BullMQ
        #: jobs in the same script, and its Applied.ready lists only the ones it did not add.
        self.adds: ComposedAdd | None = None
        #: Set by the adapter (composed.py): loads done with BullMQ's fetch of a job, which
        #: `load` takes instead of a round trip; it publishes what each node loads.
        self.preloads: Preloads | None = None

    def keys(self, run_id: str) -> RunKeys:
        """The run's keys (an invalid run id raises ValueError). Remembered for the next
        jobs of the run; emptied when `_RUN_KEYS_MAX` runs are remembered."""
        keys = self._run_keys.get(run_id)
        if keys is None:
            keys = RunKeys.of(self.prefix, run_id)
            if len(self._run_keys) >= _RUN_KEYS_MAX:
                self._run_keys.clear()
            self._run_keys[run_id] = keys
        return keys

    def context(self, run_id: str) -> RedisContext:
        """The `ContextStore` port over this run's context hash."""
        return RedisContext(self, run_id)

    async def _call(
        self, run_id: str, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        try:
            if self._mux is not None:
                return await self._mux.run_script(script, keys, args)
            return await script(keys=keys, args=args, client=self._via)
        except ResponseError as exc:
            message = str(exc)
            if message.startswith("NORUN"):
                raise RunNotFoundError(run_id) from None
            if message.startswith("EXISTS"):
                raise ValueError(f"run {run_id!r} already exists") from None
            raise

    # ----------------------------------------------------------------- lifecycle
    async def create_run(
        self,
        run_id: str,
        *,
        blueprint_id: str,
        pin: str,
        context: Mapping[str, Any],
        entries: Sequence[Followup],
        counters: Sequence[str] = (),
        parent: tuple[str, str, tuple[int, ...]] | None = None,
        route: Route = DEFAULT_ROUTE,
        start_at: float | None = None,
    ) -> None:
        keys, args = self.create_run_args(
            run_id,
            blueprint_id=blueprint_id,
            pin=pin,
            context=context,
            entries=entries,
            counters=counters,
            parent=parent,
            route=route,
            start_at=start_at,
        )
        await self._call(run_id, self._scripts.create_run, keys, args)

    def create_run_args(
        self,
        run_id: str,
        *,
        blueprint_id: str,
        pin: str,
        context: Mapping[str, Any],
        entries: Sequence[Followup],
        counters: Sequence[str] = (),
        parent: tuple[str, str, tuple[int, ...]] | None = None,
        route: Route = DEFAULT_ROUTE,
        start_at: float | None = None,
    ) -> tuple[list[str], list[Any]]:
        """The keys and arguments of the create_run script (`start_runs` pipelines many)."""
        keys = self.keys(run_id)
        args: list[Any] = [blueprint_id, pin, len(entries), self.state_ttl_s, keys.join_prefix]
        link = b"" if parent is None else codec.encode([parent[0], parent[1], list(parent[2])])
        args += [link, len(counters), *counters]
        scheduling: list[Any] = []
        if route.queue is not None:
            scheduling += ("queue", route.queue)
        if route.priority:
            scheduling += ("priority", route.priority)
        if route.routed:
            scheduling += ("routed", 1)
        if start_at is not None:
            scheduling += ("wakeAt", f"{start_at:.6f}")
        args += [len(scheduling) // 2, *scheduling]
        for entry in entries:
            args += (entry.akey, codec.pack_ready(entry))
        for key, value in context.items():
            args.append(key)
            args.append(codec.encode(value))
        return keys.fixed, args

    async def load(self, run_id: str, akey: str, keys: Sequence[str] | None) -> Loaded:
        preloads = self.preloads
        reply = None if preloads is None else preloads.take(run_id, akey, keys)
        if reply is None:
            run = self.keys(run_id)
            args = [akey, "1"] if keys is None else [akey, "0", *keys]
            reply = await self._call(
                run_id,
                self._scripts.load,
                [run.meta, run.ctx, run.acts, run.fired, run.waiting, run.join(akey)],
                args,
            )
            if preloads is not None and keys is not None:
                await preloads.publish(reply, akey, keys)
        return _loaded(reply)

    async def complete(self, run_id: str, transition: Transition) -> Applied:
        header, values, targets = codec.pack_transition(transition)
        keys = self.keys(run_id)
        run_keys = (
            keys.fixed
            + [keys.join(target) for target in targets]
            # A waiting transition may take a buffered resume: the list is the last run key.
            + ([keys.resume] if transition.waiting is not None else [])
        )
        args = [header, self.state_ttl_s, keys.join_prefix, *values]
        adds = self.adds
        if adds is not None and protocol.job_trace_hook is None:  # a traced job is not plain
            more_keys, more_args, job = adds.tail(transition)
            reply = await self._call(run_id, adds.script, run_keys + more_keys, args + more_args)
            if len(reply) > 3 and job is not None:  # it also finished the job
                adds.finished_here(job, reply[3], self.preloads)
        else:
            reply = await self._call(run_id, self._scripts.complete, run_keys, args)
        kind, text = reply[0], reply[1]
        if kind == "ignored":
            return Applied(ignored=True, finished=text)
        applied = codec.unpack_applied(text, replay=kind == "replay")
        if len(reply) > 2 and "1" in reply[2]:  # complete+add: drop the jobs it added
            mask = reply[2]
            applied.ready = [f for f, a in zip(applied.ready, mask, strict=True) if a == "0"]
        return applied

    # ----------------------------------------------------------------- context
    async def get(self, run_id: str, key: str) -> Any:
        keys = self.keys(run_id)
        if isinstance(self._via, Multiplexer):  # node code's reads: the pipelined connection
            exists, value = await asyncio.gather(
                self._via.execute("EXISTS", keys.meta), self._via.execute("HGET", keys.ctx, key)
            )
        else:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.exists(keys.meta)
                pipe.hget(keys.ctx, key)
                exists, value = await pipe.execute()
        if not exists:
            raise RunNotFoundError(run_id)
        return MISSING if value is None else codec.decode(value)

    async def snapshot(self, run_id: str) -> dict[str, Any]:
        keys = self.keys(run_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.exists(keys.meta)
            pipe.hgetall(keys.ctx)
            exists, fields = await pipe.execute()
        if not exists:
            raise RunNotFoundError(run_id)
        return _decode_hash(fields)

    async def commit(self, run_id: str, ops: Sequence[tuple[str, Any, bool]]) -> None:
        keys = self.keys(run_id)
        args: list[Any] = []
        for key, value, deleted in ops:
            args.append(key)
            args.append("" if deleted else codec.encode(value))
        await self._call(run_id, self._scripts.commit, [keys.meta, keys.ctx], args)

    # ----------------------------------------------------------------- status
    async def status(self, run_id: str) -> str:
        status = await self.client.hget(self.keys(run_id).meta, "status")
        if status is None:
            raise RunNotFoundError(run_id)
        return str(status)

    async def result(
        self, run_id: str
    ) -> tuple[str, dict[str, Any], list[dict[str, Any]], dict[str, dict[str, Any]]]:
        """(status, context, errors, waiting activations by akey)."""
        keys = self.keys(run_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hget(keys.meta, "status")
            pipe.hgetall(keys.ctx)
            pipe.lrange(keys.errors, 0, -1)
            pipe.hgetall(keys.waiting)
            status, context, errors, waiting = await pipe.execute()
        if status is None:
            raise RunNotFoundError(run_id)
        return (
            status,
            _decode_hash(context),
            [codec.decode(e) for e in errors],
            _decode_hash(waiting),
        )

    async def cancel(self, run_id: str) -> bool:
        keys = self.keys(run_id)
        done = await self._call(
            run_id, self._scripts.cancel, keys.fixed, [self.state_ttl_s, keys.join_prefix]
        )
        return bool(done)

    async def fail_run(self, run_id: str, error: dict[str, Any]) -> None:
        keys = self.keys(run_id)
        await self._call(
            run_id,
            self._scripts.fail_run,
            keys.fixed,
            [codec.encode(error), self.state_ttl_s, keys.join_prefix],
        )

    async def frontier(self, run_id: str) -> list[FrontierEntry]:
        """What the run is owed, by akey (flowcraft_core.distributed.frontier)."""
        keys = self.keys(run_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.exists(keys.meta)
            pipe.hgetall(keys.frontier)
            exists, fields = await pipe.execute()
        if not exists:
            raise RunNotFoundError(run_id)
        return [codec.unpack_frontier(akey, fields[akey]) for akey in sorted(fields)]

    async def resume_waiting(
        self, run_id: str, akey: str, output: Any = None, action: str | None = None
    ) -> bool:
        """Claim a waiting activation for a resume job (inFlight + 1, status running); the
        claim records (output, action) for the job."""
        keys = self.keys(run_id)
        claimed = await self._call(
            run_id,
            self._scripts.resume_waiting,
            [keys.meta, keys.waiting, keys.acts, keys.frontier],
            [
                akey,
                codec.encode([output, action]),
                codec.pack_ready(_followup_of(akey)),
            ],
        )
        return bool(claimed)

    async def rearm(self, run_id: str, akey: str, episode: int) -> bool:
        """A subflow activation waiting on its child since an earlier child episode is in
        flight again (see lua/rearm.lua)."""
        keys = self.keys(run_id)
        rearmed = await self._call(
            run_id,
            self._scripts.rearm,
            [keys.meta, keys.waiting, keys.acts, keys.frontier],
            [akey, episode, codec.pack_ready(_followup_of(akey))],
        )
        return bool(rearmed)

    async def buffer_resume(
        self, run_id: str, node_id: str | None, output: Any, action: str | None
    ) -> str:
        """Buffer a resume that matches no waiting activation: "buffered", "finished" or
        "retry" (see lua/buffer_resume.lua)."""
        keys = self.keys(run_id)
        answer = await self._call(
            run_id,
            self._scripts.buffer_resume,
            [keys.meta, keys.waiting, keys.acts, keys.resume],
            [node_id or "", codec.resume_entry(node_id, output, action)],
        )
        return str(answer)

    # ----------------------------------------------------------------- compensation, control
    async def _control(self, run_id: str, op: str, *args: Any) -> bool:
        keys = self.keys(run_id)
        done = await self._call(
            run_id,
            self._scripts.run_control,
            keys.fixed,
            [op, self.state_ttl_s, keys.join_prefix, *args],
        )
        return bool(done)

    async def compensation_items(self, run_id: str) -> tuple[list[Any], dict[int, Any]]:
        """(completions to compensate, oldest first: [node id, iteration, output]; the
        compensations done, by completion number from 1: [node id, error record or None])."""
        keys = self.keys(run_id)
        count = await self.client.hget(keys.meta, "compN")
        n = int(count or 0)
        if n == 0:
            return [], {}
        fields = [f"~comp:{i}" for i in range(1, n + 1)]
        fields += [f"~comp:{i}:done" for i in range(1, n + 1)]
        values = await self.client.hmget(keys.acts, fields)
        items = [codec.decode(v) for v in values[:n] if v is not None]
        done = {i + 1: codec.decode(v) for i, v in enumerate(values[n:]) if v is not None}
        return items, done

    async def record_compensation(
        self,
        run_id: str,
        index: int,
        node_id: str,
        ops: Sequence[tuple[str, Any, bool]],
        error: dict[str, Any] | None,
    ) -> bool:
        """Record compensation `index` done with its context writes, atomically, at most once."""
        args: list[Any] = [index, codec.encode([node_id, error])]
        for key, value, deleted in ops:
            args += (key, "" if deleted else codec.encode(value))
        return await self._control(run_id, "record", *args)

    async def end_compensation(self, run_id: str) -> bool:
        """`compensating` -> `failed`, with the final TTLs; False if not compensating."""
        return await self._control(run_id, "end")

    async def pause(self, run_id: str) -> bool:
        """`running` or `awaiting` -> `paused`; False otherwise."""
        return await self._control(run_id, "pause")

    async def unpause(self, run_id: str) -> bool:
        """`paused` -> `running` (or `awaiting`); False if the run is not paused."""
        return await self._control(run_id, "unpause")

    async def set_options(self, run_id: str, options: Mapping[str, str]) -> None:
        """Run options and links, as meta fields (noCompensate, restartedFrom, ...)."""
        if options:
            await self.client.hset(self.keys(run_id).meta, mapping=cast(Any, dict(options)))

    async def options(self, run_id: str) -> dict[str, str]:
        """The meta fields `set_options` writes (and the run's other meta)."""
        fields = await self.client.hgetall(self.keys(run_id).meta)
        if not fields:
            raise RunNotFoundError(run_id)
        return {str(k): str(v) for k, v in fields.items()}


def _loaded(reply: list[Any]) -> Loaded:
    """load.lua's reply as a Loaded; the fields that are absent (most, for a node job) keep
    Loaded's defaults without a call each."""
    status, blueprint_id, pin, done, fired, waiting, join, values, sleep, claim, batch = reply[:11]
    child, episode, parent, queue, priority, routed = reply[11:17]
    decode = codec.decode
    loaded = Loaded(
        status,
        blueprint_id,
        pin,
        None if done is None else codec.unpack_applied(done),
        {join[i]: codec.decode_tuple(join[i + 1]) for i in range(0, len(join), 2)} if join else {},
        fired,
        {values[i]: decode(values[i + 1]) for i in range(0, len(values), 2)} if values else {},
        bool(waiting),
    )
    if sleep is not None:
        loaded.sleeping = codec.unpack_pair(sleep)
    if claim is not None:
        loaded.claimed = codec.unpack_pair(claim)
    if batch is not None:
        loaded.batch_input = codec.unpack_single(batch)
    if child is not None:
        loaded.child = codec.unpack_record(child)
    if parent:
        loaded.parent = codec.unpack_parent(parent)
    episode = int(episode)
    if episode:
        loaded.episode = episode
    if queue is not None or priority is not None or routed is not None:
        loaded.route = _route(queue, priority, routed is not None)
    return loaded


@functools.lru_cache(maxsize=256)
def _route(queue: str | None, priority: str | None, routed: bool) -> Route:
    """A run's Route from its meta fields (frozen: one per distinct route is shared)."""
    return Route(queue=queue, priority=int(priority or 0), routed=routed)


def _followup_of(akey: str) -> Followup:
    return Followup(akey, *split_akey(akey))


def _decode_hash(fields: Mapping[str, str]) -> dict[str, Any]:
    decode = codec.decode
    return {key: decode(value) for key, value in fields.items()}


__all__ = ["RedisCoordinationStore"]
