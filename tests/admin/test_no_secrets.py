"""No secret and no clear personal data in any page, API answer, stream, export or log."""

from __future__ import annotations

import logging

from edge.admin import pages

from ..support import API_KEY, META_HOST, META_TOKEN, TIKTOK_TOKEN, respond, wait_until
from .conftest import ADMIN_PASSWORD, csrf_of
from .test_debug import _subscribe, _unsubscribe

SECRETS = (META_TOKEN, TIKTOK_TOKEN, API_KEY, ADMIN_PASSWORD)
PERSONAL = ("jane@example.com", "6505551212", "203.0.113.77")


def test_no_secret_anywhere(dashboard, platforms, caplog, monkeypatch, tmp_path):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(pages, "STREAM_SECONDS", 0.3)
    seen: list[str] = []

    def keep(answer):
        seen.append(answer.text)
        seen.append(str(answer.headers))
        return answer

    watcher = dashboard.client.portal.call(_subscribe, dashboard.admin.hub)
    # a wrong sign-in attempt, from another client
    keep(
        dashboard.client.post(
            "/admin/api/validate/meta",
            json={"field": "access_token", "value": META_TOKEN[:-1] + "!"},
            headers={"x-csrf-token": dashboard.csrf, "origin": "https://t.shop.example"},
        )
    )
    # connect Meta through the wizard, with a refused test first
    platforms.script(META_HOST, respond(401, {"error": {"message": "Invalid OAuth", "code": 190}}))
    fields = {
        "pixel_id": "123456789012345",
        "access_token": META_TOKEN,
        "base_url": f"https://{META_HOST}",
    }
    keep(dashboard.post("/admin/connect/meta/credentials", {**fields, "pixel_id": "bad"}))
    keep(dashboard.post("/admin/connect/meta/credentials", fields))
    keep(dashboard.get("/admin/connect/meta/review"))
    keep(dashboard.post("/admin/connect/meta/activate"))
    keep(dashboard.post("/admin/connect/meta/activate", headers={"accept": "application/json"}))
    # events, one of them refused for good
    platforms.script(
        META_HOST, respond(400, {"error": {"message": "Invalid parameter", "code": 100}})
    )
    for event_id in ("n-1", "n-2"):
        body = {
            "event": "purchase",
            "event_id": event_id,
            "page": {"url": "https://shop.example/?e=jane@example.com"},
            "consent": {"ad_storage": "granted", "ad_user_data": "granted"},
            "user": {"email": "jane@example.com", "phone": "+1 650 555 1212"},
            "ip": "203.0.113.77",
            "user_agent": "Mozilla/5.0",
            "data": {"value": 20, "currency": "EUR"},
        }
        keep(
            dashboard.client.post(
                "/v1/events", json=body, headers={"authorization": f"Bearer {API_KEY}"}
            )
        )
    wait_until(
        lambda: (
            sum(
                e["type"] == "attempt" and e["destination"] == "meta"
                for e in dashboard.admin.hub.entries
            )
            >= 2
        )
    )
    keep(dashboard.post("/admin/destinations/meta/test", headers={"accept": "application/json"}))
    keep(dashboard.post("/admin/destinations/tiktok/test"))
    for path in (
        "/admin/",
        "/admin/api/status",
        "/admin/connect/meta",
        "/admin/connect/meta/credentials",
        "/admin/destinations/meta",
        "/admin/destinations/tiktok",
        "/admin/debug",
        "/admin/debug/stream",
        "/admin/quality",
        "/admin/dead-letters",
        "/admin/config",
        "/admin/config/export",
        "/healthz",
    ):
        keep(dashboard.get(path))
    keep(
        dashboard.post(
            "/admin/config/apply", {"config": dashboard.get("/admin/config/export").text}
        )
    )
    keep(dashboard.get("/admin/config"))
    # a failed sign-in in a fresh session, with the password close to the real one
    dashboard.client.cookies.clear()
    token = csrf_of(dashboard.get("/admin/login").text)
    keep(dashboard.post("/admin/login", {"password": ADMIN_PASSWORD + "x"}, token=token))
    dashboard.client.portal.call(_unsubscribe, dashboard.admin.hub, watcher)

    everything = "\n".join(seen)
    assert "n-1" in everything and "Invalid parameter" in everything  # the sweep saw real pages
    for secret in SECRETS:
        assert secret not in everything, "a secret in a response"
        assert secret not in caplog.text, "a secret in the log"
    for value in PERSONAL:
        assert value not in everything, value
    vault_key = (tmp_path / "vault.key").read_text().split()[0]
    assert vault_key not in everything and vault_key not in caplog.text
