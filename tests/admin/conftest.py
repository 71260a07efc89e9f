"""Fixtures for the dashboard: an edge with ``[admin]``, a signed-in client, CSRF tokens."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from edge.app import create_app
from edge.settings import Settings, parse

from ..support import Platforms, base_config, to_toml

ADMIN_PASSWORD = "correct-horse-battery-staple"
ADMIN_ORIGIN = "https://t.shop.example"
CSRF = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


class Dashboard:
    """A TestClient on the edge, with helpers that behave like a browser on /admin."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.csrf = ""

    @property
    def app(self) -> Any:
        return self.client.app

    @property
    def admin(self) -> Any:
        for route in self.app.routes:
            if getattr(route, "path", "") == "/admin":
                return route.app.state.admin
        raise AssertionError("no dashboard mounted")

    def sign_in(self, password: str = ADMIN_PASSWORD) -> Dashboard:
        page = self.client.get("/admin/login")
        answer = self.post("/admin/login", {"password": password}, token=csrf_of(page.text))
        assert answer.status_code == 303, answer.text
        self.refresh_csrf()
        return self

    def refresh_csrf(self) -> str:
        self.csrf = csrf_of(self.client.get("/admin/").text)
        return self.csrf

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, **kwargs)

    def post(
        self, path: str, data: dict[str, Any] | None = None, *, token: str | None = None, **kw: Any
    ) -> Any:
        """A same-origin form post, as the browser sends it."""
        form = {"csrf_token": self.csrf if token is None else token, **(data or {})}
        headers = {"origin": ADMIN_ORIGIN, "sec-fetch-site": "same-origin", **kw.pop("headers", {})}
        kw.setdefault("follow_redirects", False)
        return self.client.post(path, data=form, headers=headers, **kw)

    def post_json(self, path: str, body: Any, **kw: Any) -> Any:
        headers = {
            "origin": ADMIN_ORIGIN,
            "x-csrf-token": self.csrf,
            "accept": "application/json",
            **kw.pop("headers", {}),
        }
        return self.client.post(path, json=body, headers=headers, **kw)

    def connect(self, platform: str, fields: dict[str, str]) -> dict[str, Any]:
        answer = self.post(f"/admin/connect/{platform}/credentials", fields)
        assert answer.status_code == 303, answer.text
        result = self.post(
            f"/admin/connect/{platform}/activate", headers={"accept": "application/json"}
        )
        found: dict[str, Any] = result.json()
        return found


@pytest.fixture
def admin_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(*, destinations: dict[str, Any] | None = None, **overrides: Any) -> Settings:
        overrides.setdefault("admin", {"password": ADMIN_PASSWORD})
        config = base_config(str(tmp_path / "edge.db"), **overrides)
        if destinations is not None:
            config["destinations"] = destinations
        return parse(to_toml(config), base=tmp_path)

    return make


@pytest.fixture
def make_dashboard(
    admin_settings: Callable[..., Settings], platforms: Platforms
) -> Iterator[Callable[..., Dashboard]]:
    clients: list[TestClient] = []

    def make(*, settings: Settings | None = None, **overrides: Any) -> Dashboard:
        app = create_app(
            settings or admin_settings(**overrides),
            transport=platforms.transport(),
            rate_limit=False,
        )
        client = TestClient(app, base_url=ADMIN_ORIGIN)
        client.__enter__()
        clients.append(client)
        return Dashboard(client)

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def dashboard(make_dashboard: Callable[..., Dashboard]) -> Dashboard:
    """Signed in, with TikTok from the config file and Meta not connected."""
    board = make_dashboard(destinations={"tiktok": base_config("x")["destinations"]["tiktok"]})
    return board.sign_in()
