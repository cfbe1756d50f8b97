"""The inspector's ASGI app on a real Redis, through httpx's ASGI transport: the run list and
its filters, a run's graph, timeline, error and values, resume and cancel (forms and JSON),
the refusals (cross-origin writes, bad JSON, unknown runs), and what `inspect_run` derives."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from bullmq_processes import adapter
from distributed.test_memory_parity import CASES
from inspector_support import BIG, BLUEPRINTS, DECLINED, make_registry

from flowcraft_bullmq import BullMQAdapter
from flowcraft_bullmq.inspector import create_app

ORIGIN = "http://inspector.test"
LOOP = CASES["loop"][0]


@asynccontextmanager
async def inspector(redis_url: str, prefix: str) -> AsyncIterator[tuple[BullMQAdapter, Any]]:
    """A consuming adapter and an HTTP client of the inspector over it."""
    async with adapter(
        redis_url, prefix, blueprints=[*BLUEPRINTS, LOOP], registry=make_registry()
    ) as a:
        transport = httpx.ASGITransport(app=create_app(a))
        async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as client:
            yield a, client


async def finished(
    a: BullMQAdapter, blueprint_id: str, run_id: str, context: dict[str, Any] | None = None
) -> str:
    await a.start_run(blueprint_id, context, run_id=run_id)
    return str((await a.wait_for_result(run_id, timeout_s=20)).status)


def rows(html: str) -> dict[str, str]:
    """run id -> status of the run list's rows."""
    return dict(re.findall(r'<tr data-run="([^"]+)" data-status="([^"]+)"', html))


def node_states(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-node="([^"]+)" data-state="([^"]+)"', html))


async def test_run_list_shows_recent_runs_filterable_by_status_and_blueprint(
    redis_url: str, prefix: str
) -> None:
    async with inspector(redis_url, prefix) as (a, client):
        assert await finished(a, "chain", "c1") == "completed"
        assert await finished(a, "chain", "c2") == "completed"
        assert await finished(a, "broken", "b1") == "failed"
        assert await finished(a, "approval", "w1") == "awaiting"

        page = await client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert rows(page.text) == {
            "c1": "completed",
            "c2": "completed",
            "b1": "failed",
            "w1": "awaiting",
        }
        # Newest first.
        assert list(rows(page.text)) == ["w1", "b1", "c2", "c1"]
        assert rows((await client.get("/?status=failed")).text) == {"b1": "failed"}
        assert set(rows((await client.get("/?blueprint=chain")).text)) == {"c1", "c2"}
        assert list(rows((await client.get("/?limit=2")).text)) == ["w1", "b1"]
        assert rows((await client.get("/?status=cancelled")).text) == {}

        api = (await client.get("/api/runs?status=awaiting")).json()
        assert [(r["runId"], r["blueprintId"]) for r in api["runs"]] == [("w1", "approval")]
        assert api["runs"][0]["durationS"] >= 0
        # Another prefix's runs are not listed.
        async with adapter(redis_url, prefix + "x", blueprints=BLUEPRINTS, consume=False) as other:
            assert await other.list_runs() == []


async def test_failed_run_page_shows_graph_states_error_timeline_and_values(
    redis_url: str, prefix: str
) -> None:
    async with inspector(redis_url, prefix) as (a, client):
        assert await finished(a, "broken", "b1") == "failed"
        page = await client.get("/runs/b1")
        assert page.status_code == 200
        html = page.text
        assert "<svg" in html
        assert node_states(html) == {
            "load": "done",
            "charge": "failed",
            "ship": "skipped",
            "audit": "done",
        }
        # The error, escaped (its markup is shown, not interpreted).
        assert "card declined &lt;b&gt;twice&lt;/b&gt;" in html
        assert DECLINED not in html
        assert 'class="err-type">ValueError<' in html
        # The timeline: one row per activation, with attempts and a state.
        timeline = dict(re.findall(r'data-akey="([^"]+)" data-state="([^"]+)"', html))
        assert timeline == {
            "load@": "done",
            "charge@": "failed",
            "audit@": "done",
            "ship@": "skipped",
        }
        # A long output is cut, with the whole value one click away.
        assert '<details class="value">' in html
        assert json.dumps(BIG, indent=2).replace('"', "&quot;")[:60] in html
        # No retry on the page (the CLI has it), and no resume or cancel for a finished run.
        assert "Retry is not offered" in html and "flowcraft retry" in html
        assert 'id="resume-form"' not in html and 'id="cancel-form"' not in html
        # Nothing is loaded from elsewhere.
        assert not re.search(r'(src|href)="(https?:)?//', html)

        data = (await client.get("/api/runs/b1")).json()
        assert data["status"] == "failed" and data["nodes"]["charge"] == "failed"
        [charge] = [x for x in data["activations"] if x["nodeId"] == "charge"]
        assert charge["attempts"] == 1 and charge["error"]["message"] == DECLINED
        assert charge["startedAt"] <= charge["finishedAt"]
        assert data["expiresInS"] > 0  # a finished run's state has its TTL


async def test_resume_form_moves_a_waiting_run_on(redis_url: str, prefix: str) -> None:
    async with inspector(redis_url, prefix) as (a, client):
        assert await finished(a, "approval", "w1") == "awaiting"
        html = (await client.get("/runs/w1")).text
        assert node_states(html)["ask"] == "waiting"
        assert 'id="resume-form"' in html and '<option value="approve">' in html

        form = {"node": "ask", "action": "approve", "output": "7"}
        # Refused: another site's form, and output that is not JSON.
        evil = await client.post("/runs/w1/resume", data=form, headers={"origin": "http://evil"})
        assert evil.status_code == 403
        cross = await client.post(
            "/runs/w1/resume", data=form, headers={"sec-fetch-site": "cross-site"}
        )
        assert cross.status_code == 403
        bad = await client.post(
            "/runs/w1/resume", data={**form, "output": "{nope"}, headers={"origin": ORIGIN}
        )
        assert bad.status_code == 400 and "not JSON" in bad.text
        assert await a.get_status("w1") == "awaiting"

        done = await client.post("/runs/w1/resume", data=form, headers={"origin": ORIGIN})
        assert done.status_code == 303
        assert done.headers["location"] == "/runs/w1?msg=resume%3A+resumed"
        result = await a.wait_for_result("w1", timeout_s=20)
        assert result.status == "completed" and result.context["_outputs.yes"] == 8
        after = (await client.get(done.headers["location"])).text
        assert "resume: resumed" in after
        assert node_states(after) == {
            "a": "done",
            "ask": "done",
            "yes": "done",
            "no": "skipped",
            "end": "done",
        }
        # The wait ended when its resume job completed it, after which `yes` was enqueued.
        acts = {x.node_id: x for x in (await a.inspect_run("w1")).activations}
        assert acts["ask"].finished_at is not None and acts["yes"].enqueued_at is not None
        assert acts["ask"].finished_at >= acts["yes"].enqueued_at
        # Resuming again: the run is not waiting; the page says so.
        again = await client.post("/runs/w1/resume", data=form, headers={"origin": ORIGIN})
        assert again.status_code == 303 and "not+waiting" in again.headers["location"]


async def test_json_api_resume_and_cancel(redis_url: str, prefix: str) -> None:
    async with inspector(redis_url, prefix) as (a, client):
        assert await finished(a, "approval", "w1") == "awaiting"
        assert await finished(a, "approval", "w2") == "awaiting"
        # A JSON write must say it is JSON (a cross-site form cannot).
        plain = await client.post("/api/runs/w2/cancel", content=b"{}")
        assert plain.status_code == 415
        cancel = await client.post("/api/runs/w2/cancel", json={})
        assert cancel.json() == {"result": "cancelled"}
        assert await a.get_status("w2") == "cancelled"
        late = await client.post("/api/runs/w2/resume", json={"action": "approve"})
        assert late.status_code == 409 and "not waiting" in late.json()["error"]

        resumed = await client.post(
            "/api/runs/w1/resume", json={"action": "reject", "output": {"why": "no"}}
        )
        assert resumed.json() == {"result": "resumed"}
        result = await a.wait_for_result("w1", timeout_s=20)
        assert result.context["_outputs.no"] == 1 and "_outputs.yes" not in result.context
        assert (await client.post("/api/runs/w1/cancel", json={})).json() == {
            "result": "already finished"
        }


async def test_unknown_runs_paths_and_static_files(redis_url: str, prefix: str) -> None:
    async with inspector(redis_url, prefix) as (_, client):
        missing = await client.get("/runs/never-started")
        assert missing.status_code == 404 and "never-started" in missing.text
        assert (await client.get("/api/runs/never-started")).json()["error"]
        assert (await client.get("/runs/bad%20id")).status_code == 404
        assert (await client.get("/nowhere")).status_code == 404
        assert (await client.get("/runs/x/resume")).status_code == 405
        assert (await client.get("/?limit=lots")).status_code == 400
        css = await client.get("/static/inspector.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert ".st-failed" in css.text
        js = await client.get("/static/inspector.js")
        assert "fingerprint" in js.text
        assert (await client.get("/static/../app.py")).status_code == 404
        page = await client.get("/")
        assert "script-src 'self'" in page.headers["content-security-policy"]


async def test_loop_activations_are_listed_per_iteration(redis_url: str, prefix: str) -> None:
    async with inspector(redis_url, prefix) as (a, client):
        assert await finished(a, "loop", "l1", {"count": 0}) == "completed"
        run = await a.inspect_run("l1")
        body = {x.iteration: x.state for x in run.activations if x.node_id == "b"}
        # The body ran three times; its fourth activation was skipped (the loop broke).
        assert body == {(0,): "done", (1,): "done", (2,): "done", (3,): "skipped"}
        assert [x.iteration for x in run.activations if x.node_id == "L"] == [
            (0,),
            (1,),
            (2,),
            (3,),
        ]
        assert run.node_states == {"a": "done", "L": "done", "b": "done", "done": "done"}
        html = (await client.get("/runs/l1")).text
        assert 'data-akey="b@2" data-state="done"' in html
        assert 'data-akey="b@3" data-state="skipped"' in html
        assert 'class="edge back"' in html  # the loop's back edge is drawn dashed


async def test_asgi_lifespan_connects_and_closes_the_adapter(redis_url: str, prefix: str) -> None:
    async def lifespan(a: BullMQAdapter) -> list[str]:
        inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        sent: list[str] = []

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message["type"])
            if message["type"] == "lifespan.startup.complete":
                assert await a.list_runs() == []  # connected
            await inbox.put({"type": "lifespan.shutdown"})

        await inbox.put({"type": "lifespan.startup"})
        await create_app(a)({"type": "lifespan"}, inbox.get, send)
        return sent

    a = BullMQAdapter(connection=redis_url, blueprints=BLUEPRINTS, prefix=prefix)
    assert await lifespan(a) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    with pytest.raises(RuntimeError, match="closed"):
        await a.connect()
    down = BullMQAdapter(connection="redis://127.0.0.1:1/0", blueprints=BLUEPRINTS)
    assert await lifespan(down) == ["lifespan.startup.failed"]
    await down.close()


async def test_list_runs_is_bounded_by_max_scanned(redis_url: str, prefix: str) -> None:
    async with adapter(redis_url, prefix, blueprints=BLUEPRINTS, consume=False) as a:
        for i in range(5):
            await a.start_run("chain", run_id=f"q{i}")
        assert len(await a.list_runs()) == 5
        assert len(await a.list_runs(max_scanned=2)) == 2  # a sample, not all five
        assert [r.run_id for r in await a.list_runs(limit=2)] == ["q4", "q3"]
        assert {r.status for r in await a.list_runs()} == {"running"}
        with pytest.raises(ValueError):
            await a.list_runs(limit=0)
