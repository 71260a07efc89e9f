"""A picture of the demo shop after a purchase, as a newcomer sees it.

Set ``CAPI_EDGE_UPDATE_SCREENSHOTS=1`` to refresh ``docs/screenshots/demo-shop.png``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from .conftest import Shop

pytestmark = [pytest.mark.slow, pytest.mark.browser]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_screenshot_of_the_demo_shop(shop: Shop, tmp_path: Path, screenshot_dir: Path) -> None:
    shop.page.set_viewport_size({"width": 1200, "height": 900})
    shop.open()
    shop.page.click("#accept")
    shop.page.click("#add")
    shop.page.click("#buy")
    shop.wait(
        lambda: shop.page.locator("#pixel-rows td.paired").count() >= 4,
        "the page showing both pixels paired with both APIs",
    )
    picture = tmp_path / "demo-shop.png"
    shop.page.screenshot(path=str(picture), full_page=True)
    data = picture.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 20_000
    assert shop.errors == []
    if os.environ.get("CAPI_EDGE_UPDATE_SCREENSHOTS") == "1":
        screenshot_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(picture, screenshot_dir / "demo-shop.png")
