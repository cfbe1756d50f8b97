"""JSON between Python and the Lua scripts (msgspec).

User data (context values, outputs, join values, error records, waiting details) is encoded
once here and stored by the scripts as opaque text: Lua never re-encodes it, so cjson's number
precision and its `{}`-for-empty-array rule cannot touch it. Lua decodes only the transition
header (`pack_transition`), which holds names, statuses, counts and ARGV indices.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from flowcraft_core.distributed.frontier import LOOP_END, READY, SKIP, FrontierEntry
from flowcraft_core.distributed.protocol import (
    Applied,
    Close,
    Followup,
    LoopEnd,
    Transition,
    iteration_text,
    loop_instance_key,
    waiting_base,
)
from flowcraft_core.runtime.state import TAKEN

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()

#: ARGV index of the first JSON text `complete.lua` receives by reference (after the header,
#: the TTL and the join key prefix).
VALUES_AT = 4


def encode(value: Any) -> bytes:
    """JSON text of a context value or record (None -> `null`)."""
    return _encoder.encode(value)


def decode(text: str | bytes) -> Any:
    return _decoder.decode(text)


_tuple_decoder = msgspec.json.Decoder(tuple[Any, ...])


def decode_tuple(text: str | bytes) -> tuple[Any, ...]:
    """A JSON array as a tuple (a join record's ``[status, value]``)."""
    return _tuple_decoder.decode(text)


def _followup(target: str, node_id: str, iteration: Sequence[int]) -> str:
    return _encoder.encode([target, node_id, list(iteration)]).decode()


def pack_transition(t: Transition) -> tuple[bytes, list[bytes], list[str]]:
    """(header JSON, the JSON texts it references from ARGV[VALUES_AT], the akeys whose join keys
    follow the fixed keys: every resolution's target, then every next iteration's)."""
    values: list[bytes] = []

    def ref(value: Any) -> int:
        values.append(_encoder.encode(value))
        return VALUES_AT + len(values) - 1

    def entry(status: int, value: Any) -> int:
        return ref([status, value])

    header: dict[str, Any] = {
        "a": t.akey,
        "b": waiting_base(t.akey),
        "o": [[key, 0 if deleted else ref(value)] for key, value, deleted in t.ops],
        "k": list(t.output_keys),
        "r": [
            [
                r.target,
                r.pred,
                r.status,
                entry(r.status, r.value),
                r.expected,
                r.join_any,
                list(r.dead),
                list(r.open),
                _followup(r.target, r.node_id, r.iteration),
            ]
            + ([r.gate] if r.gate is not None else [])  # a gather's scatter akey
            for r in t.resolutions
        ],
        "n": [
            [
                n.back_key,
                n.target,
                n.pred,
                entry(TAKEN, n.value),
                list(n.open),
                _followup(n.target, n.node_id, n.iteration),
            ]
            for n in t.next
        ],
        "x": [[instance, index] for instance, index in t.exits],
        "c": [
            [
                c.counter,
                loop_instance_key(c.header_id, c.prefix),
                _encoder.encode([c.counter, c.header_id, list(c.prefix)]).decode(),
                _encoder.encode([c.header_id, list(c.prefix)]).decode(),
            ]
            for c in t.close
        ],
    }
    if t.output_keys:
        header["v"] = ref(t.output)
    if t.error is not None:
        header["e"] = ref(t.error)
    if t.waiting is not None:
        header["w"] = ref(t.waiting)
        if t.episode is None:  # may take a buffered resume (a subflow's wait does not)
            header["q"] = _encoder.encode(t.node_id).decode()
    if t.child is not None:
        header["y"] = [t.akey.removesuffix("~child"), ref(t.child)]
    if t.episode is not None:
        header["p"] = t.episode
    if t.sleep is not None:
        wake_at, value = t.sleep
        header["z"] = [t.akey.removesuffix("~sleep"), repr(wake_at / 1000.0), ref([wake_at, value])]
    _pack_batch(t, header, ref)
    if t.compensable:
        header["m"] = ref([t.node_id, list(t.iteration), t.output])
    targets = [r.target for r in t.resolutions] + [n.target for n in t.next]
    return _encoder.encode(header), values, targets


def _pack_batch(t: Transition, header: dict[str, Any], ref: Callable[[Any], int]) -> None:
    """A scatter's batch ("B") or an item's end ("I"), see complete.lua. Each item is its own
    JSON text `[item]` (what an item job loads), referenced from ARGV[v] on."""
    if t.batch is not None:
        b = t.batch
        first = [ref([item]) for item in b.items][:1]
        header["B"] = {
            "k": b.key,
            "s": b.scatter_id,
            "t": iteration_text(b.iteration),
            "j": _encoder.encode(list(b.iteration)).decode(),
            "n": len(b.items),
            "c": b.chunk or 0,
            "g": b.gather,
            "v": first[0] if first else 0,
        }
    if t.item is not None:
        header["I"] = {"k": t.item.key, "i": t.item.index}
        if t.item.failed:
            header["I"]["f"] = True
        if t.error is None:
            header["I"]["o"] = ref(t.output)


_Iteration = tuple[int, ...]
_FollowupWire = tuple[tuple[str, str, _Iteration], int]
_CloseWire = tuple[str, str, _Iteration]


class _AppliedWire(msgspec.Struct, frozen=True):
    r: list[_FollowupWire]
    s: list[_FollowupWire]
    l: list[tuple[tuple[str, _Iteration], _Iteration, list[_CloseWire]]]  # noqa: E741
    f: str | None
    q: tuple[Any, str | None] | None = None  # a taken buffered resume: (output, action)


_applied_decoder = msgspec.json.Decoder(_AppliedWire)


def unpack_applied(text: str | bytes, *, replay: bool = False) -> Applied:
    """The Applied a script recorded (compact JSON, see complete.lua)."""
    wire = _applied_decoder.decode(text)

    def followups(items: list[_FollowupWire]) -> list[Followup]:
        return [Followup(a, n, it, status) for (a, n, it), status in items]

    return Applied(
        ready=followups(wire.r),
        skipped=followups(wire.s),
        loop_ends=[
            LoopEnd(header, prefix, delivered, tuple(Close(*c) for c in rest))
            for (header, prefix), delivered, rest in wire.l
        ],
        finished=wire.f,
        replay=replay,
        taken=wire.q,
    )


_pair_decoder = msgspec.json.Decoder(tuple[Any, Any])


def unpack_single(text: str | bytes | None) -> tuple[Any] | None:
    """A batch input ``[value]`` (an item's item, a gather's results) as a 1-tuple."""
    if text is None:
        return None
    (value,) = _decoder.decode(text)
    return (value,)


def unpack_pair(text: str | bytes | None) -> Any:
    """A sleep record ``[wakeAt ms, input]`` or a resume claim ``[output, action]`` as a tuple;
    None if absent (or an old claim mark)."""
    if text is None or text[:1] not in ("[", b"["):
        return None
    return _pair_decoder.decode(text)


_parent_decoder = msgspec.json.Decoder(tuple[str, str, tuple[int, ...]])
_record_decoder = msgspec.json.Decoder(dict[str, Any])


def unpack_parent(text: str | bytes | None) -> tuple[str, str, tuple[int, ...]] | None:
    """A child run's parent link ``[run id, node id, iteration]`` (meta ``parent``)."""
    return None if not text else _parent_decoder.decode(text)


def unpack_record(text: str | bytes | None) -> dict[str, Any] | None:
    """A parked subflow activation's child record (acts ``<akey>~sub``)."""
    return None if text is None else _record_decoder.decode(text)


def resume_entry(node_id: str | None, output: Any, action: str | None) -> bytes:
    """A buffered resume in ``P:{R}:resume``: the node id JSON (or null), a newline, then
    ``[output, action]`` JSON (complete.lua matches the first line; JSON has no raw newline)."""
    return _encoder.encode(node_id) + b"\n" + _encoder.encode([output, action])


_LoopEndWire = tuple[tuple[str, _Iteration], _Iteration, list[_CloseWire]]
_frontier_decoder = msgspec.json.Decoder(tuple[str, msgspec.Raw])
_followup_decoder = msgspec.json.Decoder(_FollowupWire)
_loop_end_decoder = msgspec.json.Decoder(_LoopEndWire)


def pack_ready(f: Followup) -> str:
    """The frontier JSON of an activation recorded ready (as complete.lua writes it)."""
    return '["r",[' + _followup(f.akey, f.node_id, f.iteration) + "," + str(TAKEN) + "]]"


def unpack_frontier(akey: str, text: str | bytes) -> FrontierEntry:
    """One field of ``P:{R}:frontier`` (keys.py): ``[kind, followup or loop end]``."""
    kind, body = _frontier_decoder.decode(text)
    if kind == "l":
        (header, prefix), delivered, rest = _loop_end_decoder.decode(body)
        end = LoopEnd(header, prefix, delivered, tuple(Close(*c) for c in rest))
        return FrontierEntry(LOOP_END, akey, header, prefix, loop_end=end)
    (_, node_id, iteration), status = _followup_decoder.decode(body)
    if kind == "r":
        return FrontierEntry(READY, akey, node_id, iteration, status)
    if kind == "s":
        return FrontierEntry(SKIP, akey, node_id, iteration, status)
    raise ValueError(f"unknown frontier entry kind {kind!r} for {akey!r}")


__all__ = [
    "VALUES_AT",
    "decode",
    "decode_tuple",
    "encode",
    "pack_ready",
    "pack_transition",
    "resume_entry",
    "unpack_applied",
    "unpack_frontier",
    "unpack_pair",
    "unpack_parent",
    "unpack_record",
    "unpack_single",
]
