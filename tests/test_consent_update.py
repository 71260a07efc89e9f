"""POST /consent: the banner's answer without an event: cookies now, withdrawal now."""

from __future__ import annotations

import json

from .support import API_KEY, DENIED, GRANTED, META_HOST, respond, wait_until
from .support import SAFARI_UA as UA

HEADERS = {"content-type": "text/plain", "user-agent": UA}


def consent_hit(consent: dict[str, str], url: str = "https://shop.example/p/1") -> str:
    return json.dumps({"event": "consent_update", "page": {"url": url}, "consent": consent})


def test_a_grant_keeps_the_landing_click_ids_and_stores_no_event(make_edge, platforms):
    client = make_edge()
    answer = client.post(
        "/consent",
        content=consent_hit(GRANTED, "https://shop.example/?fbclid=IwAR_landing-1&ttclid=E.C.P.x1"),
        headers=HEADERS,
    )
    assert answer.status_code == 204 and answer.content == b""
    names = {c.split("=", 1)[0] for c in answer.headers.get_list("set-cookie")}
    assert {"_fbc", "_fbp", "ttclid", "_ttp"} <= names
    assert platforms.requests == []  # nothing is sent anywhere: it is not an event


def test_a_refusal_writes_no_ad_cookies(make_edge):
    answer = make_edge().post(
        "/consent",
        content=consent_hit(DENIED, "https://shop.example/?fbclid=IwAR_x"),
        headers=HEADERS,
    )
    assert answer.status_code == 204
    assert not any(
        c.startswith(("_fbc=", "_fbp=", "_ttp=")) for c in answer.headers.get_list("set-cookie")
    )


def test_a_refusal_cancels_what_the_browser_still_has_queued(make_edge, platforms):
    platforms.default[META_HOST] = respond(503, {"error": {"message": "down"}})
    client = make_edge()
    hit = {
        "event": "purchase",
        "event_id": "queued-1",
        "page": {"url": "https://shop.example/thanks"},
        "user": {"email": "jane@example.com"},
        "consent": GRANTED,
    }
    first = client.post("/collect", content=json.dumps(hit), headers=HEADERS)
    assert first.status_code == 200
    for cookie in first.headers.get_list("set-cookie"):
        name, value = cookie.split(";", 1)[0].split("=", 1)
        client.cookies.set(name, value)
    wait_until(lambda: len(platforms.sent_to(META_HOST)) >= 1)  # tried, refused, still queued

    assert client.post("/consent", content=consent_hit(DENIED), headers=HEADERS).status_code == 204
    status = client.get("/v1/events/queued-1", headers={"authorization": f"Bearer {API_KEY}"})
    meta = status.json()["destinations"]["meta"]
    assert meta["status"] == "skipped" and meta["reason"] == "consent withdrawn"


def test_consent_endpoint_validates_like_collect(make_edge):
    client = make_edge()
    bad = client.post("/consent", content=b"{nope", headers=HEADERS)
    assert bad.status_code == 400 and bad.json()["field"] == "$"
    foreign = client.post(
        "/consent",
        content=consent_hit(GRANTED),
        headers={**HEADERS, "origin": "https://evil.example"},
    )
    assert foreign.status_code == 403
