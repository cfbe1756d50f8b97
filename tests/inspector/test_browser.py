"""The inspector in a real headless Chromium (Debian's package, driven by Playwright; never
`playwright install`), served by a real `flowcraft inspect` process: the run list loads, a
failed run's page shows its graph and the failing node's error, and the resume button moves a
waiting run on (checked through the adapter).

`FLOWCRAFT_SCREENSHOT=1` saves docs/images/inspector.png (the failed run's page).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bullmq_processes import WorkerProcess, adapter
from inspector_support import BLUEPRINTS, DECLINED, make_registry

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "inspector.png"


class InspectProcess(WorkerProcess):
    """`flowcraft inspect --port 0 ...` in a process; `url()` once it serves."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        super().__init__(["--port", "0", *args], cwd / "trace", cwd, command="inspect")

    def url(self, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            for line in self.lines:
                found = re.search(r"serving (http://\S+)", line)
                if found:
                    return found.group(1)
            time.sleep(0.05)
        raise AssertionError(f"flowcraft inspect did not start:\n{self.stderr}")

    def stop(self) -> int:
        """SIGTERM, then its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout=15)


@pytest.fixture
def inspect_server(
    redis_url: str, prefix: str, tmp_path: Path
) -> Iterator[tuple[str, InspectProcess]]:
    for bp in BLUEPRINTS:
        (tmp_path / f"{bp['id']}.json").write_text(json.dumps(bp), encoding="utf-8")
    server = InspectProcess(
        ["--redis", redis_url, "--prefix", prefix, "--blueprints", str(tmp_path)], tmp_path
    )
    try:
        yield server.url(), server
    finally:
        if server.proc.poll() is None:
            server.kill()


async def test_inspector_page_in_headless_chromium(
    redis_url: str, prefix: str, inspect_server: tuple[str, InspectProcess]
) -> None:
    if shutil.which("chromium") is None:
        pytest.fail(
            "chromium is required for the inspector's browser test: apt-get install chromium "
            "(scripts/test.sh installs it)",
            pytrace=False,
        )
    from playwright.async_api import async_playwright

    url, server = inspect_server
    async with adapter(redis_url, prefix, blueprints=BLUEPRINTS, registry=make_registry()) as a:
        for blueprint_id, run_id in (("chain", "c1"), ("broken", "b1"), ("approval", "w1")):
            await a.start_run(blueprint_id, run_id=run_id)
            await a.wait_for_result(run_id, timeout_s=20)

        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                requests: list[str] = []
                page.on("request", lambda request: requests.append(request.url))
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))

                # The run list, newest first; a filter.
                await page.goto(url)
                listed = await page.locator("table.runs tbody tr").evaluate_all(
                    "rows => rows.map(r => [r.dataset.run, r.dataset.status])"
                )
                assert listed == [["w1", "awaiting"], ["b1", "failed"], ["c1", "completed"]]
                await page.select_option("select[name=status]", "failed")
                await page.click("form.filters button")
                await page.wait_for_url("**/?status=failed*")
                assert await page.locator("table.runs tbody tr").count() == 1

                # The failed run: its graph (drawn, coloured) and the failing node's error.
                # The link itself: a bare "text=b1" also matches the header's random prefix
                # when its hex happens to hold "b1".
                await page.get_by_role("link", name="b1", exact=True).click()
                await page.wait_for_url("**/runs/b1")
                charge = page.locator('svg.graph g[data-node="charge"]')
                assert await charge.get_attribute("data-state") == "failed"
                fill = await charge.locator("rect").evaluate("r => getComputedStyle(r).fill")
                assert fill == "rgb(255, 227, 227)"  # the failed colour from the stylesheet
                box = await charge.bounding_box()
                assert box is not None and box["width"] > 100 and box["height"] > 30
                assert await page.locator('svg.graph g[data-state="done"]').count() == 2
                assert await page.locator('svg.graph g[data-state="skipped"]').count() == 1
                error = page.locator("li.error")
                assert await error.locator(".err-message").inner_text() == DECLINED
                assert await error.is_visible()
                # A long output is cut and expands on click.
                value = page.locator("section.outputs details.value")
                assert not await value.locator("pre").is_visible()
                await value.locator("summary").click()
                assert await value.locator("pre").is_visible()
                if os.environ.get("FLOWCRAFT_SCREENSHOT") == "1":
                    await value.locator("summary").click()  # closed again: a shorter page
                    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                    await page.screenshot(path=str(SCREENSHOT), full_page=True)

                # The waiting run: resume it from the page.
                await page.goto(url + "runs/w1")
                ask = page.locator('svg.graph g[data-node="ask"]')
                assert await ask.get_attribute("data-state") == "waiting"
                await page.fill("#resume-form input[name=action]", "approve")
                await page.fill("#resume-form textarea[name=output]", "{oops")
                await page.click("#resume-form button")  # the script refuses bad JSON
                assert "not JSON" in await page.locator("#resume-form .form-error").inner_text()
                assert await a.get_status("w1") == "awaiting"
                await page.fill("#resume-form textarea[name=output]", "7")
                await page.click("#resume-form button")
                await page.wait_for_url("**/runs/w1?msg=*")
                result = await a.wait_for_result("w1", timeout_s=20)
                assert result.status == "completed" and result.context["_outputs.yes"] == 8
                assert "resume: resumed" in await page.locator(".flash").inner_text()

                assert errors == []
                own = url.rstrip("/")
                assert [r for r in requests if not r.startswith(own)] == []  # no CDN
            finally:
                await browser.close()
    assert server.stop() == 0
