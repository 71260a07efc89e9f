"""Dead letters: listed with reasons, filtered, replayed after being checked again."""

from __future__ import annotations

import time

from ..support import API_KEY, META_HOST, META_TOKEN, respond, wait_until

META = {
    "pixel_id": "123456789012345",
    "access_token": META_TOKEN,
    "base_url": f"https://{META_HOST}",
}
INVALID = respond(
    400,
    {
        "error": {
            "message": "Invalid parameter",
            "type": "OAuthException",
            "code": 100,
            "error_subcode": 2804019,
            "error_user_msg": "The value of currency is invalid",
        }
    },
)
HEADERS = {"authorization": f"Bearer {API_KEY}"}


def purchase(board, event_id: str, **extra) -> None:
    body = {
        "event": "purchase",
        "event_id": event_id,
        "page": {"url": "https://shop.example/"},
        "consent": {"ad_storage": "granted", "ad_user_data": "granted"},
        "user": {"email": "jane@example.com"},
        "user_agent": "Mozilla/5.0",
        "data": {"value": 20, "currency": "EUR"},
        **extra,
    }
    assert board.client.post("/v1/events", json=body, headers=HEADERS).status_code == 200


def meta_status(board, event_id: str) -> dict:
    return board.client.get(f"/v1/events/{event_id}", headers=HEADERS).json()["destinations"][
        "meta"
    ]


def dead(board, event_id: str) -> None:
    wait_until(lambda: meta_status(board, event_id)["status"] in ("dead", "failed"))


def test_list_filter_and_replay(dashboard, platforms):
    assert dashboard.connect("meta", META)["ok"]
    platforms.script(META_HOST, INVALID, INVALID)
    purchase(dashboard, "bad-1")
    dead(dashboard, "bad-1")
    purchase(dashboard, "bad-2")
    dead(dashboard, "bad-2")
    page = dashboard.get("/admin/dead-letters").text
    assert "bad-1" in page and "bad-2" in page and "Invalid parameter" in page
    assert "bad-1" not in dashboard.get("/admin/dead-letters?destination=tiktok").text
    assert "bad-1" not in dashboard.get("/admin/dead-letters?reason=no+such+reason").text
    # the platform is fixed: replay one, selected
    answer = dashboard.post("/admin/dead-letters/replay", {"event": ["meta|bad-1"]})
    assert answer.status_code == 303
    wait_until(lambda: meta_status(dashboard, "bad-1")["status"] == "sent")
    assert "1 event(s) queued again" in dashboard.get("/admin/dead-letters").text
    # and the rest, as "replay all matching", answered in place
    result = dashboard.post(
        "/admin/dead-letters/replay",
        {"all": "true", "destination": "meta"},
        headers={"accept": "application/json"},
    ).json()
    assert result["replayed"] == 1 and result["ok"]
    wait_until(lambda: meta_status(dashboard, "bad-2")["status"] == "sent")
    assert "Nothing here" in dashboard.get("/admin/dead-letters").text


def test_replay_checks_again_first(dashboard, platforms):
    assert dashboard.connect("meta", META)["ok"]
    platforms.script(META_HOST, INVALID, INVALID)
    week = 7 * 86_400
    purchase(dashboard, "old", time=time.time() - week + 120)  # fresh now, not at replay time
    dead(dashboard, "old")
    purchase(dashboard, "filtered")
    dead(dashboard, "filtered")
    # a rule now keeps purchases away from Meta: that one must not go either
    dashboard.post("/admin/destinations/meta/settings", {"allow": ["lead"]})
    result = dashboard.post(
        "/admin/dead-letters/replay",
        {"event": ["meta|old", "meta|filtered"]},
        headers={"accept": "application/json"},
    ).json()
    assert result["replayed"] == 0
    assert result["refused"] == {
        "older than Meta's freshness window": 1,
        "filtered by rule: purchase is not in events": 1,
    }
    assert meta_status(dashboard, "old")["status"] in ("dead", "failed")
    # a destination that is not running cannot take replays
    dashboard.post("/admin/destinations/meta/enabled", {"enabled": "false"})
    result = dashboard.post(
        "/admin/dead-letters/replay",
        {"event": ["meta|filtered"]},
        headers={"accept": "application/json"},
    ).json()
    assert result["refused"] == {"meta is not connected or switched off": 1}
