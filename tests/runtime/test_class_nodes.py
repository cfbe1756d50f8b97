"""SPEC 2.3: class nodes (prep -> exec -> [fallback] -> post, recover on final failure)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, ClassVar

from flowcraft_core import BaseNode, NodeResult

from .support import Calls, bp, echo, edge, make_runtime, node, of_type


class Recorded(BaseNode):
    """Logs every lifecycle call as (method, instance id, detail) into `log`."""

    log: ClassVar[list[tuple[str, int, Any]]] = []
    exec_fails_until: ClassVar[int] = 0  # attempts < this raise

    async def prep(self, ctx: Any) -> Any:
        self.log.append(("prep", id(self), ctx.input))
        await ctx.context.set("prep_wrote", ctx.node_id)
        return {"prepared": ctx.input}

    async def exec(self, prep_result: Any, ctx: Any) -> Any:
        self.log.append(("exec", id(self), ctx.attempt))
        if ctx.attempt < self.exec_fails_until:
            raise ValueError(f"exec attempt {ctx.attempt}")
        return {"output": {"exec": prep_result, "params": dict(self.params)}}

    async def fallback(self, error: BaseException, ctx: Any) -> Any:
        self.log.append(("fallback", id(self), str(error)))
        raise error

    async def post(self, exec_result: Any, ctx: Any) -> Any:
        self.log.append(("post", id(self), exec_result))
        assert isinstance(exec_result, NodeResult)
        return NodeResult(output={"post": exec_result.output}, action="done")

    async def recover(self, error: BaseException, ctx: Any) -> None:
        self.log.append(("recover", id(self), str(error)))


def fresh(cls: type[Recorded], **attrs: Any) -> type[Recorded]:
    """A subclass with its own log (tests stay independent)."""
    return type(cls.__name__, (cls,), {"log": [], **attrs})


def methods(cls: type[Recorded]) -> list[str]:
    return [m for m, _, _ in cls.log]


async def test_lifecycle_order_and_only_exec_is_retried() -> None:
    cls = fresh(Recorded, exec_fails_until=3)
    runtime, bus = make_runtime({"cls": cls, "t": echo})
    blueprint = bp(
        [node("n", "cls", params={"k": 1}, config={"maxRetries": 3}), node("after", "t")],
        [edge("n", "after", action="done")],
    )
    result = await runtime.run(blueprint, {"_inputs.n": "in"})

    assert result.status == "completed", result.errors
    assert methods(cls) == ["prep", "exec", "exec", "exec", "post"]
    assert [d for m, _, d in cls.log if m == "exec"] == [1, 2, 3]
    post_arg = cls.log[-1][2]
    assert post_arg == NodeResult(output={"exec": {"prepared": "in"}, "params": {"k": 1}})
    assert result.context["_outputs.n"] == {"post": post_arg.output}
    assert result.context["_outputs.after"] == {"post": post_arg.output}
    assert result.context["prep_wrote"] == "n"
    assert [e.attempt for e in of_type(bus, "node:retry")] == [1, 2]


async def test_one_instance_per_activation_constructed_with_params_and_node_id() -> None:
    built: list[tuple[Any, str]] = []

    class Ctor(Recorded):
        log: ClassVar[list[tuple[str, int, Any]]] = []

        def __init__(self, params: Any, node_id: str) -> None:
            super().__init__(params, node_id)
            built.append((dict(params), node_id))

    Ctor.exec_fails_until = 2
    runtime, _ = make_runtime({"cls": Ctor})
    blueprint = bp(
        [
            node("a", "cls", params={"x": 1}, config={"maxRetries": 2}),
            node("b", "cls", params={"x": 2}, config={"maxRetries": 2}),
        ],
        [edge("a", "b")],
    )
    result = await runtime.run(blueprint)
    assert result.status == "completed"
    assert built == [({"x": 1}, "a"), ({"x": 2}, "b")]
    ids = [instance for _, instance, _ in Ctor.log]
    first, second = ids[:4], ids[4:]
    assert len(set(first)) == 1 and len(set(second)) == 1
    assert first[0] != second[0]


async def test_class_fallback_replaces_the_result_and_recover_is_not_called() -> None:
    class WithFallback(Recorded):
        log: ClassVar[list[tuple[str, int, Any]]] = []
        exec_fails_until = 99

        async def fallback(self, error: BaseException, ctx: Any) -> Any:
            self.log.append(("fallback", id(self), str(error)))
            return {"output": "from class fallback"}

    runtime, bus = make_runtime({"cls": WithFallback})
    result = await runtime.run(bp([node("n", "cls", config={"maxRetries": 2})]))
    assert result.status == "completed"
    assert methods(WithFallback) == ["prep", "exec", "exec", "fallback", "post"]
    assert WithFallback.log[3][2] == "exec attempt 2"
    assert WithFallback.log[-1][2] == NodeResult(output="from class fallback")
    assert result.context["_outputs.n"] == {"post": "from class fallback"}
    assert result.errors == []
    assert of_type(bus, "node:error") == []


async def test_recover_is_called_once_on_final_failure() -> None:
    cls = fresh(Recorded, exec_fails_until=99)
    runtime, _ = make_runtime({"cls": cls})
    result = await runtime.run(bp([node("n", "cls", config={"maxRetries": 2})]))
    assert result.status == "failed"
    assert methods(cls) == ["prep", "exec", "exec", "fallback", "recover"]
    assert cls.log[-1][2] == "exec attempt 2"
    (record,) = result.errors
    assert (record.type, record.message, record.attempts) == ("ValueError", "exec attempt 2", 2)
    assert "prep_wrote" not in result.context


async def test_recover_exceptions_are_ignored() -> None:
    class BadRecover(Recorded):
        log: ClassVar[list[tuple[str, int, Any]]] = []
        exec_fails_until = 99

        async def recover(self, error: BaseException, ctx: Any) -> None:
            raise KeyError("recover broke")

    runtime, _ = make_runtime({"cls": BadRecover, "t": echo})
    result = await runtime.run(bp([node("n", "cls"), node("other", "t")]))
    assert result.status == "failed"
    assert [(r.node_id, r.type) for r in result.errors] == [("n", "ValueError")]
    assert result.context["_outputs.other"] is None


async def test_recover_is_not_called_when_a_config_fallback_stands_in() -> None:
    cls = fresh(Recorded, exec_fails_until=99)

    async def cached(ctx: Any) -> dict[str, Any]:
        return {"output": "cached"}

    runtime, _ = make_runtime({"cls": cls, "cached": cached})
    blueprint = bp([node("n", "cls", config={"fallback": "F"}), node("F", "cached")])
    result = await runtime.run(blueprint)
    assert result.status == "completed"
    assert result.context["_outputs.n"] == "cached"
    # The activation did not finally fail, so recover() must not run (SPEC 2.3 item 5).
    assert "recover" not in methods(cls), methods(cls)


async def test_prep_failure_skips_exec_fallback_and_post_and_is_not_retried() -> None:
    class BadPrep(Recorded):
        log: ClassVar[list[tuple[str, int, Any]]] = []

        async def prep(self, ctx: Any) -> Any:
            self.log.append(("prep", id(self), None))
            raise LookupError("no data")

    runtime, _ = make_runtime({"cls": BadPrep})
    result = await runtime.run(bp([node("n", "cls", config={"maxRetries": 3})]))
    assert result.status == "failed"
    assert methods(BadPrep) == ["prep", "recover"]
    (record,) = result.errors
    assert (record.type, record.message) == ("LookupError", "no data")


async def test_prep_failure_still_allows_a_config_fallback() -> None:
    class BadPrep(Recorded):
        log: ClassVar[list[tuple[str, int, Any]]] = []

        async def prep(self, ctx: Any) -> Any:
            raise LookupError("no data")

    async def backup(ctx: Any) -> dict[str, Any]:
        return {"output": "backup"}

    runtime, _ = make_runtime({"cls": BadPrep, "backup": backup})
    result = await runtime.run(bp([node("n", "cls", config={"fallback": "backup"})]))
    assert result.status == "completed"
    assert result.context["_outputs.n"] == "backup"


async def test_post_failure_fails_the_activation_without_retry_and_calls_recover() -> None:
    class BadPost(Recorded):
        log: ClassVar[list[tuple[str, int, Any]]] = []

        async def post(self, exec_result: Any, ctx: Any) -> Any:
            self.log.append(("post", id(self), None))
            raise RuntimeError("post broke")

    runtime, _ = make_runtime({"cls": BadPost})
    result = await runtime.run(bp([node("n", "cls", config={"maxRetries": 3})]))
    assert result.status == "failed"
    (record,) = result.errors
    assert (record.type, record.message) == ("RuntimeError", "post broke")
    assert methods(BadPost)[:3] == ["prep", "exec", "post"]
    assert methods(BadPost).count("exec") == 1
    assert methods(BadPost).count("post") == 1
    # The activation finally failed: recover() runs once (SPEC 2.3 item 5).
    assert methods(BadPost).count("recover") == 1, methods(BadPost)


async def test_only_exec_is_timed() -> None:
    class SlowPhases(BaseNode):
        async def prep(self, ctx: Any) -> Any:
            await asyncio.sleep(0.25)
            return "p"

        async def exec(self, prep_result: Any, ctx: Any) -> Any:
            if ctx.attempt == 1:
                await asyncio.sleep(5)
            return {"output": prep_result + str(ctx.attempt)}

        async def post(self, exec_result: Any, ctx: Any) -> Any:
            await asyncio.sleep(0.25)
            return exec_result

    runtime, bus = make_runtime({"cls": SlowPhases})
    config = {"timeout": 150, "maxRetries": 2}
    result = await runtime.run(bp([node("n", "cls", config=config)]))
    assert result.status == "completed", result.errors
    assert result.context["_outputs.n"] == "p2"
    (retry,) = of_type(bus, "node:retry")
    assert type(retry.error).__name__ == "NodeTimeoutError"


async def test_plain_methods_run_in_worker_threads() -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []

    class Plain(BaseNode):
        def prep(self, ctx: Any) -> Any:  # type: ignore[override]
            threads.append(threading.get_ident())
            ctx.context.sync.set("from_prep", 1)
            return 1

        def exec(self, prep_result: Any, ctx: Any) -> Any:  # type: ignore[override]
            threads.append(threading.get_ident())
            time.sleep(0.01)
            return {"output": prep_result + ctx.context.sync.get("from_prep")}

        def post(self, exec_result: Any, ctx: Any) -> Any:  # type: ignore[override]
            threads.append(threading.get_ident())
            return exec_result

    runtime, _ = make_runtime({"cls": Plain})
    result = await runtime.run(bp([node("n", "cls")]))
    assert result.status == "completed", result.errors
    assert result.context["_outputs.n"] == 2
    assert result.context["from_prep"] == 1
    assert len(threads) == 3
    assert loop_thread not in threads


async def test_default_prep_passes_input_and_default_post_returns_exec_result() -> None:
    class Minimal(BaseNode):
        async def exec(self, prep_result: Any, ctx: Any) -> Any:
            return {"output": {"got": prep_result}, "action": "a"}

    calls = Calls()

    async def after(ctx: Any) -> None:
        calls.add(ctx.input)

    runtime, _ = make_runtime({"cls": Minimal, "after": after})
    blueprint = bp([node("n", "cls"), node("m", "after")], [edge("n", "m", action="a")])
    result = await runtime.run(blueprint, {"_inputs.n": 5})
    assert result.status == "completed"
    assert calls.log == [{"got": 5}]
