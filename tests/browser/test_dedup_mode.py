"""The README's dedup check: the storefront with real pixels next to an edge with test codes.

``examples/storefront/serve.py`` runs the edge on the user's config; here that config points
Meta and TikTok at local recording sinks, and the pixels' scripts are stand-ins (no
internet), so both halves of each pair are visible: what the pixel got, and what the API got.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import base_config, to_toml

from .support import (
    FAKE_FBEVENTS,
    FAKE_TIKTOK,
    FBEVENTS_URLS,
    ROOT,
    START_TIMEOUT,
    TIKTOK_URLS,
    Process,
    answers,
    edge_command,
    free_port,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser]
CODES = {"meta": "TEST40213", "tiktok": "TEST77110"}


@pytest.fixture(scope="module")
def dedup_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    tmp = tmp_path_factory.mktemp("dedup")
    sinks_port, shop_port = free_port(), free_port()
    sinks = f"http://127.0.0.1:{sinks_port}"
    config = base_config(str(tmp / "unused.db"))  # serve.py uses a throwaway database
    for platform, code in CODES.items():
        config["destinations"][platform]["base_url"] = f"{sinks}/{platform}"
        config["destinations"][platform]["test_event_code"] = code
    (tmp / "edge.toml").write_text(to_toml(config))
    processes = [
        Process(edge_command("sinks", "--port", str(sinks_port)), tmp / "sinks.log"),
        Process(
            [sys.executable, str(ROOT / "examples" / "storefront" / "serve.py"),
             "--config", str(tmp / "edge.toml"), "--port", str(shop_port)],
            tmp / "serve.log",
        ),
    ]  # fmt: skip
    try:
        wait_for(answers(f"{sinks}/requests"), START_TIMEOUT, "sinks", processes[0])
        shop = f"http://127.0.0.1:{shop_port}"
        wait_for(answers(f"{shop}/healthz"), START_TIMEOUT, "serve.py", processes[1])
        yield shop, sinks
    finally:
        for process in processes:
            process.stop()
    assert not (tmp / "unused.db").exists()


def fulfil_with(script: str) -> Any:
    def handler(route: Any) -> None:
        route.fulfill(status=200, content_type="application/javascript", body=script)

    return handler


def batch_with(sinks: str, platform: str, event_id: str) -> dict[str, Any] | None:
    for entry in httpx.get(f"{sinks}/requests", params={"platform": platform}).json():
        body = entry["json"]
        if entry["method"] == "POST" and any(e["event_id"] == event_id for e in body["data"]):
            return dict(body)
    return None


def test_pixel_and_server_events_pair_up_with_the_test_codes(
    chromium: Any, dedup_shop: tuple[str, str]
) -> None:
    shop, sinks = dedup_shop
    context = chromium.new_context()
    try:
        page = context.new_page()
        for pattern, script in ((FBEVENTS_URLS, FAKE_FBEVENTS), (TIKTOK_URLS, FAKE_TIKTOK)):
            page.route(pattern, fulfil_with(script))
        page.goto(f"{shop}/?meta_pixel=1234567890123456&tiktok_pixel=C0ABCDEFGHIJKLMNOPQR")
        page.wait_for_function("window.metaGot && window.tiktokGot")
        page.click("#accept")
        with page.expect_request(f"{shop}/collect") as hit:
            page.click("#buy")
        event_id = json.loads(hit.value.post_data or "{}")["event_id"]

        meta_track = next(c for c in page.evaluate("metaGot") if c[:2] == ["track", "Purchase"])
        tiktok_track = next(c for c in page.evaluate("tiktokGot") if c[:2] == ["track", "Purchase"])
        assert meta_track[3] == {"eventID": event_id}
        assert tiktok_track[3] == {"event_id": event_id}

        deadline = time.monotonic() + 10
        batches: dict[str, dict[str, Any] | None] = {}
        while time.monotonic() < deadline and not all(batches.get(p) for p in CODES):
            batches = {p: batch_with(sinks, p, event_id) for p in CODES}
            page.wait_for_timeout(100)
        for platform, code in CODES.items():
            batch = batches[platform]
            assert batch is not None, f"{platform} never received {event_id}"
            assert batch["test_event_code"] == code
        meta_event = next(e for e in batches["meta"]["data"] if e["event_id"] == event_id)  # type: ignore[index]
        assert meta_event["event_name"] == meta_track[1] == "Purchase"
    finally:
        context.close()
