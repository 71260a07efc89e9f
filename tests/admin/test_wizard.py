"""The connect wizard: fields checked on blur and on submit, secrets never shown back,
a successful test activates the destination at once (worker and routing), a failed one
does not."""

from __future__ import annotations

import json

from ..support import META_HOST, META_TOKEN, respond, wait_until

META = {
    "pixel_id": "123456789012345",
    "access_token": META_TOKEN,
    "base_url": f"https://{META_HOST}",
}
PURCHASE = {
    "event": "purchase",
    "event_id": "order-1",
    "page": {"url": "https://shop.example/checkout/done"},
    "user": {"email": "jane@example.com"},
    "data": {"value": 49.9, "currency": "EUR"},
    "consent": {"ad_storage": "granted", "ad_user_data": "granted"},
    "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0",
}


def test_intro_says_what_is_needed_and_where(dashboard):
    page = dashboard.get("/admin/connect/meta").text
    assert "Pixel (dataset) ID" in page and "Access token" in page
    assert "Events Manager" in page
    assert 'href="https://developers.facebook.com/docs/marketing-api/conversions-api"' in page


def test_a_field_is_checked_when_it_loses_focus(dashboard):
    answer = dashboard.post_json(
        "/admin/api/validate/meta", {"field": "pixel_id", "value": "my-pixel"}
    )
    assert answer.json() == {
        "ok": False,
        "message": "Pixel (dataset) ID is malformed: expected the numeric dataset ID, 10-20 digits "
        "(Events Manager → Data sources → your pixel → Settings)",
    }
    ok = dashboard.post_json(
        "/admin/api/validate/meta", {"field": "pixel_id", "value": "123456789012345"}
    )
    assert ok.json() == {"ok": True, "message": ""}
    empty = dashboard.post_json("/admin/api/validate/meta", {"field": "access_token", "value": ""})
    assert empty.json()["message"].startswith("Access token is required")
    url = dashboard.post_json("/admin/api/validate/meta", {"field": "base_url", "value": "ftp://x"})
    assert not url.json()["ok"]


def test_a_reference_is_checked_too(dashboard, monkeypatch):
    monkeypatch.setenv("META_TOKEN_FOR_TEST", META_TOKEN)
    ok = dashboard.post_json(
        "/admin/api/validate/meta", {"field": "access_token", "value": "env:META_TOKEN_FOR_TEST"}
    )
    assert ok.json()["ok"]
    missing = dashboard.post_json(
        "/admin/api/validate/meta", {"field": "access_token", "value": "env:NOT_SET_ANYWHERE"}
    )
    assert "NOT_SET_ANYWHERE is not set" in missing.json()["message"]


def test_the_server_checks_again_on_submit_and_keeps_secrets_out_of_the_page(dashboard):
    answer = dashboard.post("/admin/connect/meta/credentials", {**META, "pixel_id": "my-pixel"})
    assert answer.status_code == 422
    assert "Pixel (dataset) ID is malformed" in answer.text
    assert META_TOKEN not in answer.text
    assert "saved: leave empty to keep" in answer.text  # the token is kept, not shown
    # fix the pixel, leave the token empty: the kept token is used
    answer = dashboard.post(
        "/admin/connect/meta/credentials",
        {"pixel_id": META["pixel_id"], "base_url": META["base_url"]},
    )
    assert answer.headers["location"] == "/admin/connect/meta/review"
    review = dashboard.get("/admin/connect/meta/review").text
    assert "•••••••• (set)" in review and META_TOKEN not in review
    assert "123456789012345" in review


def test_review_needs_valid_credentials_first(dashboard):
    answer = dashboard.get("/admin/connect/meta/review", follow_redirects=False)
    assert answer.headers["location"] == "/admin/connect/meta/credentials"
    assert dashboard.post("/admin/connect/meta/activate").status_code == 303


def test_a_successful_test_activates_and_events_flow(dashboard, platforms):
    result = dashboard.connect("meta", META)
    assert result["ok"] and result["http_status"] == 200
    assert result["message"].startswith("Meta is connected. Test passed: HTTP 200 in")
    admin = dashboard.admin
    assert "meta" in admin.dispatcher.workers and "meta" in admin.registry.active
    assert [d.name for d in admin.collector.destinations] == ["meta", "tiktok"]
    status = dashboard.get("/admin/api/status").json()["meta"]
    assert status["pill"] == "IDLE" and status["detail"] == "credentials valid, no events yet"

    from ..support import API_KEY

    answer = dashboard.client.post(
        "/v1/events", json=PURCHASE, headers={"authorization": f"Bearer {API_KEY}"}
    )
    assert answer.status_code == 200
    wait_until(lambda: platforms.events_to(META_HOST))
    assert platforms.events_to(META_HOST)[0]["event_id"] == "order-1"
    wait_until(lambda: dashboard.get("/admin/api/status").json()["meta"]["pill"] == "OK")


def test_a_failed_test_does_not_activate(dashboard, platforms):
    platforms.script(
        META_HOST, respond(401, {"error": {"message": "Invalid OAuth access token", "code": 190}})
    )
    result = dashboard.connect("meta", META)
    assert not result["ok"] and result["http_status"] == 401
    assert "meta" not in dashboard.admin.dispatcher.workers
    assert dashboard.admin.registry.raw("meta") is None
    # without the page's script: the review page again, with the reason
    platforms.script(META_HOST, respond(401, {"error": {"message": "Invalid", "code": 190}}))
    page = dashboard.post("/admin/connect/meta/activate")
    assert page.status_code == 422 and "Test failed: HTTP 401" in page.text


def test_reconnecting_keeps_a_secret_left_empty(dashboard, platforms):
    dashboard.connect("meta", META)
    form = dashboard.get("/admin/connect/meta/credentials").text
    assert META_TOKEN not in form and 'value="123456789012345"' in form
    result = dashboard.connect(
        "meta", {"pixel_id": "999999999999999", "base_url": META["base_url"]}
    )
    assert result["ok"]
    dest = dashboard.admin.registry.active["meta"].destination
    assert dest.credentials == {"pixel_id": "999999999999999", "access_token": META_TOKEN}


def test_what_is_stored_is_encrypted(dashboard, tmp_path):
    dashboard.connect("meta", META)
    blobs = dashboard.client.portal.call(dashboard.admin.store.config_blobs)
    assert set(blobs) == {"meta"}
    assert META_TOKEN.encode() not in blobs["meta"]
    assert json.loads(dashboard.admin.vault.decrypt(blobs["meta"]))["access_token"] == META_TOKEN
    for path in tmp_path.iterdir():  # the database, its WAL: no token in clear anywhere
        if path.is_file():
            assert META_TOKEN.encode() not in path.read_bytes(), path
