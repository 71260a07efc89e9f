from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .support import Demo, chromium_launched

WAIT_SECONDS = 10.0


@pytest.fixture(scope="package")
def chromium() -> Iterator[Any]:
    with chromium_launched() as browser:
        yield browser


@pytest.fixture(scope="package")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """One demo process for the suite; tests tell their events apart by event_id."""
    running = Demo(tmp_path_factory.mktemp("demo"))
    try:
        yield running
    finally:
        running.stop()


class Shop:
    """The demo shop in a fresh browser context, with what the page posted and threw."""

    def __init__(self, context: Any, demo: Demo) -> None:
        self.context = context
        self.demo = demo
        self.page = context.new_page()
        self.hits: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.set_cookies: list[str] = []  # Set-Cookie headers of the edge's hit answers
        self.page.on("request", self._request)
        self.page.on("response", self._response)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _request(self, request: Any) -> None:
        if request.url.split("?")[0].endswith("/collect") and request.method == "POST":
            self.hits.append(json.loads(request.post_data or "{}"))

    def _response(self, response: Any) -> None:
        # /collect answers hits; /consent answers the banner (it may set the cookies first)
        if response.url.split("?")[0].endswith(("/collect", "/consent")):
            self.set_cookies += [
                h["value"] for h in response.headers_array() if h["name"].lower() == "set-cookie"
            ]

    def open(self, path: str = "/") -> dict[str, Any]:
        """Load a page and return the page_view the loader sent for it."""
        url = self.demo.base + path
        seen = len(self.hits)
        self.page.goto(url)
        return self.wait(  # type: ignore[no-any-return]
            lambda: next(
                (
                    h
                    for h in self.hits[seen:]
                    if h["event"] == "page_view" and h["page"]["url"] == url
                ),
                None,
            ),
            f"the page_view of {url}",
        )

    def wait(self, predicate: Callable[[], Any], what: str, timeout: float = WAIT_SECONDS) -> Any:
        """Poll while letting Playwright deliver its events (a plain sleep would starve it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            self.page.wait_for_timeout(50)
        raise AssertionError(f"{what}: not within {timeout}s")

    def hit(self, event: str, *, index: int = -1) -> dict[str, Any]:
        def found() -> list[dict[str, Any]]:
            return [h for h in self.hits if h.get("event") == event]

        return self.wait(found, f"a {event} hit")[index]  # type: ignore[no-any-return]

    def pixel_calls(self) -> list[dict[str, Any]]:
        return list(self.page.evaluate("pixelCalls"))

    def cookies(self) -> dict[str, dict[str, Any]]:
        return {c["name"]: c for c in self.context.cookies()}

    def delivered(self, platform: str, event_id: str) -> dict[str, Any]:
        def arrived() -> dict[str, Any] | None:
            return next(
                (e for e in self.demo.received(platform) if e["event_id"] == event_id), None
            )

        return self.wait(arrived, f"{event_id} at the {platform} sink")  # type: ignore[no-any-return]


@pytest.fixture
def new_shop(chromium: Any, demo: Demo) -> Iterator[Callable[..., Shop]]:
    contexts: list[Any] = []

    def make(**context_options: Any) -> Shop:
        context = chromium.new_context(**context_options)
        contexts.append(context)
        return Shop(context, demo)

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def shop(new_shop: Callable[..., Shop]) -> Shop:
    return new_shop()


@pytest.fixture
def screenshot_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "docs" / "screenshots"
