"""The README's run command: the demo config is valid and the demo app serves the whole flow."""

from __future__ import annotations

import json

from starlette.testclient import TestClient

from edge.app import create_app
from edge.demo import demo_routes, demo_settings
from tags import PLATFORMS

from .support import wait_until


def test_demo_config_connects_all_twelve_platforms_to_local_sinks(tmp_path):
    settings = demo_settings("127.0.0.1", 8123, tmp_path)
    assert set(settings.destinations) == set(PLATFORMS)
    for dest in settings.destinations.values():
        assert dest.destination.base_url.startswith("http://127.0.0.1:8123/_demo/sinks/")


def test_demo_shop_loader_and_sinks_page(tmp_path):
    settings = demo_settings("testserver", 80, tmp_path)
    app = create_app(settings, extra_routes=demo_routes(), rate_limit=False, dispatch=False)
    with TestClient(app) as client:
        shop = client.get("/")
        assert shop.status_code == 200
        assert '<script async src="/loader.js"></script>' in shop.text
        assert "gtag('consent', 'default'" in shop.text
        assert client.get("/loader.js").status_code == 200
        hit = client.post(
            "/collect",
            content=json.dumps({"event": "page_view", "page": {"url": "http://testserver/"}}),
            headers={"content-type": "text/plain", "user-agent": "Mozilla/5.0"},
        )
        assert hit.status_code == 200
        page = client.get("/_demo/sinks/")
        assert page.status_code == 200 and "What the platforms received" in page.text


def test_sinks_redact_secrets_in_what_they_record(tmp_path):
    settings = demo_settings("testserver", 80, tmp_path)
    app = create_app(settings, extra_routes=demo_routes(), rate_limit=False, dispatch=False)
    with TestClient(app) as client:
        client.post(
            "/_demo/sinks/ga4/mp/collect?measurement_id=G-X&api_secret=s3cret-value",
            json={"client_id": "1.2", "events": []},
            headers={"authorization": "Bearer tok-s3cret"},
        )
        wait_until(lambda: client.get("/_demo/sinks/requests").json(), timeout=2)
        text = client.get("/_demo/sinks/requests").text
        assert "s3cret" not in text
