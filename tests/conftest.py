from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from edge.app import create_app
from edge.settings import Settings, parse

from .support import Platforms, base_config, to_toml

SHOP_ORIGIN = "https://shop.example"


@pytest.fixture
def platforms() -> Platforms:
    return Platforms()


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        config = base_config(str(tmp_path / "edge.db"), **overrides)
        return parse(to_toml(config), base=tmp_path)

    return make


@pytest.fixture
def make_edge(
    make_settings: Callable[..., Settings], platforms: Platforms
) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(*, settings: Settings | None = None, **overrides: Any) -> TestClient:
        app = create_app(
            settings or make_settings(**overrides),
            transport=platforms.transport(),
            rate_limit=False,
        )
        client = TestClient(app, base_url="https://t.shop.example", headers={"origin": SHOP_ORIGIN})
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


from .edgeapp import edge  # noqa: E402, F401 - a fixture: an edge with a chosen client address
