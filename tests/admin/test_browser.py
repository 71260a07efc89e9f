"""The dashboard in Debian's Chromium, against a real edge and real recording sinks.

One walk through what a marketer does: sign in, connect Meta through the wizard (a
malformed pixel id is refused as the field loses focus; a valid one tests against the
local recording server and activates), watch a purchase in the debug view, see the pill
go IDLE → OK, then DEGRADED/DROPPED while the recording server fails, and replay the dead
letter once it is back. Every page is photographed into ``docs/screenshots/``.

Loopback only, every wait bounded, both processes stopped at the end.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..browser.support import (
    ROOT,
    START_TIMEOUT,
    Process,
    answers,
    chromium_launched,
    edge_command,
    free_port,
    wait_for,
)
from ..support import to_toml

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SCREENSHOTS = ROOT / "docs" / "screenshots"
PASSWORD = "browser-admin-password"
API_KEY = "browser-test-api-key-0123"
META_TOKEN = "EAAB-browser-meta-token-0123456789"
TIKTOK_TOKEN = "browser-tiktok-token-0123456789"
PIXEL = "123456789012345"
WAIT_MS = 15_000
VIEWPORT = {"width": 1280, "height": 900}


class Stack:
    """A sinks process and an edge process with [admin], on free loopback ports."""

    def __init__(self, tmp: Path) -> None:
        self.sinks_port, self.port = free_port(), free_port()
        self.sinks = f"http://127.0.0.1:{self.sinks_port}"
        self.base = f"http://127.0.0.1:{self.port}"
        config = {
            "site": {"domains": ["127.0.0.1"], "default_country": "US"},
            "server": {"database": str(tmp / "edge.db"), "rate_limit_per_second": 0},
            "api": {"keys": [API_KEY]},
            "dispatch": {
                "linger_ms": 20,
                "retry_base_seconds": 0.2,
                "retry_max_seconds": 0.4,
                "max_attempts": 3,
                "poll_seconds": 0.2,
            },
            "admin": {"password": PASSWORD},
            "destinations": {
                "tiktok": {
                    "pixel_id": "C0BROWSER0PIXEL00000",
                    "access_token": TIKTOK_TOKEN,
                    "base_url": f"{self.sinks}/tiktok",
                }
            },
        }
        path = tmp / "edge.toml"
        path.write_text(to_toml(config))
        self.processes: list[Process] = []
        sinks = Process(edge_command("sinks", "--port", str(self.sinks_port)), tmp / "sinks.log")
        self.processes.append(sinks)
        wait_for(answers(f"{self.sinks}/requests"), START_TIMEOUT, "capi-edge sinks", sinks)
        edge = Process(
            edge_command("serve", "--config", str(path), "--port", str(self.port)),
            tmp / "edge.log",
        )
        self.processes.append(edge)
        wait_for(answers(f"{self.base}/healthz"), START_TIMEOUT, "capi-edge serve", edge)
        self.edge = edge

    def purchase(self, event_id: str) -> None:
        body = {
            "event": "purchase",
            "event_id": event_id,
            "page": {"url": "https://shop.example/checkout/thanks"},
            "user": {"email": "jane@example.com", "phone": "+1 650 555 1212"},
            "data": {"value": 49.9, "currency": "EUR", "order_id": event_id},
            "consent": {"ad_storage": "granted", "ad_user_data": "granted"},
            "ids": {"fbp": "fb.1.1763900000000.1234567890"},
            "pixels": ["meta", "tiktok"],
            "ip": "203.0.113.9",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0",
        }
        answer = httpx.post(
            f"{self.base}/v1/events",
            json=body,
            headers={"authorization": f"Bearer {API_KEY}"},
            timeout=5,
        )
        assert answer.status_code == 200, answer.text

    def sink(self, action: str, **body: Any) -> None:
        httpx.post(f"{self.sinks}/_control/{action}", json=body, timeout=5).raise_for_status()

    def received(self, event_id: str) -> bool:
        entries = httpx.get(f"{self.sinks}/requests", params={"platform": "meta"}, timeout=5)
        return any(
            entry["answered"] == 200
            and entry["method"] == "POST"
            and any(e.get("event_id") == event_id for e in (entry["json"] or {}).get("data", []))
            for entry in entries.json()
        )

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(tmp_path_factory.mktemp("admin-browser"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium_launched() as launched:
        yield launched


def shot(page: Any, name: str) -> None:
    """Photograph the page; refresh docs/ only when asked (or when the picture is missing)."""
    picture = page.screenshot(full_page=True)
    assert picture.startswith(b"\x89PNG") and len(picture) > 5_000
    kept = SCREENSHOTS / f"admin-{name}.png"
    if os.environ.get("CAPI_EDGE_UPDATE_SCREENSHOTS") == "1" or not kept.exists():
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        kept.write_bytes(picture)


def pill(page: Any, platform: str) -> str:
    return str(page.locator(f'[data-platform="{platform}"] [data-pill]').inner_text()).strip()


def wait_pill(page: Any, platform: str, wanted: tuple[str, ...]) -> str:
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        current = pill(page, platform)
        if current in wanted:
            return current
        page.wait_for_timeout(200)  # the page polls the status every 3 s
    raise AssertionError(f"{platform}'s pill stayed {pill(page, platform)}, wanted {wanted}")


def test_the_dashboard_end_to_end(stack: Stack, browser: Any) -> None:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))

        # -- sign in ---------------------------------------------------------------------
        page.goto(f"{stack.base}/admin/")
        assert page.url.startswith(f"{stack.base}/admin/login?next=")
        shot(page, "login")
        page.fill("#password", PASSWORD)
        page.click("button:has-text('Sign in')")
        page.wait_for_url(f"{stack.base}/admin/")
        cookie = next(c for c in context.cookies() if c["name"].startswith("__Host-"))
        assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
        assert page.locator("article.platform").count() == 12
        assert page.locator("a.connect").count() == 11  # TikTok comes from the config file

        # -- connect Meta through the wizard --------------------------------------------
        page.click('[data-platform="meta"] a.connect')
        page.wait_for_url("**/admin/connect/meta")
        assert "Pixel (dataset) ID" in page.inner_text("main")
        shot(page, "connect-intro")
        page.click("a:has-text('Start')")
        page.wait_for_url("**/admin/connect/meta/credentials")
        page.fill("#f-pixel_id", "my-pixel")
        page.press("#f-pixel_id", "Tab")  # the field loses focus
        error = page.locator('[data-error-for="pixel_id"]')
        error.filter(has_text="is malformed").wait_for()
        assert (
            "Pixel (dataset) ID is malformed: expected the numeric dataset ID" in error.inner_text()
        )
        assert page.get_attribute("#f-pixel_id", "aria-invalid") == "true"
        shot(page, "connect-credentials")
        page.fill("#f-pixel_id", PIXEL)
        page.press("#f-pixel_id", "Tab")
        # (a locator, not wait_for_function: the dashboard's CSP forbids eval, rightly)
        page.locator('[data-error-for="pixel_id"]:empty').wait_for(state="attached")
        assert page.get_attribute("#f-pixel_id", "aria-invalid") is None
        page.fill("#f-access_token", META_TOKEN)
        page.fill("#f-test_event_code", "TEST12345")
        page.fill("#f-base_url", f"{stack.sinks}/meta")
        page.click("button:has-text('Review')")
        page.wait_for_url("**/admin/connect/meta/review")
        assert META_TOKEN not in page.content()
        page.click("button:has-text('Test and activate')")
        result = page.locator("#activate-result")
        result.filter(has_text="Meta is connected").wait_for()
        assert "Test passed: HTTP 200" in result.inner_text()
        shot(page, "connect-review")
        page.wait_for_url(f"{stack.base}/admin/")  # the script goes back to the grid
        assert pill(page, "meta") == "IDLE"

        # -- watch a purchase in the debug view; the pill goes OK -------------------------
        debug = context.new_page()
        debug.on("pageerror", lambda error: errors.append(str(error)))
        debug.goto(f"{stack.base}/admin/debug")
        debug.locator("[data-live].on").wait_for()
        stack.purchase("order-1001")
        hit = debug.locator('article.hit[data-event-id="order-1001"]')
        hit.wait_for()
        meta_row = hit.locator('tr[data-destination="meta"]')
        meta_row.locator(".answer", has_text="HTTP 200").wait_for()
        assert "Purchase" in meta_row.inner_text() and "queued" in meta_row.inner_text()
        assert "TEST12345" in meta_row.inner_text()
        request = hit.locator(".requests details").filter(has_text="meta: request sent").first
        request.locator("summary").click()
        sent = request.locator("pre").first.inner_text()
        assert '"em"' in sent and "[redacted]" in sent and "203.0.113.x" in sent
        assert "jane@example.com" not in debug.content() and META_TOKEN not in debug.content()
        shot(debug, "debug")
        wait_pill(page, "meta", ("OK",))
        assert page.locator('[data-platform="meta"] [data-count="delivered"]').inner_text() == "1"
        shot(page, "platforms")

        # -- the TEST button answers in place ------------------------------------------
        page.click('[data-platform="meta"] button:has-text("TEST")')
        page.locator("#test-meta", has_text="test OK").wait_for()
        assert " ms)" in page.inner_text("#test-meta")

        # -- the recording server fails: DEGRADED, then DROPPED; the event goes dead ------
        stack.sink("fail", platform="meta", status=500, times=1000)
        stack.purchase("order-1002")
        wait_pill(page, "meta", ("DEGRADED", "DROPPED"))
        wait_pill(page, "meta", ("DROPPED",))
        shot(page, "platforms-dropped")

        # -- back up: replay the dead letter -------------------------------------------
        stack.sink("reset")
        page.goto(f"{stack.base}/admin/dead-letters?destination=meta")
        row = page.locator("table.dead tr", has_text="order-1002")
        row.wait_for()
        assert "gave up after 3 attempts" in row.inner_text()
        shot(page, "dead-letters")
        row.locator('input[name="event"]').check()
        page.click("button:has-text('Replay selected')")
        page.locator(".flash.ok", has_text="1 event(s) queued again").wait_for()
        wait_for(lambda: stack.received("order-1002"), WAIT_MS / 1000, "the replayed event")
        history = debug.locator('article.hit[data-event-id="order-1002"] .requests summary')
        history.filter(has_text="meta: request sent").filter(has_text="→ 200").wait_for()
        assert history.filter(has_text="→ 500").count() == 3  # the failures, then the replay

        # -- the other pages ------------------------------------------------------------
        page.goto(f"{stack.base}/admin/destinations/meta")
        assert page.locator('input[name="map.purchase"]').input_value() == "Purchase"
        shot(page, "destination")
        page.goto(f"{stack.base}/admin/quality")
        meta_quality = page.locator('section.quality[data-platform="meta"]')
        assert "event_id shared with the meta pixel" in meta_quality.inner_text()
        assert "100 %" in meta_quality.inner_text()
        shot(page, "quality")
        page.goto(f"{stack.base}/admin/config")
        assert "CAPI_EDGE_META_ACCESS_TOKEN" in page.inner_text("main")
        shot(page, "config")
        assert META_TOKEN not in page.content() and TIKTOK_TOKEN not in page.content()

        # -- sign out ------------------------------------------------------------------
        debug.close()
        page.click("button:has-text('Sign out')")
        page.wait_for_url("**/admin/login")
        page.goto(f"{stack.base}/admin/")
        assert "/admin/login" in page.url
        assert not errors, errors
    finally:
        context.close()
    log = stack.edge.output()
    for secret in (META_TOKEN, TIKTOK_TOKEN, PASSWORD, API_KEY, "jane@example.com"):
        assert secret not in log
    status = json.loads(httpx.get(f"{stack.base}/healthz", timeout=5).text)
    assert status["destinations"] == ["meta", "tiktok"]
