"""Every Redis key flowcraft writes, in one place (SPEC 9.6).

`P` is the prefix and `{R}` the run id used as a cluster hash tag, so all of a run's keys live in
one slot and each Lua script touches one slot. Run ids are validated (`[A-Za-z0-9_.~-]`), so
they never contain a brace; akeys may contain any character but only ever follow the tag.

====================== ====== ==========================================================
key                    type   content
====================== ====== ==========================================================
``P:{R}:meta``         hash   ``blueprintId``, ``blueprintVersion`` (the pin), ``status``,
                              ``createdAt``, ``progressAt``, ``finishedAt``, ``inFlight``
``P:{R}:ctx``          hash   the context: one field per key, JSON text (None -> null)
``P:{R}:errors``       list   error records (JSON), in the order they were recorded
``P:{R}:acts``         hash   akey -> the recorded answer (compact Applied JSON) of a
                              completed activation; redelivery replays it
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
====================== ====== ==========================================================

Scripts that can end a run take the fixed keys (`RunKeys.fixed`, in that order) as
``KEYS[1..11]``; the per-target join keys are the only keys whose names a script builds itself
(``P:{R}:join:`` + a member of ``P:{R}:joins``, in lua/lib.lua `each_run_key`): to give them
the run's TTL when it ends, and to clear an expired run's leftovers in `create_run`.
"""

from __future__ import annotations

from dataclasses import dataclass

from flowcraft_core.ids import validate_run_id

#: Names of the fixed per-run keys, in the order scripts receive them as KEYS[1..11].
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
    def fixed(self) -> list[str]:
        """KEYS[1..11] of the scripts that can end a run (the order of `FIXED`)."""
        base = self.base
        return [base + name for name in FIXED]

    @property
    def join_prefix(self) -> str:
        """`join(akey)` is `join_prefix + akey` (passed to Lua for the end-of-run TTLs)."""
        return self.base + "join:"

    def join(self, akey: str) -> str:
        """The join record of one target activation."""
        return self.base + "join:" + akey


__all__ = ["FIXED", "RunKeys", "validate_prefix"]
