"""Our scripts composed with BullMQ's, so a node job waits on fewer dependent round trips.

A node job used to wait on five dependent round trips (BullMQ's moveToActive, our load, our
complete, BullMQ's add of the successor, BullMQ's moveToFinished); a bare BullMQ job on two.
Two compositions take two of them away; each falls back to the separate calls it replaces.

`complete+add`.

A chain step used to wait for `complete` and then for BullMQ's add of the successor's job. The
`complete+add` script is `lua/complete.lua` with the *installed* BullMQ's `addStandardJob`
Lua (read from the bullmq package at runtime, never copied here) wrapped as a local function:
the successors that `complete` makes ready get their BullMQ jobs in the same atomic step.

Only the plain case is composed: jobs on the run's default queue with the queue's default
options (no priority, delay, per-job retry options or trace context). complete.lua checks the
run's route and each node id, and tells which ready follow-ups it added; the worker adds the
others with `BullMQJobQueue` as before. If the installed BullMQ has no such script, or its
options cannot be templated, nothing is composed (`ComposedAdd.build` returns None).

`moveToActive+load`. BullMQ's fetch of a job runs through `ActiveLoad`: the installed
`moveToActive-11.lua` and our `load.lua`, both wrapped as functions, then `lua/active_load.lua`,
which loads the fetched job's activation with the context keys its node needs, read from a
cache hash that workers fill as they learn them (`Preloads.publish`, once per blueprint pin and
node). BullMQ gets its reply unchanged; the load waits in `Preloads` for the job's
`RedisCoordinationStore.load`, which takes it once (a missing, stale or narrower one: a real
load). A load read at fetch time is one read a few milliseconds earlier: what could change in
between could as well change between a load and the node's execution.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from importlib import resources
from typing import Any, Final

from bullmq import Job as BullMQJob
from bullmq import Worker
from bullmq.scripts import raw2NextJobData
from msgpack import Packer, packb, unpackb
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from flowcraft_core.distributed.preload import preload_keys
from flowcraft_core.distributed.protocol import Transition

from . import scripts
from .multiplex import Multiplexer
from .queue import JOB_NAME

logger = logging.getLogger("flowcraft_bullmq.composed")

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

#: BullMQ's script that finishes a job, and its number of keys.
FINISH_SCRIPT: Final = "moveToFinished-14.lua"
FINISH_KEYS: Final = 14

#: complete.lua's lines after which the add and finish functions are assigned.
_HOOK: Final = "local ADD_JOB, FINISH_JOB = nil, nil\nlocal ADD_KEYS, FINISH_KEYS = 0, 0\n"
#: complete.lua's line after which the fetched job's load is assigned (with a finish).
_LOAD_HOOK: Final = "local LOAD_FETCHED = nil\n"

#: The start of load.lua's read of the run's meta fields; composed, it reads them only when
#: fetched_load.lua has not (META).
_LOAD_META: Final = "local meta = redis.call('HMGET', KEYS[1], "

#: The node job the current task handles (the adapter's processor sets it): its akey, BullMQ
#: job and lock token. Its own completion may then finish it (`ComposedAdd.tail`).
CURRENT_JOB: ContextVar[tuple[str, Any, str] | None] = ContextVar(
    "flowcraft_bullmq_current_job", default=None
)

#: Jobs finished by complete+add whose BullMQ moveToFinished has not come yet, kept at most.
FINISHED_MAX: Final = 1000

#: Stands for the job id in the options template (it is an option, `jobId`); as long as a
#: typical job id (a str8 in msgpack, like most of them).
_PLACEHOLDER: Final = "\x00flowcraft-job-id-placeholder-0123456789\x00"


#: moveToFinished's packed options as BullMQ packs them for a completion, in its order: those
#: that vary by job, and the others with the only value `FinishTemplate` takes (else no template).
_VARIES: Final = ("token", "keepJobs", "attempts", "attemptsMade")
_FIXED: Final[dict[str, Any]] = {
    "limiter": None,
    "maxMetricsSize": "",
    "fpof": False,
    "cpof": False,
    "idof": False,
    "rdof": False,
}
_FINISH_OPTS: Final = (
    "token",
    "keepJobs",
    "limiter",
    "lockDuration",
    "attempts",
    "attemptsMade",
    "maxMetricsSize",
    "fpof",
    "cpof",
    "idof",
    "rdof",
)
#: Job options BullMQ packs into them (as fpof, cpof, idof, rdof): a job with any is finished
#: with BullMQ's own function.
_FAILURE_OPTS: Final = frozenset(
    (
        "failParentOnFailure",
        "continueParentOnFailure",
        "ignoreDependencyOnFailure",
        "removeDependencyOnFailure",
    )
)
#: keepJobs of a removeOnComplete True, False or None, as BullMQ's getKeepJobs makes it.
_KEEP_NONE: Final = packb({"count": 0})
_KEEP_ALL: Final = packb({"count": -1})
_KEEP_COUNT: Final = packb({"count": 0})[:-1]  # {"count": n} without its n
#: The lock token of `FinishTemplate`'s probes (any token not found elsewhere in the options).
_PROBE_TOKEN: Final = "\x00flowcraft-token-placeholder\x00"


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


def _load_functions() -> str:
    """load.lua as the function LOAD, then lua/fetched_load.lua (`load_fetched`, which calls
    it): our load of a job a BullMQ script just fetched. LOAD takes the meta fields
    load_fetched read (META) instead of reading them again."""
    load = scripts.source("load")
    if load.count(_LOAD_META) != 1:
        raise ValueError("load.lua lost its meta read line")
    load = load.replace(
        _LOAD_META, "local meta = META or " + _LOAD_META.removeprefix("local meta = ")
    )
    return "local LOAD, META\n" + as_function(load, "LOAD") + scripts.read("fetched_load")


def complete_add_source(add_body: str, finish_body: str | None = None) -> str:
    """complete.lua (with lib.lua) with BullMQ's add script as its ADD_JOB and, if given, its
    moveToFinished as its FINISH_JOB and our load of the job that finish fetches next as its
    LOAD_FETCHED."""
    base = scripts.source("complete")
    if base.count(_HOOK) != 1 or base.count(_LOAD_HOOK) != 1:
        raise ValueError("complete.lua lost its ADD_JOB or LOAD_FETCHED hook lines")
    composed = _HOOK + as_function(add_body, "ADD_JOB") + f"ADD_KEYS = {len(ADD_KEYS)}\n"
    if finish_body is None:
        return base.replace(_HOOK, composed)
    composed += as_function(finish_body, "FINISH_JOB")
    load = _LOAD_HOOK + _load_functions() + "LOAD_FETCHED = load_fetched\n"
    return base.replace(_HOOK, composed).replace(_LOAD_HOOK, load)


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


class FinishTemplate:
    """moveToFinished's keys and arguments for a job one BullMQ worker completes (the result
    None), as its `Scripts.moveToCompletedArgs` makes them, from parts made once per worker.

    BullMQ's function builds 14 keys and packs an 11-field options map per job (~7 µs, a tenth
    of a worker's CPU); here only the job key, the token, keepJobs and the attempts vary. The
    parts come from BullMQ's own output for probe jobs, and `build` checks that they rebuild
    it; `completed` returns None for what they cannot express (the caller then calls BullMQ).
    The worker's options are read once: BullMQ's Worker never changes them."""

    __slots__ = (
        "_args",
        "_job_key",
        "_keys",
        "_keys_head",
        "_keys_tail",
        "_pack",
        "_parts",
        "_prefix",
        "_scripts",
    )

    def __init__(
        self, scripts: Any, keys: list[str], job_key: str, args: list[Any], parts: list[bytes]
    ) -> None:
        self._scripts = scripts
        self._keys = scripts.keys  # its queue's keys (a new dict if its queue is renamed)
        self._prefix = scripts.keys[""]  # ARGV[7]
        at = keys.index(job_key)
        self._keys_head, self._keys_tail = keys[:at], keys[at + 1 :]
        self._job_key = job_key.removesuffix(_PLACEHOLDER)  # the job key without the id
        self._args = args  # "returnvalue", "null", "completed" (ARGV[3..5])
        self._parts = parts  # the packed options around the 4 values that vary
        #: packb's packing without packb's new Packer per call (a worker's: one thread).
        self._pack = Packer().pack

    @classmethod
    def build(cls, worker: Any) -> FinishTemplate | None:
        """The template of `worker`'s completions; None if it has a limiter or metrics, or
        if BullMQ's output is not what the template rebuilds."""
        scripts = worker.scripts
        if scripts is None or worker.opts.get("limiter") is not None:
            return None
        if worker.opts.get("metrics") is not None:
            return None
        try:
            probes = []
            for remove, fetch, attempts in ((False, True, 3), (7, False, 70_000)):
                job = BullMQJob(worker, JOB_NAME, {}, {"attempts": attempts}, _PLACEHOLDER)
                job.attemptsMade = attempts - 1
                keys, args = scripts.moveToCompletedArgs(job, None, remove, _PROBE_TOKEN, fetch)
                probes.append((job, remove, fetch, keys, args))
            job, _, _, keys, args = probes[0]
            job_key = scripts.toKey(_PLACEHOLDER)
            if len(args) != 8 or keys.count(job_key) != 1 or not job_key.endswith(_PLACEHOLDER):
                return None
            template = cls(scripts, keys, job_key, args[2:5], _option_parts(args[7]))
            for job, remove, fetch, keys, args in probes:
                made = template.completed(job, remove, _PROBE_TOKEN, fetch, args[1])
                if made != (keys, args):
                    return None
        except (AttributeError, KeyError, TypeError, ValueError):
            return None
        return template

    def completed(
        self, job: Any, remove: Any, token: str, fetch_next: bool, timestamp: int
    ) -> tuple[list[str], list[Any]] | None:
        """`Scripts.moveToCompletedArgs(job, None, remove, token, fetch_next)` made at
        `timestamp` (ms), or None for a job or a `remove` the template does not cover."""
        job_id, attempts, made = job.id, job.attempts, job.attemptsMade
        if (
            type(job_id) is not str
            or type(token) is not str
            or type(attempts) is not int
            or type(made) is not int
            or not _FAILURE_OPTS.isdisjoint(job.opts)
            or self._scripts.keys is not self._keys
        ):
            return None
        pack = self._pack
        kind = type(remove)
        if kind is int:
            keep = _KEEP_COUNT + pack(remove)
        elif kind is dict:
            keep = pack(remove)
        elif kind is bool or remove is None:
            keep = _KEEP_NONE if remove else _KEEP_ALL
        else:
            return None
        p = self._parts
        packed = b"".join(
            (p[0], pack(token), p[1], keep, p[2], pack(attempts), p[3], pack(made), p[4])
        )
        keys = [*self._keys_head, self._job_key + job_id, *self._keys_tail]
        fetch = "1" if fetch_next else ""
        return keys, [job_id, timestamp, *self._args, fetch, self._prefix, packed]


def _option_parts(packed: bytes) -> list[bytes]:
    """BullMQ's packed options of a probe (`FinishTemplate.build`) as the 5 parts around the
    values that vary; ValueError if they are not the fields and values the template knows."""
    fields = unpackb(packed)
    if not isinstance(fields, dict) or tuple(fields) != _FINISH_OPTS:
        raise ValueError("BullMQ's moveToFinished options changed")
    parts, part = [], packed[:1]  # the map's header (11 entries: one byte)
    for name, value in fields.items():
        expected = _FIXED.get(name, value)
        if type(value) is not type(expected) or value != expected:
            raise ValueError(f"moveToFinished option {name} is not {expected!r}")
        part += packb(name)
        if name in _VARIES:
            parts.append(part)
            part = b""
        else:
            part += packb(value)
    parts.append(part)
    return parts


class ComposedAdd:
    """What `RedisCoordinationStore.complete` needs to run `complete+add` for one queue: the
    registered script, the queue's keys and the arguments after ours."""

    def __init__(
        self,
        script: AsyncScript,
        queue: Any,
        template: tuple[bytes, bytes],
        *,
        finishes: bool = False,
        prefix: str = "",
    ) -> None:
        self.script = script
        #: The script also finishes the job it completes (BullMQ's moveToFinished inside), and
        #: may fetch the slot's next job there (`FetchingWorker`).
        self.finishes = finishes
        #: moveToFinished's replies for jobs the script finished, by job id: (the job's lock
        #: token, the reply), until BullMQ's worker asks to finish them (`FinishedOnce`).
        self.finished: OrderedDict[str, tuple[str, Any]] = OrderedDict()
        #: The next jobs those finishes fetched (moveToActive's reply), by the finished job's
        #: id, until its slot runs them (`FetchingWorker.processJob`).
        self.fetched: OrderedDict[str, list[Any]] = OrderedDict()
        self.keys: list[str] = queue.scripts.getKeys(list(ADD_KEYS))
        self._args: list[Any] = [
            queue.scripts.keys[""],
            queue.name,
            JOB_NAME,
            template[0],
            template[1],
        ]
        self._load_args: list[Any] = [prefix, preload_cache_key(prefix)]
        #: The finish templates of the workers whose jobs this composition finished, by the
        #: worker's id: (the worker, its template or None: BullMQ's function).
        self._templates: dict[int, tuple[Any, FinishTemplate | None]] = {}

    @classmethod
    def build(
        cls, client: Redis, queue: Any, job_options: Mapping[str, Any], prefix: str = ""
    ) -> ComposedAdd | None:
        """The composition for jobs added to `queue` with `job_options`, or None when the
        installed BullMQ cannot be composed with (the worker then adds every job itself).
        `prefix`: our key prefix, for the load of a job the finish fetches."""
        body = bullmq_script(ADD_SCRIPT)
        if body is None or "cmsgpack.unpack(ARGV[1])" not in body:
            return None
        template = options_template(queue, job_options)
        if template is None:
            return None
        finish = bullmq_script(FINISH_SCRIPT)
        source = complete_add_source(body, finish)
        return cls(
            client.register_script(source),
            queue,
            template,
            finishes=finish is not None,
            prefix=prefix,
        )

    def tail(self, transition: Transition) -> tuple[list[str], list[Any], tuple[str, str] | None]:
        """The keys and arguments after complete's: the add's (BullMQ's job key prefix, the
        queue's name: a run whose queue it is not is not composed, the job name, the options
        around the job id, the timestamp in ms as Job.timestamp), then, when `transition`
        completes the current node job's activation and nothing but the follow-ups comes after
        it (not a sleep, a wait or a parked subflow), the job's moveToFinished (as BullMQ's
        worker would call it next, the processor's result None); and (job id, token) then."""
        keys = self.keys
        now = round(time.time() * 1000)
        args = [*self._args, now, *self._load_args]
        current = CURRENT_JOB.get()
        if (
            current is None
            or not self.finishes
            or current[0] != transition.akey
            or transition.sleep is not None
            or transition.child is not None
            or transition.waiting is not None
        ):
            args.append(0)
            return keys, args, None
        _, job, token = current
        worker = job.queue  # the BullMQ worker that fetched the job
        fetch_next = (
            isinstance(worker, FetchingWorker)
            and worker.adds is self  # its slots run what the finish fetches
            and not (worker.closing or worker.paused)
        )
        remove = job.opts.get("removeOnComplete", False)
        template = self._template(worker)
        finish = (
            None if template is None else template.completed(job, remove, token, fetch_next, now)
        )
        if finish is None:
            finish = worker.scripts.moveToCompletedArgs(job, None, remove, token, fetch_next)
        finish_keys, finish_args = finish
        return [*keys, *finish_keys], [*args, *finish_args, len(finish_args)], (job.id, token)

    def _template(self, worker: Any) -> FinishTemplate | None:
        found = self._templates.get(id(worker))
        if found is None or found[0] is not worker:
            if len(self._templates) >= 16:  # workers come and go (tests): keep a few
                self._templates.clear()
            found = self._templates[id(worker)] = (worker, FinishTemplate.build(worker))
        return found[1]

    def finished_here(self, job: tuple[str, str], reply: Any, preloads: Preloads | None) -> None:
        """complete+add+finish finished `job` (id, token) with moveToFinished's `reply`; one
        that fetched the next job keeps it for the slot, and its load for the job's `load`."""
        if isinstance(reply, list):  # fetched next: moveToActive's reply (+ load_fetched's)
            if len(reply) > 4 and preloads is not None:
                preloads.keep(reply[5], reply[6], reply[7], reply[4])
            if reply[0]:
                fetched = self.fetched
                fetched[job[0]] = reply[:4]
                while len(fetched) > FINISHED_MAX:
                    fetched.popitem(last=False)
            reply = 0  # what BullMQ's worker gets: a finish that fetched nothing
        finished = self.finished
        finished[job[0]] = (job[1], reply)
        while len(finished) > FINISHED_MAX:
            finished.popitem(last=False)


class FetchingWorker(Worker):  # type: ignore[misc]
    """A BullMQ worker whose slot runs the job its finished job's moveToFinished fetched.

    BullMQ for Node finishes a job and fetches the next in one call (moveToFinished with fetch
    next); BullMQ for Python 3.4.4 finishes without it and fetches again through its run loop
    (two dependent round trips per job). When complete+add+finish finishes a job here, its
    finish fetches the next job for the same lock token (`ComposedAdd.tail`); this worker then
    runs that job in the same slot, as its run loop would have run a job it fetched. A job
    fetched this way is active and locked like any other: a worker that dies first leaves it
    to the stalled-job check."""

    #: The composition whose finishes fetch (set by the adapter; None: a plain Worker).
    adds: ComposedAdd | None = None

    async def processJob(self, job: Any, token: str) -> None:
        while True:
            await super().processJob(job, token)
            adds = self.adds
            raw = adds.fetched.pop(job.id, None) if adds is not None and adds.fetched else None
            if raw is None or self.forceClosing:
                return
            job = await self.nextJobFromJobData(*raw2NextJobData(raw), token)
            if job is None:
                return
            self.emit("active", job, "waiting")


class FinishedOnce:
    """Stands for BullMQ's moveToFinished in its worker's command table: a job complete+add
    finished already gets the reply it got there (once), any other call runs `command`."""

    __slots__ = ("adds", "command")

    def __init__(self, command: Any, adds: ComposedAdd) -> None:
        self.command = command
        self.adds = adds

    async def __call__(self, keys: Any = None, args: Any = None, client: Any = None) -> Any:
        if args and self.adds.finished:
            found = self.adds.finished.pop(args[0], None)
            # Its moveToCompleted with the same lock token (in the packed options, args[7]).
            if found is not None and args[4] == "completed" and found[0].encode() in args[7]:
                return found[1]
        return await self.command(keys=keys, args=args, client=client)


#: BullMQ's fetch script and its number of keys.
MOVE_SCRIPT: Final = "moveToActive-11.lua"
MOVE_KEYS: Final = 11

#: A load waiting for its job longer than this is not used (seconds).
PRELOAD_MAX_AGE_S: Final = 1.0
#: Loads kept at most (unused ones: a job whose processing never loaded; the oldest go).
PRELOAD_MAX: Final = 1000
#: Fields per HSET when a worker publishes its blueprints' preload keys: Redis runs one
#: command at a time, so one HSET of a 100,000-node blueprint would stall every client.
PRELOAD_PUBLISH_FIELDS: Final = 1000

#: Batch item node ids (`<scatterId>[<i>]`): one per item, never cached.
_ITEM = re.compile(r"\[\d+\]\Z")


def active_load_source(move_body: str) -> str:
    """BullMQ's moveToActive and our load as functions, then lua/active_load.lua."""
    return (
        "local MOVE_TO_ACTIVE\n"
        + as_function(move_body, "MOVE_TO_ACTIVE")
        + _load_functions()
        + scripts.read("active_load")
    )


def preload_cache_key(prefix: str) -> str:
    """The preload cache hash of key prefix `prefix` (keys.py lists it)."""
    return f"{prefix}:preload"


def sources() -> dict[str, str]:
    """The composed scripts' texts as sent to Redis, by name (none the installed BullMQ
    cannot make): for tools that name scripts by SHA1 (the benchmark's MONITOR sample)."""
    out = {}
    add, finish = bullmq_script(ADD_SCRIPT), bullmq_script(FINISH_SCRIPT)
    if add is not None:
        out["complete+add" if finish is None else "complete+add+finish"] = complete_add_source(
            add, finish
        )
    move = bullmq_script(MOVE_SCRIPT)
    if move is not None:
        out["moveToActive+load"] = active_load_source(move)
    return out


class Preloads:
    """Loads done with a job's fetch, until the job's `load` takes them; and the preload cache
    (`<prefix>:preload`) this process has published to."""

    def __init__(self, prefix: str, via: Multiplexer) -> None:
        self.via = via
        self.cache_key = preload_cache_key(prefix)
        self._waiting: OrderedDict[tuple[str, str], tuple[float, str, list[Any]]] = OrderedDict()
        self._published: set[tuple[str, str, str]] = set()
        self._texts: dict[tuple[str, ...], str] = {}

    def keep(self, run_id: str, akey: str, keys_text: str, reply: list[Any]) -> None:
        waiting = self._waiting
        waiting[(run_id, akey)] = (time.monotonic(), keys_text, reply)
        while len(waiting) > PRELOAD_MAX:
            waiting.popitem(last=False)

    def take(self, run_id: str, akey: str, keys: Sequence[str] | None) -> list[Any] | None:
        """load.lua's reply for this activation if its fetch loaded it recently with at least
        `keys` (None: the caller does not know its node's keys; the cache did)."""
        if not self._waiting:
            return None
        found = self._waiting.pop((run_id, akey), None)
        if found is None:
            return None
        at, keys_text, reply = found
        if time.monotonic() - at > PRELOAD_MAX_AGE_S:
            return None
        if keys is not None and keys_text != "null" and keys_text != self._text(keys):
            return None
        return reply

    def _text(self, keys: Sequence[str]) -> str:
        key = tuple(keys)
        text = self._texts.get(key)
        if text is None:
            if len(self._texts) > 10_000:
                self._texts.clear()
            text = self._texts[key] = json.dumps(list(key))
        return text

    async def publish(self, reply: list[Any], akey: str, keys: Sequence[str]) -> None:
        """After a real load with `keys`: the cache learns them for this node (once)."""
        blueprint_id, pin = reply[1], reply[2]
        node_id = akey.rpartition("@")[0]
        name = (blueprint_id, pin, node_id)
        if name in self._published:
            return
        self._published.add(name)
        if "\n" in blueprint_id or "\n" in pin or _ITEM.search(node_id):
            return
        field = f"{blueprint_id}\n{pin}\n{node_id}"
        try:
            await self.via.execute("HSET", self.cache_key, field, self._text(keys))
        except RedisError:  # only an optimization: the job's own load succeeded
            logger.debug("could not publish the preload keys of node %r", node_id)

    async def publish_plans(self, plans: Sequence[tuple[str, str, Any]]) -> None:
        """Publish what every node of these (blueprint id, pin, plan) loads, as the worker's
        `handle` asks for it (`preload_keys`; None: the whole context): a run's entry job
        finds its keys too (its worker has not seen the run, so it cannot say them)."""
        fields: list[str] = []
        for blueprint_id, pin, plan in plans:
            if "\n" in blueprint_id or "\n" in pin:
                continue
            for node in plan.nodes:
                keys = preload_keys(plan, node)
                self._published.add((blueprint_id, pin, node.id))
                fields += (
                    f"{blueprint_id}\n{pin}\n{node.id}",
                    "null" if keys is None else self._text(keys),
                )
        step = 2 * PRELOAD_PUBLISH_FIELDS
        sent = await asyncio.gather(
            *(
                self.via.execute("HSET", self.cache_key, *fields[at : at + step])
                for at in range(0, len(fields), step)
            ),
            return_exceptions=True,  # pipelined on the multiplexer's connection
        )
        failed = [outcome for outcome in sent if isinstance(outcome, BaseException)]
        for error in failed:
            if not isinstance(error, RedisError):
                raise error
        if failed:  # only an optimization
            logger.debug("could not publish the preload keys of the blueprints")


class ActiveLoad:
    """Stands for BullMQ's moveToActive in its worker's command table: runs `moveToActive+load`
    on the multiplexer, keeps the load, returns BullMQ's reply."""

    __slots__ = ("prefix", "preloads", "script", "via")

    def __init__(self, script: AsyncScript, via: Multiplexer, preloads: Preloads, prefix: str):
        self.script = script
        self.via = via
        self.preloads = preloads
        self.prefix = prefix

    @classmethod
    def install(
        cls,
        commands: dict[str, Any],
        client: Redis,
        via: Multiplexer,
        preloads: Preloads,
        prefix: str,
    ) -> bool:
        """Replace `commands["moveToActive"]` (BullMQ's) by the composition; False (nothing
        changed) when the installed BullMQ has no moveToActive-11.lua."""
        body = bullmq_script(MOVE_SCRIPT)
        if body is None or "moveToActive" not in commands:
            return False
        script = client.register_script(active_load_source(body))
        commands["moveToActive"] = cls(script, via, preloads, prefix)
        return True

    async def __call__(self, keys: Any = None, args: Any = None, client: Any = None) -> Any:
        reply = await self.via.run_script(
            self.script, keys or (), [*args, self.prefix, self.preloads.cache_key]
        )
        if len(reply) > 4:
            self.preloads.keep(reply[5], reply[6], reply[7], reply[4])
            return reply[:4]
        return reply


__all__ = [
    "ADD_KEYS",
    "ADD_SCRIPT",
    "CURRENT_JOB",
    "FINISH_SCRIPT",
    "MOVE_SCRIPT",
    "ActiveLoad",
    "ComposedAdd",
    "FetchingWorker",
    "FinishTemplate",
    "FinishedOnce",
    "Preloads",
    "active_load_source",
    "as_function",
    "bullmq_script",
    "complete_add_source",
    "msgpack_str",
    "options_template",
    "preload_cache_key",
    "sources",
]
