"""An edge under test with a chosen client address, and small helpers to drive it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from edge.app import create_app
from edge.schema import StoredEvent
from edge.settings import Settings, parse

from . import geodb
from .support import API_KEY, Platforms, base_config, to_toml
from .support import SAFARI_UA as UA

AUTH = {"authorization": f"Bearer {API_KEY}"}
PROXY = "127.0.0.1"  # a trusted proxy by default: the visitor's address comes in XFF


def settings_for(tmp_path: Path, *, geo: bool = False, **overrides: Any) -> Settings:
    if geo:
        database = geodb.build(tmp_path / "geo.mmdb")
        overrides.setdefault("geo", {"database": str(database)})
    return parse(to_toml(base_config(str(tmp_path / "edge.db"), **overrides)), base=tmp_path)


@pytest.fixture
def edge(tmp_path: Path, platforms: Platforms) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(
        *,
        dispatch: bool = True,
        geo: bool = False,
        host: str = "t.shop.example",
        peer: str = PROXY,
        settings: Settings | None = None,
        **overrides: Any,
    ) -> TestClient:
        settings = settings or settings_for(tmp_path, geo=geo, **overrides)
        app = create_app(
            settings, transport=platforms.transport(), rate_limit=False, dispatch=dispatch
        )
        client = TestClient(
            app,
            base_url=f"https://{host}",
            headers={"origin": "https://shop.example"},
            client=(peer, 50000),
        )
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def hit(
    client: TestClient,
    event: str = "purchase",
    *,
    ip: str | None = None,
    gpc: bool = False,
    user_agent: str = UA,
    url: str = "https://shop.example/checkout/done",
    **fields: Any,
) -> Any:
    """POST one event to /collect like the loader does; the response."""
    headers = {"content-type": "text/plain;charset=UTF-8", "user-agent": user_agent}
    if ip:
        headers["x-forwarded-for"] = ip
    if gpc:
        headers["sec-gpc"] = "1"
    body: dict[str, Any] = {"event": event, "page": {"url": url}, **fields}
    if event == "purchase":
        body.setdefault("data", {"value": 10.0, "currency": "EUR"})
        body.setdefault("user", {"email": "jane@example.com"})
    return client.post("/collect", content=json.dumps(body), headers=headers)


def event_id(response: Any) -> str:
    assert response.status_code == 200, response.text
    (found,) = response.json()["event_ids"]
    return str(found)


def statuses(client: TestClient, event_id: str) -> dict[str, tuple[str, str]]:
    """destination -> (status, reason) as GET /v1/events/{id} reports them."""
    answer = client.get(f"/v1/events/{event_id}", headers=AUTH)
    assert answer.status_code == 200, answer.text
    return {d: (v["status"], v["reason"]) for d, v in answer.json()["destinations"].items()}


def stored(client: TestClient, event_id: str) -> StoredEvent:
    store = client.app.state.store  # type: ignore[attr-defined]
    event = client.portal.call(store.get_event, event_id)  # type: ignore[union-attr]
    assert event is not None
    return event  # type: ignore[no-any-return]


def set_cookies(response: Any) -> dict[str, str]:
    """cookie name -> the whole Set-Cookie header."""
    return {c.split("=", 1)[0]: c for c in response.headers.get_list("set-cookie")}
