"""Every Redis key flowcraft writes, in one place (SPEC 9.6).

`P` is the prefix and `{R}` the run id used as a cluster hash tag, so all of a run's keys live in
one slot and each Lua script touches one slot. Run ids are validated (`[A-Za-z0-9_.~-]`), so
they never contain a brace; akeys may contain any character but only ever follow the tag.

====================== ====== ==========================================================
key                    type   content
====================== ====== ==========================================================
``P:{R}:meta``         hash   ``blueprintId``, ``blueprintVersion`` (the pin), ``status``,
                              ``createdAt``, ``progressAt``, ``finishedAt``, ``inFlight``,
                              ``wakeAt`` (the latest wake time of a sleep, or a delayed
                              start, epoch s), ``episode`` (times it went from awaiting
                              to running), ``parent`` (a subflow child's ``[run id, node
                              id, iteration]``), ``queue``, ``priority``, ``routed`` (its
                              Route, docs/scheduling.md)
``P:{R}:ctx``          hash   the context: one field per key, JSON text (None -> null)
``P:{R}:errors``       list   error records (JSON), in the order they were recorded
``P:{R}:acts``         hash   akey -> the recorded answer (compact Applied JSON) of a
                              completed activation; redelivery replays it. Also
                              ``<akey>~wake`` -> ``[wakeAt ms, input]`` of a sleep, and
                              ``<akey>~claim`` -> ``[output, action]`` of a resume,
                              ``<akey>~sub`` -> a parked subflow's child record,
                              ``<akey>~ep`` -> the child episode of its latest wait
``P:{R}:joins``        set    target akeys that have a join record
``P:{R}:join:<akey>``  hash   one target's join record: pred node id -> JSON
                              ``[status, value]`` (membership = HSETNX semantics)
``P:{R}:decided``      set    target akeys whose join is decided (never decided twice)
``P:{R}:fired``        hash   any-join target akey -> the predecessor that fired it
``P:{R}:live``         hash   loop-iteration counter (header akey) -> live activations
``P:{R}:back``         set    loop iterations whose back edge was taken (once each)
``P:{R}:exits``        hash   loop instance ``H#<prefix>`` -> exit edges delivered
                              (``,1,3,``)
``P:{R}:waiting``      hash   waiting activation (akey without ``~wait``) -> details JSON
``P:{R}:frontier``     hash   what the run is owed (flowcraft_core.distributed.frontier):
                              akey -> ``["r", followup]`` (recorded ready, not completed),
                              ``["s", followup]`` (skip or block not yet propagated),
                              ``["l", loop end]`` (loop end not yet applied; the akey
                              is ``~end:H#<prefix>``); followup and loop end as in the
                              Applied JSON of complete.lua
``P:{R}:resume``       list   buffered resumes, oldest first: the node id JSON (or
                              ``null``), a newline, ``[output, action]`` JSON (not a
                              fixed key: scripts get or build it; lib.lua `finish`
                              deletes it)
``P:{R}:lock:reconcile`` string  the reconcile lease (a token, 60 s TTL; not a fixed key)
``P:{R}:events``       stream the run's events, with ``event_stream=True`` (not a fixed
                              key: each append gives it the run's TTL)
``P:preload``          hash   not a run's: ``<blueprintId>\n<pin>\n<nodeId>`` -> the
                              context keys a job of that node loads (JSON list), as
                              workers learn them; read by the composed fetch
                              (composed.py, lua/active_load.lua). No TTL: one field per
                              node of each blueprint version run
====================== ====== ==========================================================

Scripts that can end a run take the fixed keys (`RunKeys.fixed`, in that order) as
``KEYS[1..12]``; the per-target join keys are the only keys whose names a script builds itself
(``P:{R}:join:`` + a member of ``P:{R}:joins``, in lua/lib.lua `each_run_key`): to give them
the run's TTL when it ends, and to clear an expired run's leftovers in `create_run`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flowcraft_core.ids import validate_run_id

#: Names of the fixed per-run keys, in the order scripts receive them as KEYS[1..12]
#: (lua/lib.lua's FIXED_KEYS is their number).
FIXED = (
    "meta",
    "ctx",
    "errors",
    "acts",
    "joins",
    "decided",
    "fired",
    "live",
    "back",
    "exits",
    "waiting",
    "frontier",
)


def validate_prefix(prefix: str) -> str:
    """Return `prefix` or raise ValueError: non-empty, no braces (they would move the hash
    tag), no control characters."""
    if not isinstance(prefix, str) or not prefix:
        raise ValueError("key prefix must be a non-empty string")
    if any(c in "{}" or ord(c) < 0x20 or ord(c) == 0x7F for c in prefix):
        raise ValueError(f"invalid key prefix {prefix!r}: no braces or control characters")
    return prefix


@dataclass(frozen=True, slots=True)
class RunKeys:
    """The keys of one run."""

    base: str  # "P:{R}:"
    #: `fixed`, made on first use: the same strings on every call, so their hashes (the
    #: multiplexer looks keys up by them) are computed once.
    _fixed: tuple[str, ...] | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def of(cls, prefix: str, run_id: str) -> RunKeys:
        """Keys of `run_id` under an already validated `prefix` (the run id is validated)."""
        return cls(f"{prefix}:{{{validate_run_id(run_id)}}}:")

    @property
    def meta(self) -> str:
        return self.base + "meta"

    @property
    def ctx(self) -> str:
        return self.base + "ctx"

    @property
    def errors(self) -> str:
        return self.base + "errors"

    @property
    def acts(self) -> str:
        return self.base + "acts"

    @property
    def fired(self) -> str:
        return self.base + "fired"

    @property
    def waiting(self) -> str:
        return self.base + "waiting"

    @property
    def resume(self) -> str:
        """Buffered resumes (SPEC 9.7): a list, not a fixed key; deleted when the run ends."""
        return self.base + "resume"

    @property
    def frontier(self) -> str:
        return self.base + "frontier"

    @property
    def events(self) -> str:
        """The run's event stream (opt-in, event_stream.py): not a fixed key, it gets the
        run's TTL from each append."""
        return self.base + "events"

    @property
    def reconcile_lock(self) -> str:
        """The reconcile lease (SPEC 9.6): SET NX with a TTL, never a fixed key."""
        return self.base + "lock:reconcile"

    @property
    def fixed(self) -> list[str]:
        """KEYS[1..12] of the scripts that can end a run (the order of `FIXED`)."""
        fixed = self._fixed
        if fixed is None:
            base = self.base
            fixed = tuple(base + name for name in FIXED)
            object.__setattr__(self, "_fixed", fixed)
        return list(fixed)

    @property
    def join_prefix(self) -> str:
        """`join(akey)` is `join_prefix + akey` (passed to Lua for the end-of-run TTLs)."""
        return self.base + "join:"

    def join(self, akey: str) -> str:
        """The join record of one target activation."""
        return self.base + "join:" + akey


def _glob_escape(text: str) -> str:
    """`text` matched literally by a Redis glob (SCAN MATCH)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def meta_pattern(prefix: str) -> str:
    """SCAN MATCH pattern of every run's meta key under `prefix`: ``P:{*}:meta``."""
    return _glob_escape(prefix) + ":{*}:meta"


def run_id_of_meta_key(prefix: str, key: str) -> str | None:
    """The run id of a key `meta_pattern` matched, or None if it is not a run's meta key."""
    head, tail = prefix + ":{", "}:meta"
    if not (key.startswith(head) and key.endswith(tail)):
        return None
    try:
        return validate_run_id(key[len(head) : -len(tail)])
    except ValueError:
        return None


__all__ = ["FIXED", "RunKeys", "meta_pattern", "run_id_of_meta_key", "validate_prefix"]
