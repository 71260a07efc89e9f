from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.support import chromium_launched

from .stack import EDGE_HOST, OTHER_EDGE_HOST, SITE_HOST, Stack


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(tmp_path_factory.mktemp("deploy"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="package")
def chromium_for_test_hosts() -> Iterator[Any]:
    """Chromium resolving the test hosts to loopback, as public DNS would to the server."""
    rules = ",".join(f"MAP {host} 127.0.0.1" for host in (SITE_HOST, EDGE_HOST, OTHER_EDGE_HOST))
    with chromium_launched(f"--host-resolver-rules={rules}") as browser:
        yield browser
